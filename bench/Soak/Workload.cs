using System.Diagnostics;
using Confluent.Kafka;

namespace Switchback.Soak;

/// <summary>An idempotent producer sending at a fixed rate to one topic, keys spread over a fixed set.</summary>
public sealed class PacedProducer(string bootstrapServers, string stream, string topic, int ratePerSecond, string padding, DeliveryLedger ledger)
{
    private const int Keys = 64;
    private long _fatalErrors;

    public string Stream { get; } = stream;
    public string Topic { get; } = topic;
    public long FatalErrors => Interlocked.Read(ref _fatalErrors);

    public void Run(CancellationToken stop)
    {
        long seq = 0;
        var clock = ledger.Clock;
        var started = clock.Elapsed;
        while (!stop.IsCancellationRequested)
        {
            // A fatal idempotence error ends a producer instance; a new one continues the same stream.
            var fatal = new CancellationTokenSource();
            using (var producer = Build(fatal))
            {
                while (!stop.IsCancellationRequested && !fatal.IsCancellationRequested)
                {
                    var due = (long)((clock.Elapsed - started).TotalSeconds * ratePerSecond);
                    for (; seq < due && !fatal.IsCancellationRequested; seq++)
                    {
                        ProduceOne(producer, seq);
                    }
                    Thread.Sleep(5);
                }
                producer.Flush(TimeSpan.FromSeconds(60));
            }
            fatal.Dispose();
        }
    }

    private IProducer<string, string> Build(CancellationTokenSource fatal) =>
        new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            ClientId = Stream,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 5,
            MessageTimeoutMs = 120_000,
        })
        .SetLogHandler(static (_, _) => { })
        .SetErrorHandler((_, e) =>
        {
            if (e.IsFatal)
            {
                Interlocked.Increment(ref _fatalErrors);
                fatal.Cancel();
            }
        })
        .Build();

    private void ProduceOne(IProducer<string, string> producer, long seq)
    {
        var key = $"{Stream}/k{seq % Keys}";
        var sentAt = ledger.Clock.Elapsed;
        try
        {
            producer.Produce(Topic, new Message<string, string> { Key = key, Value = DeliveryLedger.Value(Stream, seq, padding) }, report =>
            {
                if (report.Error.IsError)
                {
                    ledger.Fail(report.Error.Code.ToString());
                }
                else
                {
                    ledger.Acknowledged(new AckedRecord(Stream, seq, key, report.Topic, report.Partition.Value, report.Offset.Value, sentAt, ledger.Clock.Elapsed));
                }
            });
        }
        catch (ProduceException<string, string> e)
        {
            ledger.Fail($"local {e.Error.Code}");
        }
    }
}

/// <summary>Short-lived producers: each connects, sends a few records, flushes and disconnects.</summary>
public sealed class ConnectionChurn(string bootstrapServers, string[] topics, string padding, DeliveryLedger ledger)
{
    private int _opened;

    public int Opened => Volatile.Read(ref _opened);

    public async Task RunAsync(TimeSpan every, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var n = Interlocked.Increment(ref _opened);
            var stream = $"churn-{n:D4}";
            var topic = topics[n % topics.Length];
            await Task.Run(() => OneProducer(stream, topic), CancellationToken.None);
            try
            {
                await Task.Delay(every, stop);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private void OneProducer(string stream, string topic)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            ClientId = stream,
            // Half of them idempotent, half plain acks=all, so both producer paths open and close connections.
            EnableIdempotence = stream.EndsWith('0') || stream.EndsWith('2') || stream.EndsWith('4') || stream.EndsWith('6') || stream.EndsWith('8'),
            Acks = Acks.All,
            LingerMs = 2,
            MessageTimeoutMs = 60_000,
        }).SetLogHandler(static (_, _) => { }).Build();
        for (long seq = 0; seq < 10; seq++)
        {
            var key = $"{stream}/k0";
            var sentAt = ledger.Clock.Elapsed;
            var s = seq;
            producer.Produce(topic, new Message<string, string> { Key = key, Value = DeliveryLedger.Value(stream, seq, padding) }, report =>
            {
                if (report.Error.IsError)
                {
                    ledger.Fail(report.Error.Code.ToString());
                }
                else
                {
                    ledger.Acknowledged(new AckedRecord(stream, s, key, report.Topic, report.Partition.Value, report.Offset.Value, sentAt, ledger.Clock.Elapsed));
                }
            });
        }
        producer.Flush(TimeSpan.FromSeconds(60));
    }
}

/// <summary>A consumer group member (classic or KIP-848) that consumes, commits every 2 s and reports its lag.</summary>
public sealed class GroupConsumer(string bootstrapServers, string group, string topic, GroupProtocol protocol)
{
    private long _consumed;
    private long _lag = -1;
    private long _commits;
    private long _commitErrors;
    private long _errors;

    public string Group { get; } = group;
    public string Topic { get; } = topic;
    public GroupProtocol Protocol { get; } = protocol;
    public long Consumed => Interlocked.Read(ref _consumed);
    public long Lag => Interlocked.Read(ref _lag);
    public long Commits => Interlocked.Read(ref _commits);
    public long CommitErrors => Interlocked.Read(ref _commitErrors);
    public long Errors => Interlocked.Read(ref _errors);

    public void Run(CancellationToken stop)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = Group,
            ClientId = Group,
            GroupProtocol = Protocol,
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = 100,
        };
        if (Protocol == GroupProtocol.Classic)
        {
            config.SessionTimeoutMs = 10_000;
        }
        using var consumer = new ConsumerBuilder<string, string>(config)
            .SetLogHandler(static (_, _) => { })
            .SetErrorHandler((_, _) => Interlocked.Increment(ref _errors))
            .Build();
        consumer.Subscribe(Topic);
        var lastCommit = Stopwatch.StartNew();
        var lastLag = Stopwatch.StartNew();
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (consumer.Consume(200) is { } result && !result.IsPartitionEOF)
                {
                    Interlocked.Increment(ref _consumed);
                }
            }
            catch (ConsumeException)
            {
                Interlocked.Increment(ref _errors);
            }
            if (lastCommit.Elapsed >= TimeSpan.FromSeconds(2))
            {
                lastCommit.Restart();
                Commit(consumer);
            }
            if (lastLag.Elapsed >= TimeSpan.FromSeconds(5))
            {
                lastLag.Restart();
                Interlocked.Exchange(ref _lag, CurrentLag(consumer));
            }
        }
        Commit(consumer);
        consumer.Close();
    }

    private void Commit(IConsumer<string, string> consumer)
    {
        try
        {
            if (consumer.Assignment.Count > 0)
            {
                consumer.Commit();
                Interlocked.Increment(ref _commits);
            }
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset)
        {
            // Nothing consumed since the last commit.
        }
        catch (KafkaException)
        {
            Interlocked.Increment(ref _commitErrors);
        }
    }

    // High watermark as last seen in fetch responses, minus the position: no extra requests.
    private static long CurrentLag(IConsumer<string, string> consumer)
    {
        long lag = 0;
        foreach (var partition in consumer.Assignment)
        {
            var high = consumer.GetWatermarkOffsets(partition).High;
            var position = consumer.Position(partition);
            if (high.Value >= 0 && position.Value >= 0)
            {
                lag += Math.Max(0, high.Value - position.Value);
            }
        }
        return lag;
    }
}
