using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Switchback.Protocol;
using Switchback.Proxy.Tests.Fronts;

namespace Switchback.Proxy.Tests.Integration.VirtualCluster;

/// <summary>
/// A TCP relay that forwards whole Kafka frames between clients and the proxy and keeps a copy of every response
/// together with the api key and version of the request it answers. One listener per proxy port, on another
/// loopback address than the proxy's, so a proxy told to advertise that address has all its client traffic pass here.
/// </summary>
public sealed class RecordingRelay(IPAddress listenAddress, IPAddress forwardAddress, IEnumerable<int> ports)
    : KafkaFront(listenAddress, forwardAddress, ports)
{
    public ConcurrentQueue<RecordedResponse> Responses { get; } = new();

    public int ConnectionCount => ConnectionsAccepted;

    /// <summary>Pairs answers with requests by correlation id, and ends the connection as soon as either side does.</summary>
    protected override async Task RelayAsync(Connection connection)
    {
        await connection.Upstream.ConnectAsync(connection.UpstreamEndPoint, Stopping);
        var requests = new ConcurrentDictionary<int, (ApiKey ApiKey, short Version)>();
        using var clientStream = new NetworkStream(connection.Client, ownsSocket: false);
        using var proxyStream = new NetworkStream(connection.Upstream, ownsSocket: false);
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
                Responses.Enqueue(new RecordedResponse(request.ApiKey, request.Version, frame));
            }
        });
        await Task.WhenAny(toProxy, toClient);
    }

    private async Task PumpAsync(Stream from, Stream to, Action<byte[]> observe)
    {
        try
        {
            while (await ReadFrameAsync(from, Stopping) is { } frame)
            {
                observe(frame);
                await WriteFrameAsync(to, frame);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }
}

/// <summary>One response frame (header and body, no size prefix) and the request it answers.</summary>
public sealed record RecordedResponse(ApiKey ApiKey, short Version, byte[] Frame);
