using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Xunit;

namespace Switchback.Proxy.Tests.Translation;

/// <summary><c>Families[].OffsetTranslation</c> as configured: defaults as MirrorMaker 2's, refusals naming the key at fault.</summary>
public sealed class OffsetTranslationConfigTests
{
    [Fact]
    public void Absent_IsIdentity()
    {
        var family = Load().Families[0];
        Assert.Null(family.OffsetTranslation);
        Assert.Equal(TranslationStrategy.Identity, family.Translation.Strategy);
    }

    [Fact]
    public void MirrorMaker2_DefaultsAsMirrorMaker2()
    {
        // The demo's first family reads from 'source'; the other configured cluster is 'target'.
        var translation = Load(("Strategy", "mirrormaker2")).Families[0].Translation;
        Assert.Equal(new OffsetTranslationConfig(TranslationStrategy.MirrorMaker2, "source", "target", "source", "target", ReplicationPolicyKind.Identity,
            new InternalTopic("source", "mm2-offset-syncs.target.internal"), new InternalTopic("target", "source.checkpoints.internal")), translation);
        Assert.Equal("orders.events", translation.RemoteTopic("orders.events"));
    }

    [Fact]
    public void MirrorMaker2_Aliases_NameTheDefaultTopics_AndTheDefaultPolicyPrefixesRemoteTopics()
    {
        var translation = Load(("Strategy", "MirrorMaker2"), ("SourceAlias", "dc1"), ("TargetAlias", "dc2"), ("ReplicationPolicy", "default"),
            ("OffsetSyncs:Cluster", "target")).Families[0].Translation;
        Assert.Equal(new InternalTopic("target", "mm2-offset-syncs.dc2.internal"), translation.OffsetSyncs);
        Assert.Equal(new InternalTopic("target", "dc1.checkpoints.internal"), translation.Checkpoints);
        Assert.Equal("dc1.orders.events", translation.RemoteTopic("orders.events"));
        Assert.Equal("orders.events", translation.UpstreamTopic("dc1.orders.events"));
        Assert.Null(translation.UpstreamTopic("orders.events"));
    }

    [Fact]
    public void Timestamp_IsRead()
    {
        Assert.Equal(TranslationStrategy.Timestamp, Load(("Strategy", "timestamp")).Families[0].Translation.Strategy);
    }

    [Theory]
    [InlineData("Strategy", "Strategy=offsets")]
    [InlineData("SourceAlias", "Strategy=timestamp", "SourceAlias=dc1")]
    [InlineData("OffsetSyncs:Topic", "Strategy=identity", "OffsetSyncs:Topic=x")]
    [InlineData("SourceCluster", "Strategy=mirrormaker2", "SourceCluster=nowhere")]
    [InlineData("TargetCluster", "Strategy=mirrormaker2", "TargetCluster=source")]
    [InlineData("SourceAlias", "Strategy=mirrormaker2", "SourceAlias=dc.1")]
    [InlineData("ReplicationPolicy", "Strategy=mirrormaker2", "ReplicationPolicy=rename")]
    [InlineData("OffsetSyncs:Cluster", "Strategy=mirrormaker2", "OffsetSyncs:Cluster=elsewhere")]
    [InlineData("Checkpoints:Topic", "Strategy=mirrormaker2", "Checkpoints:Topic=bad topic")]
    public void Invalid_IsRefused_NamingTheKey(string key, params string[] values)
    {
        var error = Assert.Throws<ConfigException>(() => Load([.. values.Select(v => (v.Split('=')[0], v.Split('=')[1]))]));
        Assert.Equal($"Switchback:Families:0:OffsetTranslation:{key}", error.Key);
    }

    [Fact]
    public void UnknownKey_IsRefused()
    {
        var error = Assert.Throws<ConfigException>(() => Load(("Strategy", "mirrormaker2"), ("SyncTopic", "x")));
        Assert.Equal("Switchback:Families:0:OffsetTranslation:SyncTopic", error.Key);
    }

    [Fact]
    public void MirrorMaker2_WithMoreThanTwoClusters_NeedsTheTargetNamed()
    {
        var error = Assert.Throws<ConfigException>(() => Load(extra: ("Switchback:Clusters:third:BootstrapServers", "127.0.0.1:3"), ("Strategy", "mirrormaker2")));
        Assert.Equal("Switchback:Families:0:OffsetTranslation:TargetCluster", error.Key);
        var named = Load(extra: ("Switchback:Clusters:third:BootstrapServers", "127.0.0.1:3"), ("Strategy", "mirrormaker2"), ("TargetCluster", "third"));
        Assert.Equal("third", named.Families[0].Translation.TargetCluster);
    }

    private static ProxyConfig Load(params (string Key, string Value)[] translation) => Load(extra: null, translation);

    private static ProxyConfig Load((string Key, string Value)? extra, params (string Key, string Value)[] translation)
    {
        var settings = DemoRunner.DemoSettings("127.0.0.1:1", "127.0.0.1:2");
        if (extra is { } e)
        {
            settings[e.Key] = e.Value;
        }
        foreach (var (key, value) in translation)
        {
            settings[$"Switchback:Families:0:OffsetTranslation:{key}"] = value;
        }
        return ConfigValidator.Load(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
    }
}
