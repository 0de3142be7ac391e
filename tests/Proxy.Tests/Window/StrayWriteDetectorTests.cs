using Switchback.Proxy.Window;
using Xunit;

namespace Switchback.Proxy.Tests.Window;

public sealed class StrayWriteDetectorTests
{
    [Fact]
    public void AcknowledgedCopies_AtTheOffsetsTheyExpect_CountNoStrays()
    {
        var detector = new StrayWriteDetector(oldBase: 100);
        detector.CopyLanded(100, copied: 1);
        detector.CopyLanded(101, copied: 2);
        Assert.False(detector.EndObserved(102, copied: 2, possiblyLanded: 0));
        Assert.Equal(0, detector.Count);
    }

    [Fact]
    public void AnAcknowledgedCopy_AboveWhereItWouldBe_CountsTheOffsetsBelowItAsStrays()
    {
        var detector = new StrayWriteDetector(oldBase: 100);
        detector.CopyLanded(100, copied: 1);
        // Three offsets (102, 103, 104 or any three of 101-104) were written by someone else before the second copy.
        detector.CopyLanded(104, copied: 2);
        Assert.Equal(3, detector.Count);
    }

    [Fact]
    public void AnEndOffset_CountsOnlyWhatCopiesInFlightCannotExplain()
    {
        var detector = new StrayWriteDetector(oldBase: 100);
        // 10 copies acknowledged, 5 handed over and maybe landed: an end of 115 may be all copies.
        Assert.False(detector.EndObserved(115, copied: 10, possiblyLanded: 5));
        Assert.Equal(0, detector.Count);
        // An end of 118 cannot be: at least 3 strays.
        Assert.True(detector.EndObserved(118, copied: 10, possiblyLanded: 5));
        Assert.Equal(3, detector.Count);
    }

    [Fact]
    public void TheCount_NeverGoesDown()
    {
        var detector = new StrayWriteDetector(oldBase: 0);
        Assert.True(detector.EndObserved(10, copied: 0, possiblyLanded: 0));
        Assert.False(detector.EndObserved(10, copied: 0, possiblyLanded: 8));
        detector.CopyLanded(10, copied: 1);
        Assert.Equal(10, detector.Count);
    }
}
