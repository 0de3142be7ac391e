using System.Net;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.Upstream;

/// <summary>
/// The proxy's own connection to the coordinator of one consumer group on one cluster, for the group requests a
/// switch makes itself (writing offsets, removing members). Requests are typed and go at the highest version both
/// the proxy and the cluster speak. After NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE the caller reconnects
/// (<see cref="ReconnectAsync"/>), which looks the coordinator up again.
/// </summary>
public sealed class GroupCoordinatorConnection : IAsyncDisposable
{
    private const string ClientId = "switchback";
    private const sbyte GroupKey = 0;

    private readonly UpstreamCluster _cluster;
    private readonly LimitsConfig _limits;
    private readonly ILogger _logger;
    private UpstreamConnection? _connection;
    private ClusterView? _view;

    private GroupCoordinatorConnection(UpstreamCluster cluster, string group, LimitsConfig limits, ILogger logger)
    {
        _cluster = cluster;
        Group = group;
        _limits = limits;
        _logger = logger;
    }

    public string Group { get; }
    public string ClusterName => _cluster.Name;

    /// <summary>Finds the group's coordinator on <paramref name="cluster"/> and connects to it.</summary>
    public static async Task<GroupCoordinatorConnection> OpenAsync(UpstreamCluster cluster, string group, LimitsConfig limits, ILogger logger,
        CancellationToken cancellationToken)
    {
        var connection = new GroupCoordinatorConnection(cluster, group, limits, logger);
        try
        {
            await connection.ConnectAsync(refresh: false, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return connection;
    }

    /// <summary>Looks the coordinator up again (it moved, or was not ready) and connects to it.</summary>
    public async Task ReconnectAsync(CancellationToken cancellationToken)
    {
        await CloseAsync().ConfigureAwait(false);
        await ConnectAsync(refresh: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The version to send <paramref name="apiKey"/> at: the highest the cluster offers, at most
    /// <paramref name="preferred"/>; the cluster's oldest when it no longer takes that one (if the proxy can write
    /// it); null when the cluster does not offer the API.
    /// </summary>
    public short? VersionOf(ApiKey apiKey, short preferred)
    {
        if (_view is null || !_view.ApiVersions.TryGetValue((short)apiKey, out var range))
        {
            return null;
        }
        var version = Math.Min(preferred, range.Max);
        if (version >= range.Min)
        {
            return version;
        }
        return KafkaApis.IsSupported(apiKey, range.Min) ? range.Min : null;
    }

    /// <summary>Sends one request and decodes its answer; waits at most <paramref name="timeout"/>.</summary>
    public async Task<T> SendAsync<T>(ApiKey apiKey, short version, IKafkaMessage request, TimeSpan timeout, CancellationToken cancellationToken)
        where T : IKafkaMessage, new()
    {
        var connection = _connection ?? throw new UpstreamUnavailableException($"No connection to the coordinator of '{Group}' on cluster '{ClusterName}'.");
        using var frame = FrameCodec.EncodeRequest(apiKey, version, 0, ClientId, request);
        var pending = await connection.SendAsync(frame.Memory, expectResponse: true, cancellationToken).ConfigureAwait(false);
        using var response = await pending!.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        try
        {
            return FrameCodec.DecodeResponse<T>(response, apiKey, version);
        }
        catch (KafkaProtocolException e)
        {
            throw new UpstreamUnavailableException(
                $"The coordinator of '{Group}' on cluster '{ClusterName}' sent a {apiKey} v{version} answer the proxy cannot read: {e.Message}", e);
        }
    }

    private async Task ConnectAsync(bool refresh, CancellationToken cancellationToken)
    {
        var view = await _cluster.GetViewAsync(cancellationToken).ConfigureAwait(false);
        var node = await _cluster.FindCoordinatorAsync(GroupKey, Group, cancellationToken, refresh).ConfigureAwait(false);
        if (!view.BrokersById.TryGetValue(node, out var broker))
        {
            view = await _cluster.RefreshAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            broker = view.BrokersById.GetValueOrDefault(node)
                ?? throw new UpstreamUnavailableException($"The coordinator of '{Group}' (broker {node}) is not in cluster '{ClusterName}'.");
        }
        _view = view;
        _connection = await UpstreamConnection.ConnectAsync(new DnsEndPoint(broker.Host, broker.Port), $"{ClusterName}/{node} (group {Group})",
            _limits.UpstreamConnectTimeout, _logger, cancellationToken, _cluster.Config.UpstreamSecurity).ConfigureAwait(false);
    }

    private async Task CloseAsync()
    {
        if (_connection is { } connection)
        {
            _connection = null;
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => new(CloseAsync());
}
