using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Scorecard;
using Xunit;

namespace Switchback.Proxy.Tests.Scorecard;

/// <summary>Which route the scorecard measures a family against (the one taking over), and which cluster must stay ready (the old one).</summary>
public sealed class ScorecardRulesTests
{
    private static readonly ProxyConfig Config = ConfigValidator.Load(
        new ConfigurationBuilder().AddInMemoryCollection(DemoRunner.DemoSettings("127.0.0.1:1", "127.0.0.1:2")).Build());

    private static readonly ClusterRoute Source = new("source", "source");
    private static readonly ClusterRoute Target = new("target", "target");

    private static FamilyRoute Route(ClusterRoute route, RollbackWindow? window) => new("orders", route, 1, DateTimeOffset.UtcNow, window, 1);

    [Fact]
    public void NoWindow_TheOtherClusterTakesOver_TheCurrentWriteClusterIsOld()
    {
        var route = Route(Source, null);
        Assert.Equal(Target, ScorecardEvaluator.TakeoverOf(route, Config));
        Assert.Equal("source", ScorecardEvaluator.OldClusterOf(route));
    }

    [Fact]
    public void OpenWindow_AwayFromOrigin_TheOriginTakesOverAndIsOld()
    {
        var route = Route(Target, new RollbackWindow(Source, DateTimeOffset.UtcNow, 1));
        Assert.Equal(Source, ScorecardEvaluator.TakeoverOf(route, Config));
        Assert.Equal("source", ScorecardEvaluator.OldClusterOf(route));
    }

    [Fact]
    public void OpenWindow_BackAtOrigin_TheOtherClusterTakesOver()
    {
        var route = Route(Source, new RollbackWindow(Source, DateTimeOffset.UtcNow, 1));
        Assert.Equal(Target, ScorecardEvaluator.TakeoverOf(route, Config));
        Assert.Equal("source", ScorecardEvaluator.OldClusterOf(route));
    }

    [Fact]
    public void ClosedWindow_TheOriginIsWhereASwitchBackWouldGo_TheCurrentWriteClusterIsOld()
    {
        var route = Route(Target, new RollbackWindow(Source, DateTimeOffset.UtcNow, 1).Close(DateTimeOffset.UtcNow, "done"));
        Assert.Equal(Source, ScorecardEvaluator.TakeoverOf(route, Config));
        Assert.Equal("target", ScorecardEvaluator.OldClusterOf(route));
    }
}
