using System.Diagnostics;
using Confluent.Kafka;

namespace Switchback.Bench;

/// <summary>One producer sending its share of the rate, in 1 ms steps, recording each record's delivery latency.</summary>
public sealed class PacedProducer(string bootstrapServers, int index, SwitchStallOptions options, Stopwatch clock)
{
    private readonly List<(TimeSpan SentAt, TimeSpan Latency)> _deliveries = new(1 << 16);
    private long _failed;

    public int Index { get; } = index;
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Records the client refused to queue (its buffer of unacknowledged records was full): the machine could not keep up.</summary>
    public long QueueFull { get; private set; }

    /// <summary>Only read once the producer has been flushed and disposed.</summary>
    public IReadOnlyList<(TimeSpan SentAt, TimeSpan Latency)> Deliveries => _deliveries;

    public void Run(CancellationToken stop)
    {
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            ClientId = $"switch-stall-{Index}",
            EnableIdempotence = options.Idempotent,
            MaxInFlight = options.Idempotent ? 5 : 1,
            Acks = Acks.All,
            LingerMs = 1,
            MessageTimeoutMs = 60_000,
        }).SetLogHandler(static (_, _) => { }).Build();
        var value = new byte[options.RecordBytes];
        var perSecond = (double)options.Rate / options.Producers;
        var started = clock.Elapsed;
        long produced = 0;
        while (!stop.IsCancellationRequested)
        {
            var due = (long)((clock.Elapsed - started).TotalSeconds * perSecond);
            for (; produced < due; produced++)
            {
                var sentAt = clock.Elapsed;
                var key = BitConverter.GetBytes(produced * options.Producers + Index);
                try
                {
                    // Delivery reports arrive on the producer's one poll thread, so the list needs no lock.
                    producer.Produce(ProxyRig.Topic, new Message<byte[], byte[]> { Key = key, Value = value }, report =>
                    {
                        if (report.Error.IsError)
                        {
                            Interlocked.Increment(ref _failed);
                        }
                        else
                        {
                            _deliveries.Add((sentAt, clock.Elapsed - sentAt));
                        }
                    });
                }
                catch (ProduceException<byte[], byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    QueueFull++;
                }
            }
            Thread.Sleep(1);
        }
        producer.Flush(TimeSpan.FromSeconds(60));
    }
}
