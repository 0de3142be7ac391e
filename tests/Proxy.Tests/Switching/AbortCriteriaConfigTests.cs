using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Xunit;

namespace Switchback.Proxy.Tests.Switching;

/// <summary><c>Families[].AbortWhen</c> as configured: read when valid, refused with the key at fault otherwise.</summary>
public sealed class AbortCriteriaConfigTests
{
    [Fact]
    public void AbortWhen_IsRead_AndOffWhenAbsent()
    {
        var config = Load(("ProduceErrorRatePercent", "1"), ("ProduceLatencyP99Ms", "250"), ("StrayWrites", "1"), ("ForSeconds", "30"));
        Assert.Equal(new AbortCriteria(1, 250, 1, TimeSpan.FromSeconds(30)), config.Families[0].AbortWhen);
        Assert.Null(Load().Families[0].AbortWhen);
    }

    [Theory]
    [InlineData("ForSeconds", "ProduceErrorRatePercent=1")]
    [InlineData("ForSeconds", "ProduceErrorRatePercent=1", "ForSeconds=0")]
    [InlineData("ProduceErrorRatePercent", "ProduceErrorRatePercent=101", "ForSeconds=5")]
    [InlineData("ProduceErrorRatePercent", "ProduceErrorRatePercent=0", "ForSeconds=5")]
    [InlineData("ProduceLatencyP99Ms", "ProduceLatencyP99Ms=-1", "ForSeconds=5")]
    [InlineData("StrayWrites", "StrayWrites=0", "ForSeconds=5")]
    [InlineData("", "ForSeconds=5")]
    public void InvalidAbortWhen_IsRefused_NamingTheKey(string key, params string[] values)
    {
        var error = Assert.Throws<ConfigException>(() => Load([.. values.Select(v => (v.Split('=')[0], v.Split('=')[1]))]));
        Assert.Equal(key.Length == 0 ? "Switchback:Families:0:AbortWhen" : $"Switchback:Families:0:AbortWhen:{key}", error.Key);
    }

    private static ProxyConfig Load(params (string Key, string Value)[] abortWhen)
    {
        var settings = DemoRunner.DemoSettings("127.0.0.1:1", "127.0.0.1:2");
        foreach (var (key, value) in abortWhen)
        {
            settings[$"Switchback:Families:0:AbortWhen:{key}"] = value;
        }
        return ConfigValidator.Load(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
    }
}
