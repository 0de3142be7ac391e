using System.Diagnostics;
using Switchback.Protocol;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>One client request being handled: its frame, parsed header, and the route snapshot it is routed with.</summary>
/// <remarks>
/// The dispatcher reuses a context for its connection's next request only when the handler has declared, with
/// <see cref="LetGoAfterDispatch"/>, that nothing it started refers to the context once dispatch returns (the relay
/// path, which keeps a <see cref="DispatchedRequest"/> instead). Any other handler may keep it as long as it likes.
/// </remarks>
public sealed class RequestContext
{
    private int _bodyOffset;
    private List<Task>? _upstreamSettled;

    public RequestContext(ClientSession session, PooledFrame frame, RequestHeader header, int bodyOffset, RouteTable routes, long receivedAt = 0)
    {
        Session = session;
        Frame = frame;
        Header = header;
        _bodyOffset = bodyOffset;
        Routes = routes;
        ReceivedAt = receivedAt != 0 ? receivedAt : Stopwatch.GetTimestamp();
    }

    public ClientSession Session { get; }
    public PooledFrame Frame { get; private set; }
    public RequestHeader Header { get; private set; }
    public ApiKey ApiKey => Header.ApiKey;
    public short Version => Header.ApiVersion;
    public int CorrelationId => Header.CorrelationId;
    public ReadOnlyMemory<byte> Body => Frame.Memory[_bodyOffset..];
    public RouteTable Routes { get; private set; }

    /// <summary>When dispatch began (<see cref="Stopwatch.GetTimestamp"/>): the start of the latency a client sees, less its time on the wire.</summary>
    public long ReceivedAt { get; private set; }

    /// <summary>The upstream requests this request has sent, settled when each broker answers or its connection fails.</summary>
    public List<Task> UpstreamSettled => _upstreamSettled ??= [];

    /// <summary>True once the handler has let go of this context: the dispatcher may reuse it after dispatch.</summary>
    internal bool IsLetGo { get; private set; }

    public T Decode<T>() where T : IKafkaMessage, new() => FrameCodec.DecodeBody<T>(Body, Version);

    /// <summary>Encodes a response to this request (client's correlation id, matching header version).</summary>
    public PooledFrame Respond(IKafkaMessage response) => FrameCodec.EncodeResponse(ApiKey, Version, CorrelationId, response);

    /// <summary>
    /// The handler refers to this context no more once dispatch returns (what it still needs, it took as a
    /// <see cref="DispatchedRequest"/>), so the dispatcher may reuse it for the connection's next request.
    /// </summary>
    internal DispatchedRequest LetGoAfterDispatch()
    {
        IsLetGo = true;
        return new DispatchedRequest(Session, Frame, Header, _bodyOffset, Routes, ReceivedAt);
    }

    /// <summary>Readies a context let go of for the connection's next request (called by its dispatcher only).</summary>
    internal void Reuse(PooledFrame frame, RequestHeader header, int bodyOffset, RouteTable routes)
    {
        Frame = frame;
        Header = header;
        _bodyOffset = bodyOffset;
        Routes = routes;
        ReceivedAt = Stopwatch.GetTimestamp();
        _upstreamSettled = null;
        IsLetGo = false;
    }
}

/// <summary>
/// What work that outlives dispatch keeps of a request whose <see cref="RequestContext"/> was let go of; a context of
/// its own is made only when that work needs one (an answer that must be merged). The frame has gone back to the
/// pool by then, as with any context after dispatch.
/// </summary>
internal readonly record struct DispatchedRequest(ClientSession Session, PooledFrame Frame, RequestHeader Header, int BodyOffset, RouteTable Routes, long ReceivedAt)
{
    public short Version => Header.ApiVersion;
    public int CorrelationId => Header.CorrelationId;

    public RequestContext ToContext() => new(Session, Frame, Header, BodyOffset, Routes, ReceivedAt);
}
