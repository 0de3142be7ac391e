using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// APIs the proxy does not interpret: relayed untouched, as bytes, to a broker of the default route's write
/// cluster, at versions that cluster supports. Authentication and telemetry are never relayed (they are per
/// connection, and the proxy's upstream connections are its own).
/// </summary>
public static class RawRelay
{
    public static bool IsRelayable(ApiKey apiKey) => apiKey switch
    {
        ApiKey.SaslHandshake or ApiKey.SaslAuthenticate or ApiKey.ApiVersions => false,
        ApiKey.GetTelemetrySubscriptions or ApiKey.PushTelemetry => false,
        ApiKey.ShareGroupHeartbeat or ApiKey.ShareGroupDescribe or ApiKey.ShareFetch or ApiKey.ShareAcknowledge => false,
        _ => !ProxyApis.Offered.ContainsKey(apiKey) && KafkaApis.LowestVersion(apiKey) >= 0,
    };

    public static (short Min, short Max)? Versions(ProxyState state, ApiKey apiKey)
    {
        var view = state.Cluster(state.Routes.Current.Default.Route.Write).View;
        if (view is null || !view.ApiVersions.TryGetValue((short)apiKey, out var range))
        {
            return null;
        }
        var min = Math.Max(range.Min, KafkaApis.LowestVersion(apiKey));
        var max = Math.Min(range.Max, KafkaApis.HighestVersion(apiKey));
        return min <= max ? (min, max) : null;
    }

    public static async ValueTask<Task<PooledFrame>?> RelayAsync(ProxyState state, ClientSession session, PooledFrame frame, ApiKey apiKey, short version)
    {
        using (frame)
        {
            if (Versions(state, apiKey) is not { } range || version < range.Min || version > range.Max)
            {
                throw new KafkaProtocolException($"Unsupported version {version} of {apiKey}.");
            }
            RequestHeader.TryPeek(frame.Span, out _, out _, out var correlationId);
            var view = await state.Cluster(state.Routes.Current.Default.Route.Write).GetViewAsync(session.Closed).ConfigureAwait(false);
            var connection = await session.Upstreams.GetAnyAsync(view, session.Closed).ConfigureAwait(false);
            return await Forwarding.ForwardAsync(connection, frame.Memory, correlationId, expectResponse: true,
                state.Config.Limits.UpstreamRequestTimeout, session.Closed).ConfigureAwait(false);
        }
    }
}
