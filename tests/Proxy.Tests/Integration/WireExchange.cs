using System.Buffers.Binary;
using Switchback.Protocol;
using Switchback.Proxy.Upstream;
using Xunit;

namespace Switchback.Proxy.Tests.Integration;

/// <summary>One request written as a raw frame, and its decoded answer: for requests no client here sends as needed.</summary>
public static class WireExchange
{
    private static int s_correlationId = 100;

    public static async Task<T> ExchangeAsync<T>(Stream stream, ApiKey apiKey, short version, IKafkaMessage request, string clientId, TimeSpan timeout)
        where T : IKafkaMessage, new()
    {
        var correlationId = Interlocked.Increment(ref s_correlationId);
        using (var frame = FrameCodec.EncodeRequest(apiKey, version, correlationId, clientId, request))
        {
            var sized = new byte[frame.Length + 4];
            BinaryPrimitives.WriteInt32BigEndian(sized, frame.Length);
            frame.Span.CopyTo(sized.AsSpan(4));
            await stream.WriteAsync(sized);
        }
        using var deadline = new CancellationTokenSource(timeout);
        var size = new byte[4];
        await stream.ReadExactlyAsync(size, deadline.Token);
        var body = new byte[BinaryPrimitives.ReadInt32BigEndian(size)];
        await stream.ReadExactlyAsync(body, deadline.Token);
        Assert.Equal(correlationId, BinaryPrimitives.ReadInt32BigEndian(body));
        using var response = PooledFrame.CopyOf(body);
        return FrameCodec.DecodeResponse<T>(response, apiKey, version);
    }
}
