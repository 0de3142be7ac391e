using Confluent.Kafka;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Translation;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>One readiness check and what it found.</summary>
public sealed record GateResult(string Gate, bool Passed, string Summary, object? Evidence);

/// <summary>
/// The checks a switch must pass unless forced: both clusters reachable; data parity (the cluster taking over has
/// at least the end offsets of the one it replaces, per partition of the family); offset parity (every committed
/// group offset of the family exists on the new read cluster). For a family whose replication does not keep offsets,
/// <paramref name="translation"/> measures data and offset parity its own way.
/// </summary>
public sealed class ReadinessGates(ProxyState state, Func<string, ClusterAdmin> admins, TranslationGates? translation = null)
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    public async Task<IReadOnlyList<GateResult>> CheckAsync(string family, ClusterRoute from, ClusterRoute to, IReadOnlyCollection<string> groups)
    {
        var results = new List<GateResult>();
        var involved = new[] { from.Write, from.Read, to.Write, to.Read }.Distinct(StringComparer.Ordinal).ToList();
        var views = new Dictionary<string, ClusterView>(StringComparer.Ordinal);
        var unreachable = new List<string>();
        foreach (var cluster in involved)
        {
            try
            {
                views[cluster] = await state.Cluster(cluster).RefreshAsync().ConfigureAwait(false);
            }
            catch (UpstreamUnavailableException e)
            {
                unreachable.Add($"{cluster}: {e.Message}");
            }
        }
        results.Add(new GateResult("reachability", unreachable.Count == 0,
            unreachable.Count == 0 ? $"reachable: {string.Join(", ", involved)}" : string.Join("; ", unreachable), null));
        if (unreachable.Count > 0)
        {
            return results;
        }

        var partitions = FamilyPartitions(family, views.Values);
        if (from.Write != to.Write)
        {
            results.Add(await (translation?.DataParityAsync("data-parity-write", family, from.Write, to.Write, partitions)
                ?? DataParityAsync("data-parity-write", from.Write, to.Write, partitions)).ConfigureAwait(false));
        }
        if (from.Read != to.Read)
        {
            results.Add(await (translation?.DataParityAsync("data-parity-read", family, from.Read, to.Read, partitions)
                ?? DataParityAsync("data-parity-read", from.Read, to.Read, partitions)).ConfigureAwait(false));
            results.Add(await (translation?.OffsetParityAsync(family, from.Read, to.Read, groups, partitions)
                ?? OffsetParityAsync(from.Read, to.Read, groups, partitions)).ConfigureAwait(false));
        }
        return results;
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

    private async Task<GateResult> DataParityAsync(string gate, string from, string to, IReadOnlyList<TopicPartition> partitions)
    {
        var fromEnds = await admins(from).EndOffsetsAsync(partitions, CallTimeout).ConfigureAwait(false);
        var toEnds = await admins(to).EndOffsetsAsync(partitions, CallTimeout).ConfigureAwait(false);
        var behind = new List<object>();
        long missing = 0;
        foreach (var partition in partitions)
        {
            var f = fromEnds.GetValueOrDefault(partition, 0);
            var t = toEnds.TryGetValue(partition, out var end) ? end : -1;
            if (t < f)
            {
                missing += f - Math.Max(t, 0);
                behind.Add(new { topic = partition.Topic, partition = partition.Partition.Value, fromEnd = f, toEnd = t, behindBy = f - Math.Max(t, 0) });
            }
        }
        return new GateResult(gate, behind.Count == 0,
            behind.Count == 0
                ? $"{to} has every record {from} has ({partitions.Count} partitions)"
                : $"{to} is behind {from} by {missing} record(s) on {behind.Count} partition(s)",
            behind.Count == 0 ? null : behind);
    }

    private async Task<GateResult> OffsetParityAsync(string from, string to, IReadOnlyCollection<string> groups, IReadOnlyList<TopicPartition> partitions)
    {
        var toEnds = await admins(to).EndOffsetsAsync(partitions, CallTimeout).ConfigureAwait(false);
        var problems = new List<object>();
        foreach (var group in groups)
        {
            var committed = await admins(from).CommittedOffsetsAsync(group, partitions, CallTimeout).ConfigureAwait(false);
            foreach (var (partition, offset) in committed)
            {
                var end = toEnds.GetValueOrDefault(partition, -1);
                if (offset > end)
                {
                    problems.Add(new { group, topic = partition.Topic, partition = partition.Partition.Value, committed = offset, newEnd = end });
                }
            }
        }
        return new GateResult("offset-parity", problems.Count == 0,
            problems.Count == 0
                ? $"{groups.Count} group(s): every committed offset exists on {to}"
                : $"{problems.Count} committed offset(s) point past the end of {to}",
            problems.Count == 0 ? null : problems);
    }
}
