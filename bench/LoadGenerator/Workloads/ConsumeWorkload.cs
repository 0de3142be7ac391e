using System.Diagnostics;
using Confluent.Kafka;

namespace Switchback.Bench.LoadGenerator.Workloads;

/// <summary>Consume settings: re-read the retained window of every partition of a pre-filled topic.</summary>
public sealed record ConsumeSettings(string BootstrapServers, string Topic, TimeSpan Duration, int FetchWaitMaxMs = 10);

/// <summary>
/// Assigns every partition from the beginning, reads to the end of each, and starts over until the time is up.
/// The mock keeps only a few MiB per partition, so re-reading the retained window is what keeps a consumer busy.
/// </summary>
public static class ConsumeWorkload
{
    public static RunMeasurement Run(ConsumeSettings settings)
    {
        var partitions = DescribePartitions(settings.BootstrapServers, settings.Topic);
        var config = new ConsumerConfig
        {
            BootstrapServers = settings.BootstrapServers,
            GroupId = $"bench-consume-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = settings.FetchWaitMaxMs,
            ClientId = "switchback-loadgen",
        };
        using var consumer = new ConsumerBuilder<Ignore, int>(config).SetValueDeserializer(new LengthDeserializer()).Build();
        var fromStart = partitions.Select(p => new TopicPartitionOffset(p, Offset.Beginning)).ToList();
        consumer.Assign(fromStart);

        long records = 0;
        long bytes = 0;
        var atEnd = new HashSet<int>();
        var start = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(start) < settings.Duration)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                atEnd.Add(result.Partition.Value);
                if (atEnd.Count == partitions.Count)
                {
                    atEnd.Clear();
                    consumer.Assign(fromStart);
                }
                continue;
            }
            records++;
            bytes += result.Message.Value;
        }
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        consumer.Close();
        if (records == 0)
        {
            throw new InvalidOperationException($"consumed nothing from {settings.Topic} at {settings.BootstrapServers}; is it pre-filled?");
        }
        return new RunMeasurement(records, bytes, seconds, 0, null);
    }

    private static List<TopicPartition> DescribePartitions(string bootstrap, string topic)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).Build();
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(10));
        var described = metadata.Topics.Single(t => t.Topic == topic);
        if (described.Error.IsError || described.Partitions.Count == 0)
        {
            throw new InvalidOperationException($"topic {topic} at {bootstrap}: {described.Error.Reason}");
        }
        return [.. described.Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).OrderBy(p => p.Partition.Value)];
    }

    /// <summary>Returns the value's length, so consuming allocates no value buffers.</summary>
    private sealed class LengthDeserializer : IDeserializer<int>
    {
        public int Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context) => isNull ? 0 : data.Length;
    }
}
