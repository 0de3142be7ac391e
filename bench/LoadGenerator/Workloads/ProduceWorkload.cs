using System.Diagnostics;
using Confluent.Kafka;
using HdrHistogram;

namespace Switchback.Bench.LoadGenerator.Workloads;

/// <summary>Produce settings: 1 KiB records, acks=all, linger 5 ms unless told otherwise.</summary>
public sealed record ProduceSettings(
    string BootstrapServers,
    string Topic,
    TimeSpan Duration,
    int RecordBytes = 1024,
    int LingerMs = 5,
    double? RecordsPerSecond = null,
    bool RecordLatency = false);

/// <summary>
/// Produces flat out or at a fixed rate. Throughput counts acknowledged records only, over the time from the first
/// send to the end of the final flush; latency is from the <c>Produce</c> call to its delivery report.
/// </summary>
public static class ProduceWorkload
{
    public static RunMeasurement Run(ProduceSettings settings)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = settings.BootstrapServers,
            Acks = Acks.All,
            LingerMs = settings.LingerMs,
            EnableIdempotence = false,
            MessageTimeoutMs = 60_000,
            ClientId = "switchback-loadgen",
        };
        var payload = new byte[settings.RecordBytes];
        Random.Shared.NextBytes(payload);
        var message = new Message<Null, byte[]> { Value = payload };

        long delivered = 0;
        long errors = 0;
        // Delivery reports arrive on the producer's single poll thread, so the histogram is written by one thread.
        var histogram = settings.RecordLatency ? new LongHistogram(TimeSpan.TicksPerMinute / 10, 3) : null;

        using var producer = new ProducerBuilder<Null, byte[]>(config).Build();
        // Connect and fetch metadata before the clock starts.
        WarmUp(producer, settings.Topic, message);

        Action<DeliveryReport<Null, byte[]>> countOnly = report =>
        {
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref errors);
            }
            else
            {
                Interlocked.Increment(ref delivered);
            }
        };

        var start = Stopwatch.GetTimestamp();
        var stopAt = start + (long)(settings.Duration.TotalSeconds * Stopwatch.Frequency);
        long sent = 0;
        while (true)
        {
            var now = Stopwatch.GetTimestamp();
            if (now >= stopAt)
            {
                break;
            }
            long due;
            if (settings.RecordsPerSecond is { } rate)
            {
                due = (long)((now - start) * rate / Stopwatch.Frequency);
                if (sent >= due)
                {
                    Thread.Sleep(1);
                    continue;
                }
            }
            else
            {
                due = sent + 1;
            }
            while (sent < due)
            {
                Action<DeliveryReport<Null, byte[]>> handler = countOnly;
                if (histogram is not null)
                {
                    var sentAt = Stopwatch.GetTimestamp();
                    handler = report =>
                    {
                        countOnly(report);
                        if (!report.Error.IsError)
                        {
                            var micros = (Stopwatch.GetTimestamp() - sentAt) * 1_000_000 / Stopwatch.Frequency;
                            histogram.RecordValue(Math.Max(1, micros));
                        }
                    };
                }
                try
                {
                    producer.Produce(settings.Topic, message, handler);
                    sent++;
                }
                catch (ProduceException<Null, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    // The client's queue is full: the relay or the broker is the bottleneck right now.
                    Thread.Sleep(1);
                    break;
                }
            }
        }
        producer.Flush(TimeSpan.FromSeconds(60));
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var records = Interlocked.Read(ref delivered);
        return new RunMeasurement(records, records * settings.RecordBytes, seconds, Interlocked.Read(ref errors), Summarise(histogram));
    }

    private static void WarmUp(IProducer<Null, byte[]> producer, string topic, Message<Null, byte[]> message)
    {
        var result = producer.ProduceAsync(topic, message).GetAwaiter().GetResult();
        if (result.Status != PersistenceStatus.Persisted)
        {
            throw new InvalidOperationException($"warm-up record to {topic} was not persisted ({result.Status}).");
        }
    }

    internal static LatencySummary? Summarise(HistogramBase? histogram) =>
        histogram is null || histogram.TotalCount == 0
            ? null
            : new LatencySummary(
                histogram.TotalCount,
                histogram.GetValueAtPercentile(50),
                histogram.GetValueAtPercentile(99),
                histogram.GetValueAtPercentile(99.9),
                histogram.GetMaxValue());
}
