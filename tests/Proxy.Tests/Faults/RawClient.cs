using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Switchback.Proxy.Tests.Faults;

/// <summary>A bare TCP client for what no real client does on purpose: stay silent, hang up mid-request.</summary>
public sealed class RawClient : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public static async Task<RawClient> ConnectAsync(string hostAndPort)
    {
        var client = new RawClient();
        await client._socket.ConnectAsync(IPEndPoint.Parse(hostAndPort));
        return client;
    }

    public Task SendAsync(byte[] frameBody)
    {
        var bytes = new byte[frameBody.Length + 4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, frameBody.Length);
        frameBody.CopyTo(bytes, 4);
        return _socket.SendAsync(bytes);
    }

    /// <summary>ApiVersions v0, answered by the proxy itself.</summary>
    public static byte[] ApiVersionsRequest(int correlationId)
    {
        var body = new byte[10];
        BinaryPrimitives.WriteInt16BigEndian(body, 18);
        BinaryPrimitives.WriteInt16BigEndian(body.AsSpan(2), 0);
        BinaryPrimitives.WriteInt32BigEndian(body.AsSpan(4), correlationId);
        BinaryPrimitives.WriteInt16BigEndian(body.AsSpan(8), -1);
        return body;
    }

    /// <summary>Reads one response frame body, or null when the peer closed first.</summary>
    public async Task<byte[]?> ReceiveFrameAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var size = new byte[4];
        if (!await ReadExactlyAsync(size, cancel.Token))
        {
            return null;
        }
        var body = new byte[BinaryPrimitives.ReadInt32BigEndian(size)];
        return await ReadExactlyAsync(body, cancel.Token) ? body : null;
    }

    /// <summary>True when the proxy closes the connection within <paramref name="timeout"/>.</summary>
    public async Task<bool> IsClosedByPeerAsync(TimeSpan timeout)
    {
        var buffer = new byte[1024];
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                if (await _socket.ReceiveAsync(buffer, SocketFlags.None, cancel.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task<bool> ReadExactlyAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        try
        {
            while (read < buffer.Length)
            {
                var n = await _socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cancellationToken);
                if (n == 0)
                {
                    return false;
                }
                read += n;
            }
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public void Dispose() => _socket.Dispose();
}
