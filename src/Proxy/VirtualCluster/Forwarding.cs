using System.Buffers.Binary;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>Sending a request frame upstream as it is, and handing its response back under the client's correlation id.</summary>
public static class Forwarding
{
    public static async ValueTask<Task<PooledFrame>?> ForwardAsync(UpstreamConnection connection, ReadOnlyMemory<byte> frame,
        int clientCorrelationId, bool expectResponse, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var pending = await connection.SendAsync(frame, expectResponse, cancellationToken).ConfigureAwait(false);
        return pending is null ? null : RestoreCorrelationAsync(pending, clientCorrelationId, timeout, cancellationToken);
    }

    public static async Task<PooledFrame> RestoreCorrelationAsync(PendingResponse pending, int clientCorrelationId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var response = await pending.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        BinaryPrimitives.WriteInt32BigEndian(response.Span, clientCorrelationId);
        return response;
    }
}
