using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Switchback.Proxy.Benchmarks.Relay;

/// <summary>
/// A client that allocates nothing per request: one blocking socket, prebuilt request frames, and one response
/// buffer reused for every answer. It sends one request and reads its whole answer before the next, so what the
/// memory diagnoser counts per operation is the proxy's allocation, not the client's.
/// </summary>
internal sealed class BlockingKafkaClient : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _response;
    private int _responseLength;

    private BlockingKafkaClient(Socket socket, int maxResponseBytes)
    {
        _socket = socket;
        _response = new byte[maxResponseBytes];
    }

    /// <summary>Connects to <paramref name="endPoint"/>; a request not answered within <paramref name="timeout"/> throws.</summary>
    public static BlockingKafkaClient Connect(IPEndPoint endPoint, int maxResponseBytes = 64 * 1024, TimeSpan? timeout = null)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var timeoutMs = (int)(timeout ?? TimeSpan.FromSeconds(30)).TotalMilliseconds;
        socket.SendTimeout = timeoutMs;
        socket.ReceiveTimeout = timeoutMs;
        try
        {
            socket.Connect(endPoint);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new BlockingKafkaClient(socket, maxResponseBytes);
    }

    /// <summary>The last answer: its frame body (correlation id, then the rest), without the size prefix.</summary>
    public ReadOnlyMemory<byte> Response => _response.AsMemory(0, _responseLength);

    /// <summary>Sends one size-prefixed request frame and reads its whole answer; returns the answer's length.</summary>
    public int RoundTrip(ReadOnlySpan<byte> requestFrame)
    {
        while (!requestFrame.IsEmpty)
        {
            requestFrame = requestFrame[_socket.Send(requestFrame)..];
        }
        ReceiveExactly(_response.AsSpan(0, 4));
        var length = BinaryPrimitives.ReadInt32BigEndian(_response);
        if (length < 4 || length > _response.Length)
        {
            throw new InvalidOperationException($"Answer of {length} bytes does not fit the {_response.Length}-byte response buffer.");
        }
        ReceiveExactly(_response.AsSpan(0, length));
        _responseLength = length;
        return length;
    }

    private void ReceiveExactly(Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            var read = _socket.Receive(destination);
            if (read == 0)
            {
                throw new InvalidOperationException("The proxy closed the connection.");
            }
            destination = destination[read..];
        }
    }

    public void Dispose() => _socket.Dispose();
}
