using Switchback.Proxy.Configuration;
using Switchback.Proxy.VirtualCluster;
using Xunit;

namespace Switchback.Proxy.Tests.VirtualCluster;

public sealed class NodeIdsTests
{
    private static FleetConfig Fleet(string instance) => new("source", "__switchback", instance, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(10));

    [Fact]
    public void SingleInstance_KeepsTheUnshiftedIds()
    {
        var ids = new NodeIds(clusterCount: 2, fleet: null);
        Assert.Equal(100_001, ids.ToVirtual(0, 1));
        Assert.Equal(200_003, ids.ToVirtual(1, 3));
        Assert.Equal(-1, ids.ToVirtual(1, -1));
        Assert.True(ids.TryFromVirtual(200_003, out var ordinal, out var node));
        Assert.Equal((1, 3), (ordinal, node));
        Assert.False(ids.TryFromVirtual(99_999, out _, out _));
    }

    [Fact]
    public void FleetInstances_NameTheSameBrokerDifferently_AndEachKnowsOnlyItsOwnIds()
    {
        var p1 = new NodeIds(2, Fleet("p1"));
        var p3 = new NodeIds(2, Fleet("p3"));
        Assert.NotEqual(p1.Base, p3.Base);
        Assert.Equal(p1.Base, new NodeIds(2, Fleet("p1")).Base); // stable: derived from the instance id alone
        foreach (var (ids, other) in new[] { (p1, p3), (p3, p1) })
        {
            var id = ids.ToVirtual(1, 2);
            Assert.True(id > 0);
            Assert.True(ids.TryFromVirtual(id, out var ordinal, out var node));
            Assert.Equal((1, 2), (ordinal, node));
            Assert.False(other.TryFromVirtual(id, out _, out _));
        }
        // The highest id of the highest range still fits an int.
        var ranges = Enumerable.Range(0, 5000).Select(i => new NodeIds(9, Fleet($"instance-{i}"))).ToList();
        Assert.All(ranges, r => Assert.True(r.ToVirtual(8, NodeIds.Stride - 1) > r.Base));
    }
}
