using Confluent.Kafka;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Translation;

/// <summary>
/// A consumer group member reading through the proxy, one record at a time, committing (or not) each: what it was
/// given (by record value, which names the record whatever cluster or offset served it) and what it committed.
/// </summary>
public sealed class GroupReader : IDisposable
{
    private readonly IConsumer<string, string> _consumer;
    private readonly List<string> _errors = [];
    private readonly ITestOutputHelper _output;
    private bool _disposed;

    public GroupReader(string bootstrapServers, string group, GroupProtocol protocol, string topic, ITestOutputHelper output)
    {
        Group = group;
        _output = output;
        var config = new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = group,
            GroupProtocol = protocol,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            FetchWaitMaxMs = 50,
            // Small fetches, so that the consumer has not buffered everything before the switch.
            MaxPartitionFetchBytes = 1024,
            FetchMaxBytes = 4096,
            MessageMaxBytes = 4096,
            QueuedMaxMessagesKbytes = 16,
        };
        if (protocol == GroupProtocol.Classic)
        {
            config.SessionTimeoutMs = 6000;
            config.HeartbeatIntervalMs = 500;
        }
        _consumer = new ConsumerBuilder<string, string>(config)
            .SetErrorHandler((_, e) => { lock (_errors) { _errors.Add($"{(e.IsFatal ? "FATAL " : "")}{e.Code}: {e.Reason}"); } })
            .SetLogHandler(static (_, _) => { })
            .Build();
        _consumer.Subscribe(topic);
    }

    public string Group { get; }

    /// <summary>Every value given, in order.</summary>
    public List<string> Delivered { get; } = [];

    /// <summary>Per partition, the offset after the last record committed.</summary>
    public Dictionary<int, long> Committed { get; } = [];

    public int CommitFailures { get; private set; }

    /// <summary>Takes records while <paramref name="more"/> holds, committing each when <paramref name="commit"/>; fails when none comes for a minute.</summary>
    public void Take(Func<bool> more, bool commit)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (more())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{Group}: consumer stalled after {Delivered.Count} record(s); errors: {Errors()}");
            var result = _consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result is not { IsPartitionEOF: false, Message: not null })
            {
                continue;
            }
            deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            Delivered.Add(result.Message.Value);
            if (!commit)
            {
                continue;
            }
            try
            {
                _consumer.Commit(result);
                Committed[result.Partition.Value] = result.Offset.Value + 1;
            }
            catch (KafkaException e)
            {
                CommitFailures++;
                _output.WriteLine($"{Group}: commit of {result.TopicPartitionOffset} failed: {e.Error.Code} {e.Error.Reason}");
            }
        }
    }

    public string Errors()
    {
        lock (_errors)
        {
            return string.Join("; ", _errors);
        }
    }

    public void AssertNoFatalError()
    {
        lock (_errors)
        {
            Assert.DoesNotContain(_errors, e => e.StartsWith("FATAL", StringComparison.Ordinal));
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _consumer.Close();
        _consumer.Dispose();
    }
}
