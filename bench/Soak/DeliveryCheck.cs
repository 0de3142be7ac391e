using Confluent.Kafka;

namespace Switchback.Soak;

/// <summary>A record as found on a cluster, read directly (not through the proxy).</summary>
public readonly record struct StoredRecord(string Cluster, string Topic, int Partition, long Offset, string Stream, long Seq, string Key);

/// <summary>What the end-of-run comparison of acknowledged against stored records found.</summary>
public sealed record DeliveryCheckResult(
    long Acked,
    long FoundExactlyOnce,
    long Missing,
    long Duplicated,
    long OffsetMismatch,
    long OnExpectedCluster,
    long OnOtherCluster,
    long AmbiguousRoute,
    long Evicted,
    long OrderViolations,
    long StoredNotAcked,
    long UnparsedStored,
    IReadOnlyList<string> Examples,
    IReadOnlyList<(string Cluster, string Topic, int Partition, long Low, long High)> Partitions)
{
    public bool Passed => Missing == 0 && Duplicated == 0 && OffsetMismatch == 0 && OnOtherCluster == 0 && OrderViolations == 0;
}

/// <summary>
/// Reads every partition of the given topics on both clusters and checks each acknowledged record: stored exactly
/// once, at the offset its acknowledgement gave, on the cluster its family's write route named when it was sent,
/// and in send order among the records of its key on that partition.
/// </summary>
public static class DeliveryCheck
{
    public static DeliveryCheckResult Run(
        IReadOnlyDictionary<string, string> clusters,
        IReadOnlyList<(string Topic, int Partitions)> topics,
        IReadOnlyList<AckedRecord> acked,
        Func<AckedRecord, string?> expectedCluster)
    {
        var stored = new Dictionary<(string Stream, long Seq), List<StoredRecord>>();
        var partitions = new List<(string, string, int, long, long)>();
        var lowWatermarks = new Dictionary<(string Cluster, string Topic, int Partition), long>();
        long unparsed = 0;
        foreach (var (cluster, bootstrap) in clusters)
        {
            foreach (var (topic, count) in topics)
            {
                for (var p = 0; p < count; p++)
                {
                    var (low, high, records, bad) = ReadPartition(bootstrap, cluster, topic, p);
                    unparsed += bad;
                    partitions.Add((cluster, topic, p, low, high));
                    lowWatermarks[(cluster, topic, p)] = low;
                    foreach (var record in records)
                    {
                        if (!stored.TryGetValue((record.Stream, record.Seq), out var list))
                        {
                            stored[(record.Stream, record.Seq)] = list = new List<StoredRecord>(1);
                        }
                        list.Add(record);
                    }
                }
            }
        }

        long once = 0, missing = 0, duplicated = 0, mismatch = 0, expected = 0, other = 0, ambiguous = 0, evicted = 0;
        var examples = new List<string>();
        void Example(string text)
        {
            if (examples.Count < 10)
            {
                examples.Add(text);
            }
        }
        var ackedIds = new HashSet<(string, long)>();
        foreach (var record in acked)
        {
            ackedIds.Add((record.Stream, record.Seq));
            var want = expectedCluster(record);
            if (!stored.TryGetValue((record.Stream, record.Seq), out var copies))
            {
                // Evicted by the mock's ~5 MiB per-partition retention if below the low watermark of a cluster it may be on.
                var couldBeEvicted = clusters.Keys.Any(c => (want is null || want == c)
                    && lowWatermarks.TryGetValue((c, record.Topic, record.Partition), out var low) && record.Offset < low);
                if (couldBeEvicted)
                {
                    evicted++;
                }
                else
                {
                    missing++;
                    Example($"missing: {record.Stream}#{record.Seq} acked at {record.Topic}/{record.Partition}@{record.Offset} (expected on {want ?? "either"})");
                }
                continue;
            }
            if (copies.Count > 1)
            {
                duplicated++;
                Example($"duplicate: {record.Stream}#{record.Seq} stored {copies.Count}x: {string.Join(", ", copies.Select(c => $"{c.Cluster}:{c.Topic}/{c.Partition}@{c.Offset}"))}");
                continue;
            }
            once++;
            var copy = copies[0];
            if (copy.Topic != record.Topic || copy.Partition != record.Partition || copy.Offset != record.Offset)
            {
                mismatch++;
                Example($"offset: {record.Stream}#{record.Seq} acked {record.Topic}/{record.Partition}@{record.Offset}, stored {copy.Cluster}:{copy.Topic}/{copy.Partition}@{copy.Offset}");
            }
            if (want is null)
            {
                ambiguous++;
            }
            else if (want == copy.Cluster)
            {
                expected++;
            }
            else
            {
                other++;
                Example($"cluster: {record.Stream}#{record.Seq} sent at {record.SentAt.TotalSeconds:0.000}s, route said {want}, stored on {copy.Cluster}");
            }
        }

        // Per-key order: on each cluster and partition, a key's records appear in the order they were sent.
        long orderViolations = 0;
        foreach (var group in stored.Values.SelectMany(l => l).GroupBy(r => (r.Cluster, r.Topic, r.Partition, r.Key)))
        {
            long lastSeq = -1;
            string lastStream = "";
            foreach (var record in group.OrderBy(r => r.Offset))
            {
                if (record.Stream == lastStream && record.Seq <= lastSeq)
                {
                    orderViolations++;
                    Example($"order: key {record.Key} on {record.Cluster}:{record.Topic}/{record.Partition}: #{record.Seq} at @{record.Offset} after #{lastSeq}");
                }
                lastStream = record.Stream;
                lastSeq = record.Seq;
            }
        }
        var storedNotAcked = stored.Keys.LongCount(id => !ackedIds.Contains(id));
        return new DeliveryCheckResult(acked.Count, once, missing, duplicated, mismatch, expected, other, ambiguous, evicted,
            orderViolations, storedNotAcked, unparsed, examples, partitions);
    }

    private static (long Low, long High, List<StoredRecord> Records, long Unparsed) ReadPartition(string bootstrap, string cluster, string topic, int partition)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = $"soak-check-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            FetchWaitMaxMs = 50,
        }).SetLogHandler(static (_, _) => { }).Build();
        var tp = new TopicPartition(topic, partition);
        var marks = consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(30));
        var records = new List<StoredRecord>();
        long unparsed = 0;
        if (marks.High.Value <= marks.Low.Value)
        {
            return (marks.Low.Value, marks.High.Value, records, 0);
        }
        consumer.Assign(new TopicPartitionOffset(tp, marks.Low));
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromSeconds(5));
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                if (result.Offset.Value >= marks.High.Value)
                {
                    break;
                }
                continue;
            }
            if (DeliveryLedger.TryParseValue(result.Message.Value, out var stream, out var seq))
            {
                records.Add(new StoredRecord(cluster, topic, partition, result.Offset.Value, stream, seq, result.Message.Key));
            }
            else
            {
                unparsed++;
            }
            if (result.Offset.Value + 1 >= marks.High.Value)
            {
                break;
            }
        }
        return (marks.Low.Value, marks.High.Value, records, unparsed);
    }
}
