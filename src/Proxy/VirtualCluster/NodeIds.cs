using System.Text;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Client-visible broker ids: <c>instance base + (cluster ordinal + 1) * Stride + upstream id</c>. Unique across
/// clusters and stable across switches, so a client never confuses a source broker with a target broker.
/// </summary>
/// <remarks>
/// A single instance has base 0. In a fleet each instance takes its own range, derived from its instance id, so a
/// client that moves to another instance (its own died) sees other brokers, not the same brokers at other addresses:
/// librdkafka keeps the address it has for a node id in places (its transaction coordinator), so same ids at new
/// addresses would leave it talking to the dead instance. Two instance ids may hash to the same range (about n²/2
/// in <see cref="Slots"/> for n instances); those two instances then name brokers alike, as before ranges existed.
/// </remarks>
public sealed class NodeIds
{
    public const int Stride = 100_000;

    /// <summary>Ids of one instance, <c>Base</c> to <c>Base + InstanceStride - 1</c>.</summary>
    private readonly int _instanceStride;

    public NodeIds(int clusterCount, FleetConfig? fleet)
    {
        _instanceStride = (clusterCount + 1) * Stride;
        Slots = int.MaxValue / _instanceStride - 1;
        Base = fleet is null ? 0 : (1 + (int)(Fnv1a(fleet.InstanceId) % (uint)Slots)) * _instanceStride;
    }

    /// <summary>The instance's first id (0 for a single instance).</summary>
    public int Base { get; }

    /// <summary>How many instance ranges there are.</summary>
    public int Slots { get; }

    public int ToVirtual(int clusterOrdinal, int upstreamNodeId) =>
        upstreamNodeId < 0 ? upstreamNodeId : Base + (clusterOrdinal + 1) * Stride + upstreamNodeId;

    /// <summary>The cluster and upstream broker of one of this instance's ids; false for any other id.</summary>
    public bool TryFromVirtual(int virtualNodeId, out int clusterOrdinal, out int upstreamNodeId)
    {
        var local = virtualNodeId - Base;
        clusterOrdinal = local / Stride - 1;
        upstreamNodeId = local % Stride;
        return local >= Stride && local < _instanceStride;
    }

    // Stable across processes and versions (string.GetHashCode is not).
    private static uint Fnv1a(string text)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash = (hash ^ b) * 16777619u;
        }
        return hash;
    }
}
