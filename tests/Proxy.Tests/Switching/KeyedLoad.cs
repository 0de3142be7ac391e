using System.Collections.Concurrent;
using System.Globalization;
using Confluent.Kafka;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// An idempotent producer writing numbered records under a few keys to <see cref="SwitchingRig.Topic"/> until stopped
/// (one record per key each round, then a pause): per-key order and exactly-once are checked from the numbers.
/// </summary>
public sealed class KeyedLoad
{
    public KeyedLoad(int keys, TimeSpan pause, TimeSpan? messageTimeout = null, Action<ProducerConfig>? configure = null)
    {
        Keys = keys;
        Pause = pause;
        MessageTimeout = messageTimeout ?? TimeSpan.FromSeconds(60);
        Configure = configure;
    }

    public int Keys { get; }
    public TimeSpan Pause { get; }
    public TimeSpan MessageTimeout { get; }
    private Action<ProducerConfig>? Configure { get; }

    /// <summary>Acknowledged records, as (key, sequence), in the order the acknowledgements came.</summary>
    public ConcurrentQueue<(string Key, int Sequence)> Acknowledged { get; } = new();

    /// <summary>Errors the producer reported (client errors and failed deliveries); none is expected.</summary>
    public ConcurrentQueue<string> Errors { get; } = new();

    /// <summary>Produces until <paramref name="stop"/>, then waits for every outstanding acknowledgement.</summary>
    public void Run(string bootstrap, CancellationToken stop)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrap,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 2,
            MessageTimeoutMs = (int)MessageTimeout.TotalMilliseconds,
        };
        Configure?.Invoke(config);
        using var producer = new ProducerBuilder<string, string>(config)
            .SetErrorHandler((_, e) => Errors.Enqueue($"{e.Code}: {e.Reason}")).SetLogHandler(static (_, _) => { }).Build();
        for (var sequence = 0; !stop.IsCancellationRequested; sequence++)
        {
            for (var k = 0; k < Keys; k++)
            {
                var key = $"k{k}";
                var value = sequence;
                producer.Produce(SwitchingRig.Topic, new Message<string, string> { Key = key, Value = value.ToString(CultureInfo.InvariantCulture) }, report =>
                {
                    if (report.Error.IsError)
                    {
                        Errors.Enqueue($"{key}={value}: {report.Error.Reason}");
                    }
                    else
                    {
                        Acknowledged.Enqueue((key, value));
                    }
                });
            }
            Thread.Sleep(Pause);
        }
        producer.Flush(MessageTimeout);
    }
}
