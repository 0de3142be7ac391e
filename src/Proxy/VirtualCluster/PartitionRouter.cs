using Switchback.Protocol;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>Where one partition's request goes: a broker of a cluster, or an error to answer with.</summary>
public readonly record struct PartitionTarget(ClusterView? View, int Leader, ErrorCode Error)
{
    public bool IsRouted => Error == ErrorCode.None;
    public (int Cluster, int Node) Key => (View!.Ordinal, Leader);
}

/// <summary>
/// Resolves partitions to their leader on the cluster a route names, refreshing a cluster's view at most once per
/// request when a topic or leader is missing (it may simply be newer than the cached view).
/// </summary>
public sealed class PartitionRouter(ProxyState state, CancellationToken cancellationToken)
{
    private readonly Dictionary<string, ClusterView?> _views = new(StringComparer.Ordinal);
    private HashSet<string>? _refreshed;

    public async ValueTask<PartitionTarget> ResolveAsync(string clusterName, string topic, int partition)
    {
        var view = await ViewAsync(clusterName).ConfigureAwait(false);
        var target = Resolve(view, topic, partition);
        if (target.IsRouted || (_refreshed?.Contains(clusterName) ?? false))
        {
            return target;
        }
        (_refreshed ??= new HashSet<string>(StringComparer.Ordinal)).Add(clusterName);
        try
        {
            view = await state.Cluster(clusterName).RefreshAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            _views[clusterName] = view;
        }
        catch (UpstreamUnavailableException)
        {
            return target;
        }
        return Resolve(view, topic, partition);
    }

    private static PartitionTarget Resolve(ClusterView? view, string topic, int partition)
    {
        if (view is null)
        {
            return new PartitionTarget(null, -1, ErrorCode.LeaderNotAvailable);
        }
        if (!view.Topics.TryGetValue(topic, out var topicView) || topicView.Partition(partition) is not { } p)
        {
            return new PartitionTarget(view, -1, ErrorCode.UnknownTopicOrPartition);
        }
        return p.Leader < 0 || !view.BrokersById.ContainsKey(p.Leader)
            ? new PartitionTarget(view, -1, ErrorCode.LeaderNotAvailable)
            : new PartitionTarget(view, p.Leader, ErrorCode.None);
    }

    public async ValueTask<ClusterView?> ViewAsync(string clusterName)
    {
        if (_views.TryGetValue(clusterName, out var view))
        {
            return view;
        }
        try
        {
            view = await state.Cluster(clusterName).GetViewAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (UpstreamUnavailableException)
        {
            view = null;
        }
        _views[clusterName] = view;
        return view;
    }

    /// <summary>Signals that a cluster's partition leadership changed (an upstream said so); refreshed in the background.</summary>
    public static void LeadershipChanged(ProxyState state, ClusterView view)
    {
        _ = state.ClustersByOrdinal[view.Ordinal].RefreshAsync().ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
    }

    public static bool IsLeadershipError(short error) => (ErrorCode)error is ErrorCode.NotLeaderOrFollower
        or ErrorCode.LeaderNotAvailable or ErrorCode.UnknownTopicOrPartition or ErrorCode.FencedLeaderEpoch
        or ErrorCode.UnknownLeaderEpoch or ErrorCode.UnknownTopicId or ErrorCode.KafkaStorageError;
}
