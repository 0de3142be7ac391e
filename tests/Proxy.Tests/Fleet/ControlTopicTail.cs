using System.Collections.Concurrent;
using System.Text.Json;
using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Fleet;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// Reads the fleet's control topic straight from the cluster, from the beginning and on, as an outside observer:
/// what every instance appended (prepare, ready, commit, producer mappings...), in log order, whether or not that
/// instance is still alive.
/// </summary>
internal sealed class ControlTopicTail : IDisposable
{
    private readonly IConsumer<string, byte[]> _consumer;
    private readonly ConcurrentQueue<ControlRecord> _records = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _reader;
    private readonly string _topic;
    private long _next;

    public ControlTopicTail(MockKafkaCluster cluster, string topic)
    {
        _topic = topic;
        _consumer = new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = $"control-tail-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 20,
        }).SetLogHandler(static (_, _) => { }).Build();
        _consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        _reader = new Thread(Read) { IsBackground = true, Name = "control-topic-tail" };
        _reader.Start();
    }

    /// <summary>The records read so far, in log order.</summary>
    public IReadOnlyList<ControlRecord> Records => [.. _records];

    /// <summary>Waits until every record appended before the call has been read.</summary>
    public async Task CaughtUpAsync(TimeSpan timeout)
    {
        var end = _consumer.QueryWatermarkOffsets(new TopicPartition(_topic, 0), TimeSpan.FromSeconds(10)).High.Value;
        using var deadline = new CancellationTokenSource(timeout);
        while (Interlocked.Read(ref _next) < end)
        {
            await Task.Delay(20, deadline.Token);
        }
    }

    private void Read()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                if (_consumer.Consume(_stop.Token) is { Message.Value: { } value } result)
                {
                    _records.Enqueue(JsonSerializer.Deserialize<ControlRecord>(value, ControlJson.Options)!);
                    Interlocked.Exchange(ref _next, result.Offset.Value + 1);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ConsumeException)
            {
                // A transient fetch error: the consumer goes on from where it was.
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _reader.Join(TimeSpan.FromSeconds(10));
        _consumer.Close();
        _consumer.Dispose();
        _stop.Dispose();
    }
}
