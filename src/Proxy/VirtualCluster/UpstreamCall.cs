using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>One sub-request sent to one upstream broker on behalf of a client request; failures are kept, not thrown, so the other parts still answer.</summary>
public sealed class UpstreamCall(ClusterView view, int leader) : IDisposable
{
    private PooledFrame? _response;

    public ClusterView View { get; } = view;
    public int Leader { get; } = leader;
    public PendingResponse? Pending { get; private set; }
    public Exception? Failure { get; private set; }

    /// <summary>
    /// A call the relay path sent and waited for itself: its answer (kept until <see cref="Dispose"/>), or why there is
    /// none. <paramref name="pending"/> is null when the request never left.
    /// </summary>
    public static UpstreamCall Completed(ClusterView view, int leader, PendingResponse? pending, PooledFrame? response, Exception? failure) =>
        new(view, leader) { Pending = pending, _response = response, Failure = failure };

    public async ValueTask SendAsync(RequestContext context, ReadOnlyMemory<byte> frame, bool expectResponse)
    {
        try
        {
            var connection = await context.Session.Upstreams.GetAsync(View, Leader, context.Session.Closed).ConfigureAwait(false);
            Pending = await connection.SendAsync(frame, expectResponse, context.Session.Closed).ConfigureAwait(false);
            if (Pending is not null)
            {
                context.UpstreamSettled.Add(Pending.Settled);
            }
        }
        catch (UpstreamUnavailableException e)
        {
            Failure = e;
        }
    }

    public async ValueTask SendAsync(RequestContext context, IKafkaMessage subRequest, bool expectResponse)
    {
        using var frame = FrameCodec.EncodeRequest(context.ApiKey, context.Version, 0, context.Header.ClientId, subRequest);
        await SendAsync(context, frame.Memory, expectResponse).ConfigureAwait(false);
    }

    /// <summary>The decoded response, or null when the broker could not be reached or did not answer in time.</summary>
    public async Task<T?> ResponseAsync<T>(RequestContext context, TimeSpan timeout) where T : class, IKafkaMessage, new()
    {
        // The decoded message slices the frame (records are never copied), so the frame lives until Dispose.
        var frame = _response ?? await FrameAsync(context, timeout).ConfigureAwait(false);
        return frame is null ? null : FrameCodec.DecodeResponse<T>(frame, context.ApiKey, context.Version);
    }

    /// <summary>The raw response frame (kept by this call until <see cref="Dispose"/> or <see cref="Detach"/>), or null on failure.</summary>
    public async Task<PooledFrame?> FrameAsync(RequestContext context, TimeSpan timeout)
    {
        if (Pending is null || Failure is not null)
        {
            return null; // never sent, or already given up on: do not wait a second time
        }
        try
        {
            _response = await Pending.WaitAsync(timeout, context.Session.Closed).ConfigureAwait(false);
            return _response;
        }
        catch (UpstreamUnavailableException e)
        {
            Failure = e;
            return null;
        }
    }

    /// <summary>Hands the response frame over to the caller, who disposes it.</summary>
    public PooledFrame? Detach() => Interlocked.Exchange(ref _response, null);

    public void Dispose() => Interlocked.Exchange(ref _response, null)?.Dispose();

    /// <summary>Releases the response frames of all calls once their merged answer has been encoded.</summary>
    public static void DisposeAll(List<UpstreamCall> calls)
    {
        foreach (var call in calls)
        {
            call.Dispose();
        }
    }

    /// <summary>Maps the KIP-951 leader hints of one response to client-visible ids and the proxy's address.</summary>
    public static async ValueTask AddNodeEndpointsAsync(ProxyState state, ClusterView view, List<ProduceResponse.NodeEndpoint>? source, List<ProduceResponse.NodeEndpoint> target)
    {
        if (source is null)
        {
            return;
        }
        foreach (var node in source)
        {
            var id = NodeIds.ToVirtual(view.Ordinal, node.NodeId);
            // A broker without a port is left out of the hints; clients then look its partitions up in Metadata.
            if (!target.Exists(n => n.NodeId == id) && await state.BrokerPort(id).ConfigureAwait(false) is { } port)
            {
                target.Add(new ProduceResponse.NodeEndpoint { NodeId = id, Host = state.Config.AdvertisedHost, Port = port, Rack = node.Rack });
            }
        }
    }

    public static async ValueTask AddNodeEndpointsAsync(ProxyState state, ClusterView view, List<FetchResponse.NodeEndpoint>? source, List<FetchResponse.NodeEndpoint> target)
    {
        if (source is null)
        {
            return;
        }
        foreach (var node in source)
        {
            var id = NodeIds.ToVirtual(view.Ordinal, node.NodeId);
            if (!target.Exists(n => n.NodeId == id) && await state.BrokerPort(id).ConfigureAwait(false) is { } port)
            {
                target.Add(new FetchResponse.NodeEndpoint { NodeId = id, Host = state.Config.AdvertisedHost, Port = port, Rack = node.Rack });
            }
        }
    }
}
