using System.Text.Json.Serialization;
using Confluent.Kafka;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Translation;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>
/// One readiness check and what it found. <see cref="Undetermined"/>: it could not be evaluated (a cluster did not
/// answer), so it did not pass, but nothing says it failed either.
/// </summary>
public sealed record GateResult(string Gate, bool Passed, string Summary, object? Evidence,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] bool Undetermined = false);

/// <summary>One partition the cluster taking over lacks records of: end offsets on both sides, and the age of the oldest missing record when it was read.</summary>
public sealed record PartitionLag(
    [property: JsonPropertyName("topic")] string Topic,
    [property: JsonPropertyName("partition")] int Partition,
    [property: JsonPropertyName("fromEnd")] long FromEnd,
    [property: JsonPropertyName("toEnd")] long ToEnd,
    [property: JsonPropertyName("behindBy")] long BehindBy,
    [property: JsonPropertyName("behindMs"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? BehindMs = null);

/// <summary>
/// The evaluation behind both the switch's readiness gates and the family scorecard (one implementation): both
/// clusters reachable; data parity (the cluster taking over has the records of the one it replaces, per partition of
/// the family, within the family's <see cref="LagLimits"/>); offset parity (every committed group offset of the family
/// exists on the new read cluster).
/// For a family whose replication does not keep offsets, <paramref name="translation"/> measures the switch's data and
/// offset parity its own way.
/// </summary>
public sealed class ReadinessGates(ProxyState state, Func<string, ClusterAdmin> admins, TranslationGates? translation = null)
{
    /// <summary>Bound of each admin call a switch makes.</summary>
    public static readonly TimeSpan SwitchCallTimeout = TimeSpan.FromSeconds(10);

    // Ages are read record by record: bounded, as a lagging family can have many partitions.
    private const int MaxPartitionsAged = 32;

    /// <summary>The gates a switch from <paramref name="from"/> to <paramref name="to"/> must pass.</summary>
    public async Task<IReadOnlyList<GateResult>> CheckAsync(string family, ClusterRoute from, ClusterRoute to, IReadOnlyCollection<string> groups)
    {
        var results = new List<GateResult>();
        var involved = new[] { from.Write, from.Read, to.Write, to.Read }.Distinct(StringComparer.Ordinal).ToList();
        var (views, unreachable) = await ViewsAsync(involved, SwitchCallTimeout).ConfigureAwait(false);
        results.Add(new GateResult("reachability", unreachable.Count == 0,
            unreachable.Count == 0 ? $"reachable: {string.Join(", ", involved)}" : string.Join("; ", unreachable), null));
        if (unreachable.Count > 0)
        {
            return results;
        }

        var partitions = FamilyPartitions(family, views.Values);
        var limits = LimitsOf(family);
        if (from.Write != to.Write)
        {
            results.Add(await FamilyDataParityAsync("data-parity-write", family, from.Write, to.Write, partitions, limits, SwitchCallTimeout).ConfigureAwait(false));
        }
        if (from.Read != to.Read)
        {
            results.Add(await FamilyDataParityAsync("data-parity-read", family, from.Read, to.Read, partitions, limits, SwitchCallTimeout).ConfigureAwait(false));
            results.Add(await (translation?.OffsetParityAsync(family, from.Read, to.Read, groups, partitions)
                ?? OffsetParityAsync(from.Read, to.Read, groups, partitions, SwitchCallTimeout)).ConfigureAwait(false));
        }
        return results;
    }

    /// <summary>
    /// Data parity as the family's replication measures it: from its offset translation where offsets are not kept
    /// (MirrorMaker 2's syncs, newest timestamps), else by end offsets within the family's limits.
    /// </summary>
    public Task<GateResult> FamilyDataParityAsync(string gate, string family, string from, string to, IReadOnlyList<TopicPartition> partitions,
        LagLimits limits, TimeSpan timeout) =>
        translation?.DataParityAsync(gate, family, from, to, partitions) ?? DataParityAsync(gate, from, to, partitions, limits, timeout);

    /// <summary>The family's data-parity limits (every record, unless configured otherwise).</summary>
    public LagLimits LimitsOf(string family) => state.Config.Families.FirstOrDefault(f => f.Name == family)?.LagLimits ?? LagLimits.None;

    /// <summary>Fresh metadata of each cluster, each fetch bounded by <paramref name="timeout"/>; the unreachable ones with their reason.</summary>
    public async Task<(Dictionary<string, ClusterView> Views, List<string> Unreachable)> ViewsAsync(IEnumerable<string> clusters, TimeSpan timeout)
    {
        var views = new Dictionary<string, ClusterView>(StringComparer.Ordinal);
        var unreachable = new List<string>();
        foreach (var cluster in clusters)
        {
            try
            {
                views[cluster] = await state.Cluster(cluster).RefreshAsync().WaitAsync(timeout).ConfigureAwait(false);
            }
            catch (UpstreamUnavailableException e)
            {
                unreachable.Add($"{cluster}: {e.Message}");
            }
            catch (TimeoutException)
            {
                unreachable.Add($"{cluster}: no metadata within {timeout.TotalSeconds:0.#} s");
            }
        }
        return (views, unreachable);
    }

    /// <summary>Every partition of every topic of the family known to any of the clusters.</summary>
    public IReadOnlyList<TopicPartition> FamilyPartitions(string family, IEnumerable<ClusterView> views)
    {
        var routes = state.Routes.Current;
        var partitions = new SortedSet<(string, int)>();
        foreach (var view in views)
        {
            foreach (var topic in view.Topics.Values)
            {
                if (routes.ForTopic(topic.Name).Family != family)
                {
                    continue;
                }
                foreach (var partition in topic.Partitions)
                {
                    partitions.Add((topic.Name, partition.Index));
                }
            }
        }
        return [.. partitions.Select(p => new TopicPartition(p.Item1, p.Item2))];
    }

    /// <summary>
    /// How far <paramref name="to"/> is behind <paramref name="from"/> per partition, against <paramref name="limits"/>.
    /// The age of the oldest missing record is read (from <paramref name="from"/>) only when a time limit is set.
    /// </summary>
    public async Task<GateResult> DataParityAsync(string gate, string from, string to, IReadOnlyList<TopicPartition> partitions, LagLimits limits, TimeSpan timeout)
    {
        var fromEnds = await admins(from).EndOffsetsAsync(partitions, timeout).ConfigureAwait(false);
        var toEnds = await admins(to).EndOffsetsAsync(partitions, timeout).ConfigureAwait(false);
        var behind = new List<PartitionLag>();
        foreach (var partition in partitions)
        {
            var f = fromEnds.GetValueOrDefault(partition, 0);
            var t = toEnds.TryGetValue(partition, out var end) ? end : -1;
            if (t < f)
            {
                behind.Add(new PartitionLag(partition.Topic, partition.Partition.Value, f, t, f - Math.Max(t, 0)));
            }
        }
        if (behind.Count == 0)
        {
            return new GateResult(gate, true, $"{to} has every record {from} has ({partitions.Count} partitions)", null);
        }

        var unaged = 0;
        if (limits.MaxMs is not null)
        {
            var aged = behind.Take(MaxPartitionsAged).ToList();
            var timestamps = await admins(from).RecordTimestampsAsync(
                [.. aged.Select(p => new TopicPartitionOffset(p.Topic, p.Partition, Math.Max(p.ToEnd, 0)))], timeout).ConfigureAwait(false);
            var now = DateTimeOffset.UtcNow;
            for (var i = 0; i < behind.Count; i++)
            {
                if (timestamps.TryGetValue(new TopicPartition(behind[i].Topic, behind[i].Partition), out var at))
                {
                    behind[i] = behind[i] with { BehindMs = Math.Max(0, (long)(now - at).TotalMilliseconds) };
                }
                else
                {
                    unaged++;
                }
            }
        }
        var missing = behind.Sum(p => p.BehindBy);
        var overRecords = limits.MaxRecords is { } maxRecords ? behind.Count(p => p.BehindBy > maxRecords) : 0;
        var overTime = limits.MaxMs is { } maxMs ? behind.Count(p => p.BehindMs > maxMs) : 0;
        var lag = $"{to} is behind {from} by {missing} record(s) on {behind.Count} partition(s)";
        if (limits == LagLimits.None)
        {
            return new GateResult(gate, false, lag, behind);
        }
        var allowed = string.Join(" and ", new[]
        {
            limits.MaxRecords is { } r ? $"{r} record(s)" : null,
            limits.MaxMs is { } m ? $"{m} ms" : null,
        }.Where(l => l is not null));
        if (overRecords + overTime > 0)
        {
            return new GateResult(gate, false, $"{lag}; over the limit of {allowed} per partition on {Math.Max(overRecords, overTime)} partition(s)", behind);
        }
        if (unaged > 0)
        {
            return new GateResult(gate, false, $"{lag}; the age of the missing records on {unaged} partition(s) could not be read, so the limit of {allowed} is not shown to hold",
                behind, Undetermined: true);
        }
        return new GateResult(gate, true, $"{lag}, within the limit of {allowed} per partition", behind);
    }

    /// <summary>
    /// Every committed offset of <paramref name="groups"/> on <paramref name="from"/> exists (is not past the end) on
    /// <paramref name="to"/>. With <paramref name="requireCommittedThere"/> (the scorecard), each must also be committed
    /// there already, at the same offset: the group's progress is on the other side. A switch does not need that, as
    /// it copies the offsets itself.
    /// </summary>
    public async Task<GateResult> OffsetParityAsync(string from, string to, IReadOnlyCollection<string> groups, IReadOnlyList<TopicPartition> partitions,
        TimeSpan timeout, bool requireCommittedThere = false)
    {
        var toEnds = await admins(to).EndOffsetsAsync(partitions, timeout).ConfigureAwait(false);
        var pastEnd = new List<object>();
        var notThere = new List<object>();
        var committedPartitions = 0;
        foreach (var group in groups)
        {
            var committed = await admins(from).CommittedOffsetsAsync(group, partitions, timeout).ConfigureAwait(false);
            committedPartitions += committed.Count;
            var there = requireCommittedThere && committed.Count > 0
                ? await admins(to).CommittedOffsetsAsync(group, [.. committed.Keys], timeout).ConfigureAwait(false)
                : null;
            foreach (var (partition, offset) in committed)
            {
                var end = toEnds.GetValueOrDefault(partition, -1);
                if (offset > end)
                {
                    pastEnd.Add(new { group, topic = partition.Topic, partition = partition.Partition.Value, committed = offset, newEnd = end });
                }
                else if (there is not null && (!there.TryGetValue(partition, out var other) || other != offset))
                {
                    notThere.Add(new { group, topic = partition.Topic, partition = partition.Partition.Value, committed = offset, committedThere = there.TryGetValue(partition, out var o) ? o : (long?)null });
                }
            }
        }
        if (pastEnd.Count > 0)
        {
            return new GateResult("offset-parity", false, $"{pastEnd.Count} committed offset(s) point past the end of {to}", pastEnd.Concat(notThere).ToList());
        }
        if (notThere.Count > 0)
        {
            return new GateResult("offset-parity", false,
                $"{notThere.Count} of {committedPartitions} committed offset(s) of {groups.Count} group(s) on {from} are not committed on {to} (a switch copies them)", notThere);
        }
        return new GateResult("offset-parity", true, requireCommittedThere
            ? $"{groups.Count} group(s): every committed offset on {from} is committed on {to}"
            : $"{groups.Count} group(s): every committed offset exists on {to}", null);
    }
}
