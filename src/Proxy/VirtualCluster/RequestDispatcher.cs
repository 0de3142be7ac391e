using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Security;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Routes each client request to its handler. The returned ValueTask completes once the request has been routed
/// and sent upstream (so requests leave in arrival order); the inner one yields the client's response, or the
/// result is null when the request expects none. The inner one is awaited exactly once (it may be pooled).
/// </summary>
public sealed class RequestDispatcher(ProxyState state, ClientSession session)
{
    private readonly LocalHandlers _local = new(state);
    private readonly PartitionHandlers _partitions = new(state);
    private readonly CoordinatorHandlers _coordinators = new(state);
    private readonly SaslAuthenticator? _sasl = state.Config.ListenerSecurity.Sasl is { } sasl
        ? new SaslAuthenticator(sasl, state.LoggerFactory.CreateLogger<SaslAuthenticator>(), session.Id)
        : null;
    private Func<RequestContext, ValueTask<Task<PooledFrame>?>>? _route;
    private readonly RequestHeaderReader _headers = new();
    // A context its handler let go of (the relay path), ready for the next request: dispatch is sequential.
    private RequestContext? _spareContext;

    /// <summary>True while the listener requires SASL and this connection has not completed it.</summary>
    public bool AwaitingAuthentication => _sasl is { IsAuthenticated: false };

    /// <summary>True when the next frame is a raw SASL token (after SaslHandshake v0), not a Kafka request.</summary>
    public bool ExpectsRawSaslToken => _sasl is { ExpectsRawToken: true };

    public async ValueTask<ValueTask<PooledFrame>?> DispatchAsync(PooledFrame frame)
    {
        if (_sasl is { ExpectsRawToken: true })
        {
            using (frame)
            {
                var token = _sasl.HandleRawToken(frame);
                if (_sasl.Principal is { } authenticated)
                {
                    session.Principal = authenticated;
                }
                return new ValueTask<PooledFrame>(token);
            }
        }
        RequestHeader.TryPeek(frame.Span, out var apiKey, out var version, out var correlationId);
        if (_sasl is not null && apiKey != ApiKey.ApiVersions)
        {
            if (apiKey is ApiKey.SaslHandshake or ApiKey.SaslAuthenticate)
            {
                using (frame)
                {
                    var answer = _sasl.Handle(frame, apiKey, version);
                    if (_sasl.Principal is { } principal)
                    {
                        session.Principal = principal;
                    }
                    return new ValueTask<PooledFrame>(answer);
                }
            }
            if (!_sasl.IsAuthenticated)
            {
                frame.Dispose();
                throw new KafkaProtocolException($"{apiKey} before SASL authentication completed.");
            }
        }
        if (apiKey == ApiKey.ApiVersions)
        {
            // Answered even for versions the proxy does not know: a broker replies with UNSUPPORTED_VERSION in v0.
            using (frame)
            {
                session.Activity.NoteApiVersions(frame.Memory, version);
                return new ValueTask<PooledFrame>(_local.ApiVersions(frame, version, correlationId));
            }
        }
        var offered = state.AdvertisedVersions(apiKey);
        if (offered is null && !RawRelay.IsRelayable(apiKey))
        {
            frame.Dispose();
            throw new KafkaProtocolException($"Unsupported API key {(short)apiKey}.");
        }
        if (offered is { } range && (version < range.Min || version > range.Max))
        {
            frame.Dispose();
            throw new KafkaProtocolException($"Unsupported version {version} of {apiKey} (offered {range.Min}-{range.Max}).");
        }
        if (offered is null)
        {
            if (state.Authorization is { } allowLists && !allowLists.AdmittedByEveryList(session.Principal))
            {
                frame.Dispose();
                throw new KafkaProtocolException($"{apiKey} is relayed uninterpreted, so allow lists cannot check what it names; only a principal every allow list admits may use it.");
            }
            return Answer(await RawRelay.RelayAsync(state, session, frame, apiKey, version).ConfigureAwait(false));
        }

        RequestContext context;
        try
        {
            var bodyOffset = _headers.Read(frame.Span, apiKey, version, out var header);
            session.Activity.NoteClientId(header.ClientId);
            if (_spareContext is { } spare)
            {
                _spareContext = null;
                spare.Reuse(frame, header, bodyOffset, state.Routes.Current);
                context = spare;
            }
            else
            {
                context = new RequestContext(session, frame, header, bodyOffset, state.Routes.Current);
            }
        }
        catch
        {
            frame.Dispose();
            throw;
        }
        try
        {
            return context.ApiKey switch
            {
                ApiKey.Produce => await _partitions.ProduceAsync(context).ConfigureAwait(false),
                ApiKey.Fetch => await _partitions.FetchAsync(context).ConfigureAwait(false),
                // Allow lists, when configured, check (and may narrow) the request before it is routed.
                _ when state.Authorization is { } authorization => Answer(await authorization.DispatchAsync(context, _route ??= RouteAsync).ConfigureAwait(false)),
                _ => Answer(await RouteAsync(context).ConfigureAwait(false)),
            };
        }
        finally
        {
            // Handlers copy what they send upstream into the upstream pipe, so the request buffer can go back now.
            frame.Dispose();
            if (context.IsLetGo)
            {
                _spareContext = context;
            }
        }
    }

    // The handler's own ValueTask, not awaited here: one state machine fewer to box when a handler yields.
    private ValueTask<Task<PooledFrame>?> RouteAsync(RequestContext context) =>
        context.ApiKey switch
        {
            ApiKey.Metadata => _local.MetadataAsync(context),
            ApiKey.DescribeCluster => _local.DescribeClusterAsync(context),
            ApiKey.FindCoordinator => _local.FindCoordinatorAsync(context),
            ApiKey.ListOffsets => _partitions.ListOffsetsAsync(context),
            ApiKey.OffsetForLeaderEpoch => _partitions.OffsetForLeaderEpochAsync(context),
            ApiKey.DeleteRecords => _partitions.DeleteRecordsAsync(context),
            _ => _coordinators.RouteAsync(context),
        };

    /// <summary>A response task as the client session takes it (null when the request expects none).</summary>
    internal static ValueTask<PooledFrame>? Answer(Task<PooledFrame>? response) => response is null ? null : new ValueTask<PooledFrame>(response);
}
