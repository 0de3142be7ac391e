using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Switchback.Protocol;

namespace Switchback.Proxy.Tests.Integration.VirtualCluster;

/// <summary>
/// A TCP relay that forwards whole Kafka frames between clients and the proxy and keeps a copy of every response
/// together with the api key and version of the request it answers. One listener per proxy port, on another
/// loopback address than the proxy's, so a proxy told to advertise that address has all its client traffic pass here.
/// </summary>
public sealed class RecordingRelay : IAsyncDisposable
{
    private readonly List<TcpListener> _listeners = [];
    private readonly ConcurrentBag<Socket> _sockets = [];
    private readonly CancellationTokenSource _stop = new();

    public RecordingRelay(IPAddress listenAddress, IPAddress forwardAddress, IEnumerable<int> ports)
    {
        foreach (var port in ports)
        {
            var listener = new TcpListener(listenAddress, port);
            listener.Start();
            _listeners.Add(listener);
            _ = AcceptLoopAsync(listener, new IPEndPoint(forwardAddress, port));
        }
    }

    public ConcurrentQueue<RecordedResponse> Responses { get; } = new();

    public int ConnectionCount => _sockets.Count / 2;

    private async Task AcceptLoopAsync(TcpListener listener, IPEndPoint forwardTo)
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
            _ = RelayAsync(client, forwardTo);
        }
    }

    private async Task RelayAsync(Socket client, IPEndPoint forwardTo)
    {
        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(client);
        _sockets.Add(upstream);
        try
        {
            await upstream.ConnectAsync(forwardTo, _stop.Token);
            var requests = new ConcurrentDictionary<int, (ApiKey ApiKey, short Version)>();
            using var clientStream = new NetworkStream(client, ownsSocket: false);
            using var proxyStream = new NetworkStream(upstream, ownsSocket: false);
            var toProxy = PumpAsync(clientStream, proxyStream, frame =>
            {
                RequestHeader.TryPeek(frame, out var apiKey, out var version, out var correlationId);
                requests[correlationId] = (apiKey, version);
            });
            var toClient = PumpAsync(proxyStream, clientStream, frame =>
            {
                var correlationId = BinaryPrimitives.ReadInt32BigEndian(frame);
                if (requests.TryRemove(correlationId, out var request))
                {
                    Responses.Enqueue(new RecordedResponse(request.ApiKey, request.Version, frame.ToArray()));
                }
            });
            await Task.WhenAny(toProxy, toClient);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
        {
        }
        finally
        {
            client.Dispose();
            upstream.Dispose();
        }
    }

    private async Task PumpAsync(Stream from, Stream to, ReadOnlySpanAction observe)
    {
        var size = new byte[4];
        try
        {
            while (true)
            {
                await from.ReadExactlyAsync(size, _stop.Token);
                var length = BinaryPrimitives.ReadInt32BigEndian(size);
                var frame = new byte[length];
                await from.ReadExactlyAsync(frame, _stop.Token);
                observe(frame);
                await to.WriteAsync(size, _stop.Token);
                await to.WriteAsync(frame, _stop.Token);
            }
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var listener in _listeners)
        {
            listener.Stop();
        }
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }
        _stop.Dispose();
    }

    private delegate void ReadOnlySpanAction(ReadOnlySpan<byte> frame);
}

/// <summary>One response frame (header and body, no size prefix) and the request it answers.</summary>
public sealed record RecordedResponse(ApiKey ApiKey, short Version, byte[] Frame);
