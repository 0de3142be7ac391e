using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Switching;
using Switchback.Proxy.Translation;
using Xunit;

namespace Switchback.Proxy.Tests.Translation;

/// <summary>
/// Stands in for MirrorMaker 2, which cannot run here (no JVM): copies the records of a topic from the source cluster to
/// the target cluster partition by partition, in order, and publishes what MirrorMaker 2 would in its exact byte layout:
/// offset syncs (to partition 0 of <c>mm2-offset-syncs.target.internal</c> on the source) for the first record it copies,
/// every <see cref="SyncSpacing"/>-th record after the last sync (its <c>offset.lag.max</c>) and the last record of each
/// pass; and, when asked, checkpoints of a group (to <c>source.checkpoints.internal</c> on the target).
/// </summary>
public sealed class MirrorMakerStandIn(MockKafkaCluster source, MockKafkaCluster target, string topic, int partitions, int syncSpacing)
{
    public const string SyncsTopic = "mm2-offset-syncs.target.internal";
    public const string CheckpointsTopic = "source.checkpoints.internal";

    // Per partition: source offset -> target offset of each copied record, and the source offsets already copied up to.
    private readonly Dictionary<int, SortedDictionary<long, long>> _copied = Enumerable.Range(0, partitions).ToDictionary(p => p, _ => new SortedDictionary<long, long>());
    private readonly Dictionary<int, long> _nextSource = Enumerable.Range(0, partitions).ToDictionary(p => p, _ => 0L);
    private readonly Dictionary<int, long?> _lastSyncedSource = Enumerable.Range(0, partitions).ToDictionary(p => p, _ => (long?)null);

    public int SyncSpacing => syncSpacing;

    /// <summary>The syncs published, per partition, oldest first.</summary>
    public Dictionary<int, List<OffsetSync>> Syncs { get; } = Enumerable.Range(0, partitions).ToDictionary(p => p, _ => new List<OffsetSync>());

    /// <summary>Creates MirrorMaker 2's internal topics (it would create them itself).</summary>
    public void CreateInternalTopics()
    {
        source.CreateTopic(SyncsTopic, 1);
        target.CreateTopic(CheckpointsTopic, 1);
    }

    /// <summary>Copies up to <paramref name="maxRecords"/> more records per partition (all when null), then syncs the last one copied.</summary>
    public async Task ReplicateAsync(int? maxRecords = null)
    {
        var records = SwitchingRig.ReadAll(source, "source", topic, partitions);
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = target.BootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = true,
            MaxInFlight = 1,
        }).SetLogHandler(static (_, _) => { }).Build();
        var syncs = new List<OffsetSync>();
        foreach (var partition in Enumerable.Range(0, partitions))
        {
            var pending = records.Where(r => r.Partition == partition && r.Offset >= _nextSource[partition]).Take(maxRecords ?? int.MaxValue).ToList();
            for (var i = 0; i < pending.Count; i++)
            {
                var record = pending[i];
                var delivered = await producer.ProduceAsync(new TopicPartition(topic, partition), new Message<string, string> { Key = record.Key, Value = record.Value });
                _copied[partition][record.Offset] = delivered.Offset.Value;
                _nextSource[partition] = record.Offset + 1;
                var last = _lastSyncedSource[partition];
                if (last is null || record.Offset - last.Value >= syncSpacing || i == pending.Count - 1)
                {
                    var sync = new OffsetSync(topic, partition, record.Offset, delivered.Offset.Value);
                    syncs.Add(sync);
                    Syncs[partition].Add(sync);
                    _lastSyncedSource[partition] = record.Offset;
                }
            }
        }
        await ProduceAsync(source, SyncsTopic, 0, syncs.Select(s => (MirrorRecords.OffsetSyncKey(s), MirrorRecords.OffsetSyncValue(s))));
    }

    /// <summary>
    /// Publishes checkpoints of <paramref name="group"/>'s committed source offsets, translated exactly (the target
    /// offset of the first copied record at or after each), as MirrorMaker 2's checkpoint task would from a sync at that record.
    /// </summary>
    public async Task<Dictionary<int, Checkpoint>> CheckpointAsync(string group, IReadOnlyDictionary<int, long> committed)
    {
        var checkpoints = new Dictionary<int, Checkpoint>();
        foreach (var (partition, offset) in committed)
        {
            var next = _copied[partition].FirstOrDefault(c => c.Key >= offset);
            Assert.True(next.Key >= offset && _copied[partition].ContainsKey(next.Key), $"partition {partition}: nothing copied at or after {offset}");
            checkpoints[partition] = new Checkpoint(group, topic, partition, offset, next.Value, "");
        }
        await ProduceAsync(target, CheckpointsTopic, 0, checkpoints.Values.Select(c => (MirrorRecords.CheckpointKey(c), MirrorRecords.CheckpointValue(c))));
        return checkpoints;
    }

    /// <summary>The target offset a committed source offset must become: MirrorMaker 2's rule over the syncs published.</summary>
    public long ExpectedTranslation(int partition, long committed)
    {
        var sync = Syncs[partition].Last(s => s.Upstream <= committed);
        return sync.Downstream + (sync.Upstream == committed ? 0 : 1);
    }

    /// <summary>The target offset that holds exactly the source record at or after <paramref name="committed"/> (no re-read).</summary>
    public long ExactTranslation(int partition, long committed)
    {
        var next = _copied[partition].Where(c => c.Key >= committed).Select(c => (long?)c.Value).FirstOrDefault();
        return next ?? _copied[partition].Values.Max() + 1;
    }

    private static async Task ProduceAsync(MockKafkaCluster cluster, string topicName, int partition, IEnumerable<(byte[] Key, byte[] Value)> records)
    {
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers, Acks = Acks.All, EnableIdempotence = true })
            .SetLogHandler(static (_, _) => { }).Build();
        foreach (var (key, value) in records)
        {
            producer.Produce(new TopicPartition(topicName, partition), new Message<byte[], byte[]> { Key = key, Value = value });
        }
        await Task.Run(() => producer.Flush(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, producer.Flush(TimeSpan.Zero));
    }
}
