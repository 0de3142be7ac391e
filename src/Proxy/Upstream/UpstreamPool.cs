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
    // Connections to keep open past the session's close: the last request that must settle on each, and until when.
    private readonly Lock _landingLock = new();
    private Dictionary<UpstreamConnection, (Task Settled, long Until)>? _landing;
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
            lock (_landingLock)
            {
                _landing?.Remove(existing); // failed: whatever it carried has settled
            }
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

    /// <summary>
    /// Keeps <paramref name="connection"/> open after the session closes until <paramref name="settled"/> (a request
    /// sent on it) completes, at most <paramref name="maxWait"/> from now. A switch counts such a request until it
    /// settles; closing the connection because the client left would settle it without taking it back (a broker
    /// that has read a request carries it out), so the switch could go on before it lands.
    /// </summary>
    public void CloseAfter(UpstreamConnection connection, Task settled, TimeSpan maxWait)
    {
        var until = Environment.TickCount64 + (long)maxWait.TotalMilliseconds;
        lock (_landingLock)
        {
            if (_disposed)
            {
                return; // already closed: the request has settled
            }
            _landing ??= [];
            // Answers come in order, so the latest request on a connection settles last.
            var longest = _landing.TryGetValue(connection, out var earlier) ? Math.Max(earlier.Until, until) : until;
            _landing[connection] = (settled, longest);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Dictionary<UpstreamConnection, (Task Settled, long Until)>? landing;
        lock (_landingLock)
        {
            _disposed = true;
            landing = _landing;
        }
        foreach (var connection in _connections.Values)
        {
            if (landing is not null && landing.TryGetValue(connection, out var last) && !last.Settled.IsCompleted)
            {
                _ = DisposeWhenSettledAsync(connection, last.Settled, TimeSpan.FromMilliseconds(Math.Max(0, last.Until - Environment.TickCount64)));
                continue;
            }
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        _connections.Clear();
    }

    private static async Task DisposeWhenSettledAsync(UpstreamConnection connection, Task settled, TimeSpan maxWait)
    {
        try
        {
            await settled.WaitAsync(maxWait).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Given up on, as the request's own wait was.
        }
        await connection.DisposeAsync().ConfigureAwait(false);
    }
}
