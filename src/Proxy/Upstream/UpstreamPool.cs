using System.Net;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Security;

namespace Switchback.Proxy.Upstream;

/// <summary>
/// The upstream connections of one client session, one per upstream broker, opened on first use. Keeping them per
/// session means one client's long-poll Fetch never queues another client's requests. <paramref name="sessionClosed"/>
/// ends every wait on them when the session closes (one registration per connection, none per request).
/// </summary>
public sealed class UpstreamPool(TimeSpan connectTimeout, ILogger logger, IReadOnlyList<ClusterConfig>? clusters = null,
    CancellationToken sessionClosed = default, Metrics.ProxyMetrics? metrics = null) : IAsyncDisposable
{
    private readonly Dictionary<(int Cluster, int Node), UpstreamConnection> _connections = [];
    private bool _disposed;

    /// <summary>The connection to <paramref name="nodeId"/> of the cluster in <paramref name="view"/>. Callers are sequential per session.</summary>
    public async ValueTask<UpstreamConnection> GetAsync(ClusterView view, int nodeId, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var key = (view.Ordinal, nodeId);
        if (_connections.TryGetValue(key, out var existing))
        {
            if (existing.IsHealthy)
            {
                return existing;
            }
            _connections.Remove(key);
            await existing.DisposeAsync().ConfigureAwait(false);
        }
        if (!view.BrokersById.TryGetValue(nodeId, out var broker))
        {
            throw new UpstreamUnavailableException($"Broker {nodeId} is not part of cluster '{view.ClusterName}'.");
        }
        var connection = await UpstreamConnection.ConnectAsync(new DnsEndPoint(broker.Host, broker.Port),
            $"{view.ClusterName}/{nodeId}", connectTimeout, logger, cancellationToken, SecurityOf(view.Ordinal), sessionClosed).ConfigureAwait(false);
        if (metrics is not null)
        {
            connection.AnswerLatency = metrics.UpstreamLatency(view.ClusterName);
        }
        _connections[key] = connection;
        return connection;
    }

    private UpstreamSecurity SecurityOf(int ordinal) =>
        clusters is not null && ordinal < clusters.Count ? clusters[ordinal].UpstreamSecurity : UpstreamSecurity.None;

    /// <summary>Any broker of the cluster, preferring one already connected.</summary>
    public ValueTask<UpstreamConnection> GetAnyAsync(ClusterView view, CancellationToken cancellationToken)
    {
        foreach (var ((cluster, node), connection) in _connections)
        {
            if (cluster == view.Ordinal && connection.IsHealthy)
            {
                return ValueTask.FromResult(connection);
            }
        }
        if (view.Brokers.Count == 0)
        {
            throw new UpstreamUnavailableException($"Cluster '{view.ClusterName}' reports no brokers.");
        }
        return GetAsync(view, view.Brokers[Random.Shared.Next(view.Brokers.Count)].NodeId, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        foreach (var connection in _connections.Values)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        _connections.Clear();
    }
}
