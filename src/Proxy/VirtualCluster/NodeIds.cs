namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Client-visible broker ids: <c>(cluster ordinal + 1) * Stride + upstream id</c>. Unique across clusters and stable
/// across switches, so a client never confuses a source broker with a target broker.
/// </summary>
public static class NodeIds
{
    public const int Stride = 100_000;

    public static int ToVirtual(int clusterOrdinal, int upstreamNodeId) =>
        upstreamNodeId < 0 ? upstreamNodeId : (clusterOrdinal + 1) * Stride + upstreamNodeId;

    public static bool TryFromVirtual(int virtualNodeId, out int clusterOrdinal, out int upstreamNodeId)
    {
        clusterOrdinal = virtualNodeId / Stride - 1;
        upstreamNodeId = virtualNodeId % Stride;
        return virtualNodeId >= Stride;
    }
}
