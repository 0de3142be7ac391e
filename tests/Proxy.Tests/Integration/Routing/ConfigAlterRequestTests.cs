using System.Globalization;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Switchback.Protocol.Messages;
using Xunit;
using ApiKey = Switchback.Protocol.ApiKey;
using WireError = Switchback.Protocol.ErrorCode;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>
/// Config changes (IncrementalAlterConfigs, AlterConfigs) made with Confluent.Kafka's AdminClient follow write
/// authority: a topic's resource reaches its family's write cluster only, <c>orders</c> source and <c>payments</c>
/// target in the demo families, and a broker's resource the upstream broker behind the virtual id it names. The
/// clusters are librdkafka mocks, which have neither API; the <see cref="GroupApisFront"/> before each of them is a
/// test-only stand-in that answers them and records what each broker got.
/// </summary>
public sealed class ConfigAlterRequestTests(MultiGroupRig rig) : IClassFixture<MultiGroupRig>
{
    private static readonly TimeSpan AdminTimeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task IncrementalAlterConfigs_OrdersAndPaymentsInOneCall_EachReachesOnlyItsFamilysWriteCluster()
    {
        // The front answers IncrementalAlterConfigs as a test-only stand-in: the mock lacks the API.
        var orders = rig.NewTopic("orders");
        var payments = rig.NewTopic("payments");
        using var admin = rig.AdminClient();

        var results = await admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
        {
            [Topic(orders)] = [new ConfigEntry { Name = "retention.ms", Value = "3600000", IncrementalOperation = AlterConfigOpType.Set }],
            [Topic(payments)] = [new ConfigEntry { Name = "cleanup.policy", Value = "compact", IncrementalOperation = AlterConfigOpType.Append }],
        }, new IncrementalAlterConfigsOptions { RequestTimeout = AdminTimeout });

        Assert.Equal([orders, payments], results.Select(r => r.ConfigResource.Name).Order());
        Assert.Equal([(orders, "retention.ms", "3600000", (sbyte)0)], Altered(rig.SourceFront, ApiKey.IncrementalAlterConfigs, orders, payments));
        Assert.Equal([(payments, "cleanup.policy", "compact", (sbyte)2)], Altered(rig.TargetFront, ApiKey.IncrementalAlterConfigs, orders, payments));
    }

    [Fact]
    public async Task AlterConfigs_OrdersAndPaymentsInOneCall_EachReachesOnlyItsFamilysWriteCluster()
    {
        // The front answers AlterConfigs as a test-only stand-in: the mock lacks the API. The API is deprecated, but
        // tools still send it.
        var orders = rig.NewTopic("orders");
        var payments = rig.NewTopic("payments");
        using var admin = rig.AdminClient();

#pragma warning disable CS0618 // AlterConfigsAsync is deprecated in favour of IncrementalAlterConfigsAsync; what it sends is under test.
        await admin.AlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
        {
            [Topic(payments)] = [new ConfigEntry { Name = "retention.ms", Value = "7200000" }],
            [Topic(orders)] = [new ConfigEntry { Name = "retention.ms", Value = "3600000" }],
        }, new AlterConfigsOptions { RequestTimeout = AdminTimeout });
