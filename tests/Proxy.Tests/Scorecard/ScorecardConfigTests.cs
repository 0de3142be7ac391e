using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Xunit;

namespace Switchback.Proxy.Tests.Scorecard;

/// <summary>The scorecard's settings: a family's owner and lag limits, and the refresh interval; bad values name their key.</summary>
public sealed class ScorecardConfigTests
{
    private static ProxyConfig Load(params (string Key, string Value)[] overrides)
    {
        var settings = DemoRunner.DemoSettings("127.0.0.1:1", "127.0.0.1:2");
        foreach (var (key, value) in overrides)
        {
            settings[key] = value;
        }
        return ConfigValidator.Load(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
    }

    [Fact]
    public void Defaults_NoOwner_EveryRecordRequired_RefreshEvery15s()
    {
        var config = Load();
        var orders = config.Families.Single(f => f.Name == "orders");
        Assert.Null(orders.Owner);
        Assert.Equal(new LagLimits(0, null), orders.LagLimits);
        Assert.Equal(TimeSpan.FromSeconds(15), config.ScorecardRefresh);
    }

    [Fact]
    public void OwnerLimitsAndInterval_AreRead()
    {
        var config = Load(
            ("Switchback:Families:0:Owner", " payments-team "),
            ("Switchback:Families:0:Gates:MaxLagRecords", "100"),
            ("Switchback:Families:0:Gates:MaxLagMs", "5000"),
            ("Switchback:Scorecard:IntervalSeconds", "3"));
        var orders = config.Families.Single(f => f.Name == "orders");
        Assert.Equal("payments-team", orders.Owner);
        Assert.Equal(new LagLimits(100, 5000), orders.LagLimits);
        Assert.Equal(TimeSpan.FromSeconds(3), config.ScorecardRefresh);
    }

    [Fact]
    public void TimeLimitAlone_LeavesRecordsUnbounded()
    {
        var config = Load(("Switchback:Families:0:Gates:MaxLagMs", "250"));
        Assert.Equal(new LagLimits(null, 250), config.Families.Single(f => f.Name == "orders").LagLimits);
    }

    [Theory]
    [InlineData("Switchback:Families:0:Gates:MaxLagRecords", "-1", "must be 0 or more records")]
    [InlineData("Switchback:Families:0:Gates:MaxLagMs", "-5", "must be 0 or more milliseconds")]
    [InlineData("Switchback:Families:0:Gates:MaxLagRecords", "lots", "not a whole number")]
    [InlineData("Switchback:Families:0:Gates:MaxLagMs", "1.5", "not a whole number")]
    [InlineData("Switchback:Families:0:Owner", "  ", "must name who decides")]
    [InlineData("Switchback:Scorecard:IntervalSeconds", "0", "between 1 and 3600")]
    [InlineData("Switchback:Scorecard:IntervalSeconds", "soon", "not a whole number")]
    [InlineData("Switchback:Families:0:Gates:MaxLag", "1", "unknown setting")]
    public void BadValue_StopsStartUp_NamingTheKey(string key, string value, string problem)
    {
        var error = Assert.Throws<ConfigException>(() => Load((key, value)));
        Assert.True(key == error.Key, error.Message);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }
}
