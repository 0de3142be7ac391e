using System.Collections.Frozen;

namespace Switchback.Proxy.Upstream;

/// <summary>A broker of an upstream cluster as that cluster advertises it.</summary>
public sealed record UpstreamBroker(int NodeId, string Host, int Port, string? Rack);

/// <summary>One partition of a topic as its cluster reports it.</summary>
public sealed record PartitionView(int Index, short ErrorCode, int Leader, int LeaderEpoch, int[] Replicas, int[] Isr, int[] Offline);

/// <summary>One topic as its cluster reports it (its id is that cluster's own).</summary>
public sealed record TopicView(string Name, Guid Id, short ErrorCode, bool IsInternal, PartitionView[] Partitions)
{
    public PartitionView? Partition(int index)
    {
        if ((uint)index < (uint)Partitions.Length && Partitions[index].Index == index)
        {
            return Partitions[index];
        }
        // A loop, not Array.Find: a lambda capturing index would allocate its closure on every call, fast path included.
        foreach (var partition in Partitions)
        {
            if (partition.Index == index)
            {
                return partition;
            }
        }
        return null;
    }
}

/// <summary>
/// An immutable snapshot of what the proxy knows about one upstream cluster: brokers, topics, partition leaders
/// and the API versions every broker of it supports. Replaced whole on refresh.
/// </summary>
public sealed class ClusterView
{
    public ClusterView(
        string clusterName,
        int ordinal,
        string? clusterId,
        IReadOnlyList<UpstreamBroker> brokers,
        IReadOnlyList<TopicView> topics,
        FrozenDictionary<short, (short Min, short Max)> apiVersions,
        DateTimeOffset fetchedAt)
    {
        ClusterName = clusterName;
        Ordinal = ordinal;
        ClusterId = clusterId;
        Brokers = brokers;
        BrokersById = brokers.ToFrozenDictionary(b => b.NodeId);
        Topics = topics.ToFrozenDictionary(t => t.Name, StringComparer.Ordinal);
        TopicsById = topics.Where(t => t.Id != Guid.Empty).GroupBy(t => t.Id).ToFrozenDictionary(g => g.Key, g => g.First());
        ApiVersions = apiVersions;
        FetchedAt = fetchedAt;
    }

    public string ClusterName { get; }
    public int Ordinal { get; }
    public string? ClusterId { get; }
    public IReadOnlyList<UpstreamBroker> Brokers { get; }
    public FrozenDictionary<int, UpstreamBroker> BrokersById { get; }
    public FrozenDictionary<string, TopicView> Topics { get; }
    public FrozenDictionary<Guid, TopicView> TopicsById { get; }
    public FrozenDictionary<short, (short Min, short Max)> ApiVersions { get; }
    public DateTimeOffset FetchedAt { get; }

    /// <summary>Leader of a partition, or -1 when the topic or partition is unknown or leaderless.</summary>
    public int LeaderOf(string topic, int partition) =>
        Topics.TryGetValue(topic, out var view) && view.Partition(partition) is { Leader: >= 0 } p ? p.Leader : -1;
}
