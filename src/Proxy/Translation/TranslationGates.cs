using Confluent.Kafka;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Switching;

namespace Switchback.Proxy.Translation;

/// <summary>
/// Readiness gates for families whose replication does not keep offsets (MirrorMaker 2), where comparing end offsets
/// compares unrelated numbers. Data parity: the replication lag per source partition, measured from the newest offset
/// sync (source records after its upstream offset that the target does not hold after its downstream offset). Offset
/// parity: every committed offset of the family's groups translates, and (for every strategy but identity) no group
/// has a member still attached on the old read cluster: a member that stays attached across the switch keeps fetching
/// at its old cluster's offsets on the new one until it rejoins, and would skip or re-read records there (MirrorMaker 2
/// syncs a group's offsets only while it has no active member, for the same reason). Null from a method means the
/// family's strategy leaves that gate as it is.
/// </summary>
public sealed class TranslationGates(ProxyConfig config, OffsetTranslators translators, Func<string, ClusterAdmin> admins, GroupMembers members)
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);
    // Counting the records after the newest sync (markers and gaps are not records) stops here and keeps the estimate.
    private const int MaxRecordsCounted = 10_000;

    public Task<GateResult>? DataParityAsync(string gate, string family, string from, string to, IReadOnlyList<TopicPartition> partitions) =>
        translators.For(family) switch
        {
            MirrorMakerTranslator mm2 => ReplicationLagAsync(gate, mm2, from, to, partitions),
            TimestampTranslator timestamps => TimestampLagAsync(gate, family, timestamps, from, to, partitions),
            _ => null,
        };

    /// <summary>
    /// Data parity where replication keeps timestamps but not offsets: per partition, how far the newest record on
    /// <paramref name="to"/> trails the newest on <paramref name="from"/>, against the family's <c>Gates.MaxLagMs</c>
    /// (default: not at all). End offsets say nothing here; record counts cannot be compared either.
    /// </summary>
    private async Task<GateResult> TimestampLagAsync(string gate, string family, TimestampTranslator timestamps, string from, string to,
        IReadOnlyList<TopicPartition> partitions)
    {
        var maxLagMs = config.Families.FirstOrDefault(f => f.Name == family)?.LagLimits.MaxMs ?? 0;
        Dictionary<TopicPartition, Timestamp?> oldNewest, newNewest;
        try
        {
            using var timeout = new CancellationTokenSource(CallTimeout * 2);
            oldNewest = await timestamps.NewestTimestampsAsync(from, partitions, timeout.Token).ConfigureAwait(false);
            newNewest = await timestamps.NewestTimestampsAsync(to, partitions, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KafkaException or OperationCanceledException)
        {
            return new GateResult(gate, false, $"the newest record timestamps could not be read: {(e is KafkaException k ? k.Error.Reason : "not in time")}", null);
        }
        var behind = new List<object>();
        foreach (var partition in partitions)
        {
            if (oldNewest.GetValueOrDefault(partition) is not { } newestOld)
            {
                continue; // nothing to have
            }
            var newestNew = newNewest.GetValueOrDefault(partition);
            var lagMs = newestNew is { } n ? newestOld.UnixTimestampMs - n.UnixTimestampMs : (long?)null;
            if (lagMs is null || lagMs > maxLagMs)
            {
                behind.Add(new
                {
                    topic = partition.Topic,
                    partition = partition.Partition.Value,
                    fromNewest = newestOld.UtcDateTime,
                    toNewest = newestNew?.UtcDateTime,
                    behindMs = lagMs,
                });
            }
        }
        return new GateResult(gate, behind.Count == 0,
            behind.Count == 0
                ? $"'{to}' has records as recent as '{from}''s newest on every partition ({partitions.Count}; timestamps compared, lag allowed {maxLagMs} ms)"
                : $"'{to}' trails '{from}''s newest record on {behind.Count} partition(s) by more than {maxLagMs} ms (timestamps compared)",
            behind.Count == 0 ? null : behind);
    }

    public Task<GateResult>? OffsetParityAsync(string family, string from, string to, IReadOnlyCollection<string> groups, IReadOnlyList<TopicPartition> partitions) =>
        translators.For(family) switch
        {
            MirrorMakerTranslator mm2 => EveryOffsetTranslatesAsync(mm2, from, to, groups, partitions),
            TimestampTranslator => Task.FromResult(NoMemberAttached(from, groups, []) is { Count: > 0 } attached
                ? new GateResult("offset-parity", false, AttachedSummary(attached), attached)
                : new GateResult("offset-parity", true, $"{groups.Count} group(s): none has a member attached on '{from}'; offsets are translated by timestamp", null)),
            _ => null,
        };

    /// <summary>The groups with members the proxy saw on <paramref name="from"/> that have not left, added to <paramref name="problems"/>.</summary>
    private List<object> NoMemberAttached(string from, IReadOnlyCollection<string> groups, List<object> problems)
    {
        foreach (var group in groups)
        {
            if (members.On(from, group) is { Count: > 0 } attached)
            {
                problems.Add(new { group, attachedMembers = attached.Count, reason = $"stop its consumers first: an attached member would fetch at '{from}' offsets until it rejoins" });
            }
        }
        return problems;
    }

    private static string AttachedSummary(List<object> problems) =>
        $"{problems.Count} group(s) still have members attached (offsets differ between the clusters; stop the consumers, or force)";

    private async Task<GateResult> ReplicationLagAsync(string gate, MirrorMakerTranslator mm2, string from, string to, IReadOnlyList<TopicPartition> partitions)
    {
        var replication = $"MirrorMaker 2 replicates '{mm2.Config.SourceCluster}' to '{mm2.Config.TargetCluster}'";
        if (mm2.IsForward(from, to) != true)
        {
            return new GateResult(gate, false, $"{replication}: its offset syncs say nothing of how far '{to}' has '{from}''s records (use force to switch anyway)", null);
        }
        try
        {
            using var timeout = new CancellationTokenSource(CallTimeout);
            await mm2.Syncs.CatchUpAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InternalTopicUnavailableException or OperationCanceledException)
        {
            return new GateResult(gate, false, $"the offset syncs could not be read: {(e is OperationCanceledException ? $"topic '{mm2.Syncs.Topic}' not read to its end in time" : e.Message)}", null);
        }
        // Under the default replication policy the family's remote topics (<alias>.<topic>) are the replicas, not sources.
        var sourcePartitions = partitions.Where(p => mm2.Config.Policy == ReplicationPolicyKind.Identity || mm2.Config.UpstreamTopic(p.Topic) is null).ToList();
        var sourceEnds = await admins(from).EndOffsetsAsync(sourcePartitions, CallTimeout).ConfigureAwait(false);
        var remote = sourcePartitions.Select(p => new TopicPartition(mm2.Config.RemoteTopic(p.Topic), p.Partition)).ToList();
        var targetEnds = await admins(to).EndOffsetsAsync(remote, CallTimeout).ConfigureAwait(false);
        var behind = new List<object>();
        long lagging = 0;
        foreach (var partition in sourcePartitions)
        {
            var sourceEnd = sourceEnds.GetValueOrDefault(partition, 0);
            if (sourceEnd == 0)
            {
                continue;
            }
            var targetEnd = targetEnds.GetValueOrDefault(new TopicPartition(mm2.Config.RemoteTopic(partition.Topic), partition.Partition), 0);
            var latest = mm2.Syncs.Latest(partition.Topic, partition.Partition.Value);
            long lag;
            if (latest is not { } sync)
            {
                lag = sourceEnd;
            }
            else
            {
                var replicatedAfterSync = Math.Max(0, targetEnd - sync.Downstream - 1);
                lag = sourceEnd - sync.Upstream - 1 - replicatedAfterSync;
                if (lag > 0)
                {
                    // Offsets after the sync may be transaction markers or compacted away: count the records themselves.
                    lag = await RecordsAfterAsync(from, partition, sync.Upstream + 1, sourceEnd).ConfigureAwait(false) - replicatedAfterSync;
                }
            }
            if (lag > 0)
            {
                lagging += lag;
                behind.Add(new
                {
                    topic = partition.Topic,
                    partition = partition.Partition.Value,
                    sourceEnd,
                    latestSync = latest is { } s ? new { upstream = s.Upstream, downstream = s.Downstream } : null,
                    targetEnd,
                    behindBy = lag,
                });
            }
        }
        return new GateResult(gate, behind.Count == 0,
            behind.Count == 0
                ? $"{replication}: the offset syncs show '{to}' has every record of '{from}' ({sourcePartitions.Count} partitions)"
                : $"{replication}: the offset syncs show '{to}' behind '{from}' by {lagging} record(s) on {behind.Count} partition(s)",
            behind.Count == 0 ? null : behind);
    }

    /// <summary>Records (not markers, not gaps) at offsets from <paramref name="start"/> to before <paramref name="end"/>, counted up to a bound.</summary>
    private Task<long> RecordsAfterAsync(string cluster, TopicPartition partition, long start, long end) => Task.Run(() =>
    {
        LibrdkafkaLoader.EnsureLoaded();
        var clusterConfig = config.Cluster(cluster);
        var consumerConfig = new ConsumerConfig
        {
            BootstrapServers = string.Join(',', clusterConfig.BootstrapServers.Select(s => $"{s.Host}:{s.Port}")),
            ClientId = "switchback-replication-lag",
            GroupId = "switchback-replication-lag",
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = 50,
        };
        ClusterAdmin.ApplySecurity(consumerConfig, clusterConfig.UpstreamSecurity);
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(consumerConfig).SetLogHandler(static (_, _) => { }).SetErrorHandler(static (_, _) => { }).Build();
        consumer.Assign(new TopicPartitionOffset(partition, start));
        long counted = 0;
        var deadline = DateTime.UtcNow + CallTimeout;
        while (DateTime.UtcNow < deadline && counted < MaxRecordsCounted)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF || result.Offset.Value >= end)
            {
                consumer.Close();
                return counted;
            }
            counted++;
        }
        consumer.Close();
        return end - start; // not counted to the end: the offsets stand for records
    });

    private async Task<GateResult> EveryOffsetTranslatesAsync(MirrorMakerTranslator mm2, string from, string to, IReadOnlyCollection<string> groups,
        IReadOnlyList<TopicPartition> partitions)
    {
        var problems = NoMemberAttached(from, groups, []);
        var attached = problems.Count;
        var translated = 0;
        foreach (var group in groups)
        {
            var committed = await admins(from).CommittedOffsetsAsync(group, partitions, CallTimeout).ConfigureAwait(false);
            using var timeout = new CancellationTokenSource(CallTimeout * 2);
            foreach (var offset in await mm2.TranslateAsync(group, committed, from, to, timeout.Token).ConfigureAwait(false))
            {
                if (offset.NewOffset is null)
                {
                    problems.Add(new { group, topic = offset.Topic, partition = offset.Partition, committed = offset.OldOffset, reason = offset.Note });
                }
                else
                {
                    translated++;
                }
            }
        }
        return new GateResult("offset-parity", problems.Count == 0,
            problems.Count == 0
                ? $"{groups.Count} group(s): every committed offset ({translated}) translates to '{to}' through MirrorMaker 2's offset syncs"
                : attached == problems.Count ? AttachedSummary(problems) : $"{problems.Count - attached} committed offset(s) do not translate to '{to}'{(attached > 0 ? $"; {AttachedSummary(problems[..attached])}" : "")}",
            problems.Count == 0 ? null : problems);
    }
}