#pragma warning restore CS0618

        Assert.Equal([(orders, "retention.ms", "3600000", (sbyte)-1)], Altered(rig.SourceFront, ApiKey.AlterConfigs, orders, payments));
        Assert.Equal([(payments, "retention.ms", "7200000", (sbyte)-1)], Altered(rig.TargetFront, ApiKey.AlterConfigs, orders, payments));
    }

    [Fact]
    public async Task IncrementalAlterConfigs_BrokerResource_ReachesTheBrokerBehindTheVirtualId_UnderItsUpstreamId()
    {
        // The front answers IncrementalAlterConfigs as a test-only stand-in (the mock lacks the API), recording which
        // broker got each resource under which name.
        using var admin = rig.AdminClient();
        var brokers = admin.GetMetadata(AdminTimeout).Brokers.Select(b => b.BrokerId).ToList();
        var targetBroker = brokers.Where(id => id / 100_000 == 2).Order().Last();
        var targetUpstream = targetBroker % 100_000;
        var sourceBroker = brokers.Where(id => id / 100_000 == 1).Order().First();
        var sourceUpstream = sourceBroker % 100_000;
        const string Config = "log.cleaner.threads"; // no other test here alters it

        // librdkafka sends a broker resource to the broker it names (one per call).
        var results = await admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
        {
            [new ConfigResource { Type = ResourceType.Broker, Name = Id(targetBroker) }] =
                [new ConfigEntry { Name = Config, Value = "2", IncrementalOperation = AlterConfigOpType.Set }],
        }, new IncrementalAlterConfigsOptions { RequestTimeout = AdminTimeout });

        Assert.Equal(Id(targetBroker), Assert.Single(results).ConfigResource.Name);
        Assert.Equal([new ConfigAlteration(ApiKey.IncrementalAlterConfigs, 4, Id(targetUpstream), targetUpstream, Config, "2", 0)],
            rig.TargetFront.ConfigAlterations.Where(a => a.Config == Config));
        Assert.DoesNotContain(rig.SourceFront.ConfigAlterations, a => a.Config == Config);

        // Several resources in one request, at the wire level (librdkafka allows one broker resource per call): a
        // topic, a source broker, and a name that is no broker of either cluster.
        var orders = rig.NewTopic("orders");
        IncrementalAlterConfigsRequest.AlterConfigsResource Resource(sbyte type, string name) => new()
        {
            ResourceType = type,
            ResourceName = name,
            Configs = [new IncrementalAlterConfigsRequest.AlterableConfig { Name = Config, Value = "3", ConfigOperation = 0 }],
        };
        var response = await rig.ExchangeAsync<IncrementalAlterConfigsResponse>(ApiKey.IncrementalAlterConfigs, 1, new IncrementalAlterConfigsRequest
        {
            Resources = [Resource(2, orders), Resource(4, Id(sourceBroker)), Resource(4, "7")],
        });

        Assert.Equal([orders, Id(sourceBroker), "7"], response.Responses.Select(r => r.ResourceName));
        Assert.Equal([0, 0, (short)WireError.InvalidRequest], response.Responses.Select(r => r.ErrorCode));
        var source = rig.SourceFront.ConfigAlterations.Where(a => a.Config == Config).ToList();
        Assert.Equal(2, source.Count);
        Assert.Contains(source, a => a.ResourceType == 2 && a.Resource == orders);
        Assert.Contains(new ConfigAlteration(ApiKey.IncrementalAlterConfigs, 4, Id(sourceUpstream), sourceUpstream, Config, "3", 0), source);
        Assert.Single(rig.TargetFront.ConfigAlterations, a => a.Config == Config);
    }

    [Fact]
    public async Task IncrementalAlterConfigs_FamilyReadingFromAnotherCluster_TopicReachesItsWriteCluster_WhileDescribeReadsTheReadCluster()
    {
        // A rig of its own: payments writes to target but reads from source. The front answers both APIs as a
        // test-only stand-in (the mock lacks them).
        var own = new MultiGroupRig { Overrides = new Dictionary<string, string?> { ["Switchback:Families:1:Read"] = "source" } };
        await own.InitializeAsync();
        try
        {
            var payments = own.NewTopic("payments");
            using var admin = own.AdminClient();

            await admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
            {
                [Topic(payments)] = [new ConfigEntry { Name = "retention.ms", Value = "3600000", IncrementalOperation = AlterConfigOpType.Set }],
            }, new IncrementalAlterConfigsOptions { RequestTimeout = AdminTimeout });
            await admin.DescribeConfigsAsync([Topic(payments)], new DescribeConfigsOptions { RequestTimeout = AdminTimeout });

            Assert.Equal([(payments, "retention.ms", "3600000", (sbyte)0)], Altered(own.TargetFront, ApiKey.IncrementalAlterConfigs, payments));
            Assert.Empty(Altered(own.SourceFront, ApiKey.IncrementalAlterConfigs, payments));
            Assert.Contains(own.SourceFront.TopicAdmin, r => r.ApiKey == ApiKey.DescribeConfigs && r.Name == payments);
            Assert.DoesNotContain(own.TargetFront.TopicAdmin, r => r.ApiKey == ApiKey.DescribeConfigs && r.Name == payments);
        }
        finally
        {
            await own.DisposeAsync();
        }
    }

    private static ConfigResource Topic(string name) => new() { Type = ResourceType.Topic, Name = name };

    private static string Id(int brokerId) => brokerId.ToString(CultureInfo.InvariantCulture);

    /// <summary>The configs a front's brokers were asked to change for any of <paramref name="resources"/> by one API.</summary>
    internal static (string, string, string?, sbyte)[] Altered(GroupApisFront front, ApiKey apiKey, params string[] resources) =>
        [.. front.ConfigAlterations.Where(a => a.ApiKey == apiKey && resources.Contains(a.Resource)).Select(a => (a.Resource, a.Config, a.Value, a.Operation))];
}
