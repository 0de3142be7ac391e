using Confluent.Kafka;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Switching;

namespace Switchback.Proxy.Translation;

/// <summary>
/// For replication that keeps record timestamps but publishes no offset mapping: the group's position on the new
/// cluster is the first record there whose timestamp is at least that of the last record the group consumed on the
/// old one (the record before its committed offset). That record, and any with the same timestamp, is delivered
/// again: at-least-once, never a skip as long as the new cluster holds the same records with the same timestamps.
/// </summary>
public sealed class TimestampTranslator(Func<string, ClusterConfig> clusters) : IOffsetTranslator
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);
    // How far back (in offsets) the search for a record before the committed offset goes: markers and compaction leave gaps.
    private const int MaxBackoffSteps = 12;

    public string Strategy => "timestamp";

    public Task<IReadOnlyList<TranslatedOffset>> TranslateAsync(string group, IReadOnlyDictionary<TopicPartition, long> committed, string from, string to,
        CancellationToken cancellationToken) =>
        Task.Run<IReadOnlyList<TranslatedOffset>>(() =>
        {
            using var old = Consumer(clusters(from), "old");
            using var next = Consumer(clusters(to), "new");
            var result = new List<TranslatedOffset>(committed.Count);
            foreach (var (partition, offset) in committed)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var translated = new TranslatedOffset(partition.Topic, partition.Partition.Value, offset, partition.Topic, null, TranslationMethod.Timestamp);
                try
                {
                    result.Add(Translate(old, next, partition, offset, translated));
                }
                catch (KafkaException e)
                {
                    result.Add(translated.Untranslated($"{e.Error.Code}: {e.Error.Reason}"));
                }
            }
            old.Close();
            next.Close();
            return result;
        }, cancellationToken);

    private static TranslatedOffset Translate(IConsumer<byte[]?, byte[]?> old, IConsumer<byte[]?, byte[]?> next, TopicPartition partition, long offset, TranslatedOffset translated)
    {
        var newStart = next.QueryWatermarkOffsets(partition, CallTimeout).Low.Value;
        var last = LastRecordBefore(old, partition, offset);
        if (last is null)
        {
            return translated with { NewOffset = newStart, Note = "nothing consumed before the committed offset: the new cluster's first offset" };
        }
        // Throws on an error (a KafkaException, reported per partition by the caller).
        var found = next.OffsetsForTimes([new TopicPartitionTimestamp(partition, last.Value.Timestamp)], CallTimeout).Single();
        if (found.Offset.Value >= 0)
        {
            return translated with { NewOffset = found.Offset.Value, Note = $"first record at or after {last.Value.Timestamp.UtcDateTime:O} (old offset {last.Value.Offset})" };
        }
        // Either nothing as recent has been replicated yet, or the cluster cannot look up by timestamp: jumping to its end
        // could skip records, so the partition is left untranslated (the operator decides, see the answer).
        return translated.Untranslated($"the new cluster has no record at or after {last.Value.Timestamp.UtcDateTime:O} (the last consumed, old offset {last.Value.Offset})");
    }

    /// <summary>
    /// The timestamp of each partition's newest record on <paramref name="cluster"/> (null for a partition with none):
    /// with replication that keeps timestamps, how far one cluster's newest record trails the other's is the lag.
    /// </summary>
    public Task<Dictionary<TopicPartition, Timestamp?>> NewestTimestampsAsync(string cluster, IReadOnlyList<TopicPartition> partitions,
        CancellationToken cancellationToken) =>
        Task.Run(() =>
        {
            using var consumer = Consumer(clusters(cluster), "newest");
            var newest = new Dictionary<TopicPartition, Timestamp?>();
            foreach (var partition in partitions)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var end = consumer.QueryWatermarkOffsets(partition, CallTimeout).High.Value;
                newest[partition] = LastRecordBefore(consumer, partition, end)?.Timestamp;
            }
            consumer.Close();
            return newest;
        }, cancellationToken);

    /// <summary>The last record before <paramref name="offset"/> (its offset and timestamp), searching back over gaps.</summary>
    private static (long Offset, Timestamp Timestamp)? LastRecordBefore(IConsumer<byte[]?, byte[]?> consumer, TopicPartition partition, long offset)
    {
        var start = consumer.QueryWatermarkOffsets(partition, CallTimeout).Low.Value;
        if (offset <= start)
        {
            return null;
        }
        long step = 1;
        for (var attempt = 0; attempt < MaxBackoffSteps; attempt++, step *= 4)
        {
            var from = Math.Max(start, offset - step);
            consumer.Assign(new TopicPartitionOffset(partition, from));
            (long, Timestamp)? last = null;
            var deadline = DateTime.UtcNow + CallTimeout;
            while (DateTime.UtcNow < deadline)
            {
                var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result is null)
                {
                    continue;
                }
                if (result.IsPartitionEOF || result.Offset.Value >= offset)
                {
                    break;
                }
                last = (result.Offset.Value, result.Message.Timestamp);
            }
            consumer.Unassign();
            if (last is not null)
            {
                return last;
            }
            if (from == start)
            {
                return null;
            }
        }
        throw new KafkaException(new Error(ErrorCode.Local_Fail, $"no record found in the {step / 4} offsets before {offset}"));
    }

    private static IConsumer<byte[]?, byte[]?> Consumer(ClusterConfig cluster, string purpose)
    {
        LibrdkafkaLoader.EnsureLoaded();
        var config = new ConsumerConfig
        {
            BootstrapServers = string.Join(',', cluster.BootstrapServers.Select(s => $"{s.Host}:{s.Port}")),
            ClientId = $"switchback-timestamps-{purpose}",
            GroupId = "switchback-timestamps",
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            EnablePartitionEof = true,
            AutoOffsetReset = AutoOffsetReset.Error,
            FetchWaitMaxMs = 50,
            AllowAutoCreateTopics = false,
        };
        ClusterAdmin.ApplySecurity(config, cluster.UpstreamSecurity);
        return new ConsumerBuilder<byte[]?, byte[]?>(config).SetLogHandler(static (_, _) => { }).SetErrorHandler(static (_, _) => { }).Build();
    }
}
