using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Tests.Fronts;

/// <summary>
/// What the hand-made test fronts share: listeners that stand before an upstream (each broker of a mock cluster, or
/// the ports of a proxy), one upstream connection per client connection, size-prefixed Kafka frames both ways, and
/// teardown. By default a front relays every frame as is, pairing each answer with its request in order (a broker
/// answers a connection's requests in order) so that <see cref="RewriteAnswerAsync"/> can read or rewrite it; a front
/// that relays otherwise overrides <see cref="RelayAsync"/>.
/// Connections are served from construction on, so a front's own state must be set by field initialisers (which run
/// before this constructor), not in its constructor's body.
/// </summary>
public abstract class KafkaFront : IAsyncDisposable
{
    private readonly List<TcpListener> _listeners = [];
    private readonly ConcurrentBag<Connection> _connections = [];
    private readonly CancellationTokenSource _stop = new();

    /// <summary>Stands before every broker of <paramref name="cluster"/>, each of which advertises the front's port for it.</summary>
    protected KafkaFront(MockKafkaCluster cluster)
    {
        Stopping = _stop.Token;
        var addresses = new List<string>();
        foreach (var brokerId in cluster.BrokerIds)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            _listeners.Add(listener);
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            cluster.SetBrokerAdvertisedAddress(brokerId, "127.0.0.1", port);
            addresses.Add($"127.0.0.1:{port}");
            _ = AcceptLoopAsync(listener, brokerId, cluster.GetBrokerListener(brokerId));
        }
        BootstrapServers = string.Join(',', addresses);
    }

    /// <summary>Listens on each of <paramref name="ports"/> at <paramref name="listenAddress"/> and relays to the same port at <paramref name="forwardAddress"/>.</summary>
    protected KafkaFront(IPAddress listenAddress, IPAddress forwardAddress, IEnumerable<int> ports)
    {
        Stopping = _stop.Token;
        var addresses = new List<string>();
        foreach (var port in ports)
        {
            var listener = new TcpListener(listenAddress, port);
            listener.Start();
            _listeners.Add(listener);
            addresses.Add($"{listenAddress}:{port}");
            _ = AcceptLoopAsync(listener, NoBroker, new IPEndPoint(forwardAddress, port));
        }
        BootstrapServers = string.Join(',', addresses);
    }

    /// <summary>The front's addresses, one per listener (per broker, in broker id order, before a mock cluster).</summary>
    public string BootstrapServers { get; }

    /// <summary>The broker id of a connection whose upstream is not a mock broker.</summary>
    protected const int NoBroker = -1;

    /// <summary>Cancelled when the front stops (and still readable once it is disposed).</summary>
    protected CancellationToken Stopping { get; }

    /// <summary>Client connections accepted so far.</summary>
    protected int ConnectionsAccepted => _connections.Count;

    /// <summary>Refuses new connections and drops open ones.</summary>
    protected void StopServing()
    {
        _stop.Cancel();
        foreach (var listener in _listeners)
        {
            listener.Stop();
        }
        foreach (var connection in _connections)
        {
            connection.Close();
        }
    }

    public ValueTask DisposeAsync()
    {
        StopServing();
        _stop.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>One client connection and the upstream connection the front opens for it (not yet connected).</summary>
    protected sealed class Connection(Socket client, int brokerId, IPEndPoint upstreamEndPoint)
    {
        public Socket Client { get; } = client;
        public Socket Upstream { get; } = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        /// <summary>The mock broker the client reached through this front, or <see cref="NoBroker"/>.</summary>
        public int BrokerId { get; } = brokerId;

        public IPEndPoint UpstreamEndPoint { get; } = upstreamEndPoint;

        public void Close()
        {
            Client.Dispose();
            Upstream.Dispose();
        }
    }

    /// <summary>A request frame's header and body (which slices the frame).</summary>
    protected sealed record Request(ApiKey ApiKey, short Version, int CorrelationId, string? ClientId, ReadOnlyMemory<byte> Body)
    {
        public static Request Parse(byte[] frame)
        {
            RequestHeader.TryPeek(frame, out var apiKey, out var version, out var correlationId);
            var bodyOffset = FrameCodec.RequestBodyOffset(frame, apiKey, version, out var header);
            return new Request(apiKey, version, correlationId, header.ClientId, frame.AsMemory(bodyOffset));
        }

        /// <summary>False for a Produce with acks 0, which gets no answer.</summary>
        public bool ExpectsAnswer => ApiKey != ApiKey.Produce || FrameCodec.DecodeBody<ProduceRequest>(Body, Version).Acks != 0;
    }

    /// <summary>
    /// Relays one client connection until either side ends it (the front closes both sockets after). By default:
    /// every frame as is, each answer through <see cref="RewriteAnswerAsync"/> with the request it answers.
    /// </summary>
    protected virtual async Task RelayAsync(Connection connection)
    {
        // A broker answers a connection's requests in order, so answers pair with this queue's head.
        var pending = new ConcurrentQueue<Request>();
        await connection.Upstream.ConnectAsync(connection.UpstreamEndPoint, Stopping);
        await using var clientStream = new NetworkStream(connection.Client, ownsSocket: true);
        await using var upstreamStream = new NetworkStream(connection.Upstream, ownsSocket: true);
        var answers = Task.Run(async () =>
        {
            while (await ReadFrameAsync(upstreamStream, Stopping) is { } frame)
            {
                if (pending.TryDequeue(out var request))
                {
                    frame = await RewriteAnswerAsync(request, frame);
                }
                await WriteFrameAsync(clientStream, frame);
            }
        });
        while (await ReadFrameAsync(clientStream, Stopping) is { } frame)
        {
            var request = Request.Parse(frame);
            if (request.ExpectsAnswer)
            {
                pending.Enqueue(request);
            }
            await WriteFrameAsync(upstreamStream, frame);
        }
        await answers;
    }

    /// <summary>The upstream's answer to <paramref name="request"/> as the front relays it: as is, unless a front reads or rewrites it.</summary>
    protected virtual ValueTask<byte[]> RewriteAnswerAsync(Request request, byte[] answer) => ValueTask.FromResult(answer);

    protected static T Decode<T>(byte[] frame, Request request) where T : IKafkaMessage, new() => Decode<T>(frame, request.ApiKey, request.Version);

    protected static T Decode<T>(byte[] frame, ApiKey apiKey, short version) where T : IKafkaMessage, new()
    {
        // Over the array itself (byte fields slice it), which outlives the decoded message.
        var reader = new KafkaReader((ReadOnlyMemory<byte>)frame);
        var header = new ResponseHeader();
        header.Read(ref reader, KafkaApis.ResponseHeaderVersion(apiKey, version));
        var message = new T();
        message.Read(ref reader, version);
        return message;
    }

    /// <summary>An answer frame to <paramref name="request"/> (header and body, no size prefix).</summary>
    protected static byte[] Encode(Request request, IKafkaMessage response)
    {
        using var frame = FrameCodec.EncodeResponse(request.ApiKey, request.Version, request.CorrelationId, response);
        return frame.Memory.ToArray();
    }

    protected static async Task WriteFrameAsync(Stream stream, byte[] frame)
    {
        var sized = new byte[frame.Length + 4];
        BinaryPrimitives.WriteInt32BigEndian(sized, frame.Length);
        frame.CopyTo(sized, 4);
        await stream.WriteAsync(sized);
    }

    /// <summary>The next frame (no size prefix); null when the stream ends between frames.</summary>
    protected static async Task<byte[]?> ReadFrameAsync(Stream stream, CancellationToken cancellationToken)
    {
        var size = new byte[4];
        try
        {
            await stream.ReadExactlyAsync(size, cancellationToken);
            var frame = new byte[BinaryPrimitives.ReadInt32BigEndian(size)];
            await stream.ReadExactlyAsync(frame, cancellationToken);
            return frame;
        }
        catch (EndOfStreamException)
        {
            return null;
        }
    }

    private async Task AcceptLoopAsync(TcpListener listener, int brokerId, IPEndPoint upstream)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = ServeAsync(new Connection(client, brokerId, upstream));
        }
    }

    private async Task ServeAsync(Connection connection)
    {
        _connections.Add(connection);
        try
        {
            await RelayAsync(connection);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            connection.Close();
        }
    }
}
