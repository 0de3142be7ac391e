using Switchback.Protocol;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>One client request being handled: its frame, parsed header, and the route snapshot it is routed with.</summary>
public sealed class RequestContext(ClientSession session, PooledFrame frame, RequestHeader header, int bodyOffset, RouteTable routes)
{
    public ClientSession Session { get; } = session;
    public PooledFrame Frame { get; } = frame;
    public RequestHeader Header { get; } = header;
    public ApiKey ApiKey => Header.ApiKey;
    public short Version => Header.ApiVersion;
    public int CorrelationId => Header.CorrelationId;
    public ReadOnlyMemory<byte> Body => Frame.Memory[bodyOffset..];
    public RouteTable Routes { get; } = routes;

    private List<Task>? _upstreamSettled;

    /// <summary>The upstream requests this request has sent, settled when each broker answers or its connection fails.</summary>
    public List<Task> UpstreamSettled => _upstreamSettled ??= [];

    public T Decode<T>() where T : IKafkaMessage, new() => FrameCodec.DecodeBody<T>(Body, Version);

    /// <summary>Encodes a response to this request (client's correlation id, matching header version).</summary>
    public PooledFrame Respond(IKafkaMessage response) => FrameCodec.EncodeResponse(ApiKey, Version, CorrelationId, response);
}
