using Switchback.Proxy.Translation;
using Xunit;

namespace Switchback.Proxy.Tests.Translation;

/// <summary>MirrorMaker 2's translation rules over one partition's syncs, both ways, and the thinning of old syncs.</summary>
public sealed class PartitionSyncsTests
{
    private static PartitionSyncs With(params (long Upstream, long Downstream)[] pairs)
    {
        var syncs = new PartitionSyncs();
        foreach (var (upstream, downstream) in pairs)
        {
            syncs.Add(new OffsetSync("t", 0, upstream, downstream));
        }
        return syncs;
    }

    [Fact]
    public void Forward_ExactMatch_IsDownstream_OtherwiseOnePastTheNewestSyncAtOrBelow()
    {
        var syncs = With((0, 7), (12, 17), (24, 27));
        Assert.Equal(17, syncs.Forward(12).Offset);
        Assert.Equal(18, syncs.Forward(13).Offset);
        Assert.Equal(18, syncs.Forward(23).Offset);
        Assert.Equal(27, syncs.Forward(24).Offset);
        Assert.Equal(28, syncs.Forward(1000).Offset);
        Assert.Equal(7, syncs.Forward(0).Offset);
    }

    [Fact]
    public void Forward_BeforeEverySync_OrWithoutSyncs_DoesNotTranslate()
    {
        Assert.Null(With((10, 3)).Forward(9).Offset);
        Assert.Contains("newer", With((10, 3)).Forward(9).Why, StringComparison.Ordinal);
        Assert.Null(new PartitionSyncs().Forward(5).Offset);
    }

    [Fact]
    public void Reverse_ExactMatch_IsUpstream_OtherwiseOnePastTheNewestSyncAtOrBelow()
    {
        var syncs = With((0, 7), (12, 17), (24, 27));
        Assert.Equal(12, syncs.Reverse(17).Offset);
        Assert.Equal(13, syncs.Reverse(20).Offset);
        Assert.Equal(25, syncs.Reverse(40).Offset);
        Assert.Null(syncs.Reverse(6).Offset);
    }

    [Fact]
    public void AnOffsetGoingBack_ForgetsEarlierSyncs()
    {
        var syncs = With((100, 50), (200, 150), (5, 160));
        Assert.Equal(1, syncs.Count);
        Assert.Equal(161, syncs.Forward(150).Offset);
    }

    [Fact]
    public void ManySyncs_KeepAtMost64_NewestAndOldestKept_SpacingGrowsWithAge()
    {
        var syncs = new PartitionSyncs();
        for (long i = 0; i <= 10_000; i++)
        {
            syncs.Add(new OffsetSync("t", 0, i * 10, i * 10 + 3));
        }
        Assert.Equal(PartitionSyncs.Capacity, syncs.Count);
        Assert.Equal(100_000, syncs.Syncs[0].Upstream);
        Assert.Equal(0, syncs.Syncs[^1].Upstream);
        // Near the live end translation stays fine-grained; far back it is coarser, never wrong (at or before).
        Assert.Equal(99_993 + 1, syncs.Forward(99_995).Offset);
        foreach (var offset in new long[] { 5, 1234, 50_000, 99_999 })
        {
            Assert.InRange(syncs.Forward(offset).Offset!.Value, 3, offset + 3);
        }
        var gaps = syncs.Syncs.Zip(syncs.Syncs.Skip(1), (newer, older) => newer.Upstream - older.Upstream).ToList();
        Assert.True(gaps.Take(8).Max() < gaps.TakeLast(8).Min(), string.Join(",", gaps));
    }
}
