using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Switchback.Protocol.Messages;
using Xunit;
using ApiKey = Switchback.Protocol.ApiKey;
using WireError = Switchback.Protocol.ErrorCode;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>A <see cref="MultiGroupRig"/> whose <c>orders</c> family is open to <c>User:alice</c> only.</summary>
public sealed class OrdersForAliceRig : IAsyncLifetime
{
    public MultiGroupRig Rig { get; } = new() { Overrides = new Dictionary<string, string?> { ["Switchback:Families:0:AllowedPrincipals:0"] = "User:alice" } };

    public Task InitializeAsync() => Rig.InitializeAsync();

    public Task DisposeAsync() => Rig.DisposeAsync();
}

/// <summary>
/// Config changes, group listings and group offset deletions under an allow list, made with Confluent.Kafka's
/// AdminClient, which connects anonymously: <c>orders</c> (source) is open to alice only, <c>payments</c> (target)
/// to everyone. librdkafka's mock has none of IncrementalAlterConfigs, AlterConfigs, ListGroups and OffsetDelete (so
/// without a stand-in the proxy would not even offer them); the <see cref="GroupApisFront"/> before each mock is a
/// test-only stand-in that answers them and records what each broker got.
/// </summary>
public sealed class AllowListAdminRequestTests(OrdersForAliceRig fixture) : IClassFixture<OrdersForAliceRig>
{
    private static readonly TimeSpan AdminTimeout = TimeSpan.FromSeconds(20);
    private readonly MultiGroupRig _rig = fixture.Rig;

    [Fact]
    public async Task AlterConfigs_DeniedFamilysTopicAnswersTopicAuthorizationFailed_NeverReachesItsCluster_TheOtherIsAltered()
    {
        // The front answers IncrementalAlterConfigs and AlterConfigs as a test-only stand-in: the mock lacks them.
        var orders = _rig.NewTopic("orders");
        var payments = _rig.NewTopic("payments");
        using var admin = _rig.AdminClient();

        var incremental = await Assert.ThrowsAsync<IncrementalAlterConfigsException>(() => admin.IncrementalAlterConfigsAsync(
            new Dictionary<ConfigResource, List<ConfigEntry>>
            {
                [Topic(orders)] = [new ConfigEntry { Name = "retention.ms", Value = "3600000", IncrementalOperation = AlterConfigOpType.Set }],
                [Topic(payments)] = [new ConfigEntry { Name = "retention.ms", Value = "7200000", IncrementalOperation = AlterConfigOpType.Set }],
            }, new IncrementalAlterConfigsOptions { RequestTimeout = AdminTimeout }));
        Assert.Equal(ErrorCode.TopicAuthorizationFailed, incremental.Results.Single(r => r.ConfigResource.Name == orders).Error.Code);
        Assert.Equal(ErrorCode.NoError, incremental.Results.Single(r => r.ConfigResource.Name == payments).Error.Code);
        Assert.Equal([(payments, "retention.ms", "7200000", (sbyte)0)], ConfigAlterRequestTests.Altered(_rig.TargetFront, ApiKey.IncrementalAlterConfigs, orders, payments));

#pragma warning disable CS0618 // AlterConfigsAsync is deprecated in favour of IncrementalAlterConfigsAsync; what it sends is under test.
        var whole = await Assert.ThrowsAsync<AlterConfigsException>(() => admin.AlterConfigsAsync(
            new Dictionary<ConfigResource, List<ConfigEntry>>
            {
                [Topic(orders)] = [new ConfigEntry { Name = "retention.ms", Value = "3600000" }],
                [Topic(payments)] = [new ConfigEntry { Name = "retention.ms", Value = "7200000" }],
            }, new AlterConfigsOptions { RequestTimeout = AdminTimeout }));
#pragma warning restore CS0618
        Assert.Equal(ErrorCode.TopicAuthorizationFailed, whole.Results.Single(r => r.ConfigResource.Name == orders).Error.Code);
        Assert.Equal(ErrorCode.NoError, whole.Results.Single(r => r.ConfigResource.Name == payments).Error.Code);
        Assert.Equal([(payments, "retention.ms", "7200000", (sbyte)-1)], ConfigAlterRequestTests.Altered(_rig.TargetFront, ApiKey.AlterConfigs, orders, payments));

        // Nothing of the orders family reached its cluster.
        Assert.DoesNotContain(_rig.SourceFront.TopicAdmin, r => r.Name == orders);
    }

    [Fact]
    public async Task ConfigChanges_ForBrokersAndTheDeniedFamilysGroups_AreRefused_ToAPrincipalSomeListExcludes()
    {
        // Broker and cluster configs belong to no one family, so only a principal every allow list admits may change
        // them (CLUSTER_AUTHORIZATION_FAILED otherwise, as a broker's authorizer answers); a group's config follows
        // its family. The front answers IncrementalAlterConfigs as a test-only stand-in: the mock lacks it.
        using var admin = _rig.AdminClient();
        var broker = admin.GetMetadata(AdminTimeout).Brokers.Select(b => b.BrokerId).Order().First();
        var payments = _rig.NewTopic("payments");
        const string Config = "log.cleaner.backoff.ms"; // no other test here alters it
        IncrementalAlterConfigsRequest.AlterConfigsResource Resource(sbyte type, string name) => new()
        {
            ResourceType = type,
            ResourceName = name,
            Configs = [new IncrementalAlterConfigsRequest.AlterableConfig { Name = Config, Value = "1000", ConfigOperation = 0 }],
        };
        var ordersGroup = ProxyFixture.NewGroup("orders");

        var response = await _rig.ExchangeAsync<IncrementalAlterConfigsResponse>(ApiKey.IncrementalAlterConfigs, 1, new IncrementalAlterConfigsRequest
        {
            Resources = [Resource(4, broker.ToString(System.Globalization.CultureInfo.InvariantCulture)), Resource(32, ordersGroup), Resource(2, payments)],
        });

        var errors = response.Responses.ToDictionary(r => r.ResourceName, r => (WireError)r.ErrorCode);
        Assert.Equal(WireError.ClusterAuthorizationFailed, errors[broker.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.Equal(WireError.GroupAuthorizationFailed, errors[ordersGroup]);
        Assert.Equal(WireError.None, errors[payments]);
        // Only the payments topic's change reached a cluster.
        Assert.Equal([payments], _rig.SourceFront.ConfigAlterations.Concat(_rig.TargetFront.ConfigAlterations).Where(a => a.Config == Config).Select(a => a.Resource));
    }

    [Fact]
    public async Task ListGroups_LeavesOutTheDeniedFamilysGroup_ListsTheOthers()
    {
        // The front answers ListGroups as a test-only stand-in: the mock lacks the API. The orders group is joined on
        // source itself (its front), as this anonymous proxy client may not use it.
        var orders = _rig.NewTopic("orders");
        var payments = _rig.NewTopic("payments");
        var ordersGroup = ProxyFixture.NewGroup("orders");
        var paymentsGroup = ProxyFixture.NewGroup("payments");
        using var ordersMember = _rig.JoinedConsumer(ordersGroup, orders, _rig.SourceFront);
        using var paymentsMember = _rig.JoinedConsumer(paymentsGroup, payments);
        using var admin = _rig.AdminClient();
        using var sourceAdmin = MultiGroupRig.ClusterAdminClient(_rig.SourceFront);

        var listed = await admin.ListConsumerGroupsAsync(new ListConsumerGroupsOptions { RequestTimeout = AdminTimeout });
        var onSource = await sourceAdmin.ListConsumerGroupsAsync(new ListConsumerGroupsOptions { RequestTimeout = AdminTimeout });

        Assert.Contains(listed.Valid, g => g.GroupId == paymentsGroup && g.IsSimpleConsumerGroup == false);
        Assert.DoesNotContain(listed.Valid, g => g.GroupId == ordersGroup);
        // Source lists the orders group to whoever asks it directly: the proxy is what left it out.
        Assert.Contains(onSource.Valid, g => g.GroupId == ordersGroup);
        ordersMember.Close();
        paymentsMember.Close();
    }

    [Fact]
    public async Task OffsetDelete_DeniedFamilysGroupAnswersGroupAuthorizationFailed_NeverReachesItsCluster_TheOtherIsServed()
    {
        // The front answers OffsetDelete as a test-only stand-in (the mock lacks the API) for groups it has seen. The
        // orders group is joined on source itself (its front), as this anonymous proxy client may not use it.
        var orders = _rig.NewTopic("orders");
        var payments = _rig.NewTopic("payments");
        var ordersGroup = ProxyFixture.NewGroup("orders");
        var paymentsGroup = ProxyFixture.NewGroup("payments");
        using (var ordersMember = _rig.JoinedConsumer(ordersGroup, orders, _rig.SourceFront))
        using (var paymentsMember = _rig.JoinedConsumer(paymentsGroup, payments))
        {
            // Offsets are deleted from groups no longer subscribed to the topic.
            ordersMember.Close();
            paymentsMember.Close();
        }
        using var admin = _rig.AdminClient();

        var denied = await Assert.ThrowsAnyAsync<KafkaException>(() => admin.DeleteConsumerGroupOffsetsAsync(ordersGroup,
            [new TopicPartition(orders, 0)], new DeleteConsumerGroupOffsetsOptions { RequestTimeout = AdminTimeout }));
        Assert.Equal(ErrorCode.GroupAuthorizationFailed, denied.Error.Code);
        // At the wire level too: librdkafka looks the coordinator up first, which already refuses the orders group.
        var deniedOnTheWire = await _rig.ExchangeAsync<OffsetDeleteResponse>(ApiKey.OffsetDelete, 0, new OffsetDeleteRequest
        {
            GroupId = ordersGroup,
            Topics = [new OffsetDeleteRequest.OffsetDeleteRequestTopic { Name = orders, Partitions = [new() { PartitionIndex = 0 }] }],
        });
        Assert.Equal((short)WireError.GroupAuthorizationFailed, deniedOnTheWire.ErrorCode);

        var served = await admin.DeleteConsumerGroupOffsetsAsync(paymentsGroup,
            [new TopicPartition(payments, 0), new TopicPartition(payments, 1)], new DeleteConsumerGroupOffsetsOptions { RequestTimeout = AdminTimeout });

        Assert.Equal(paymentsGroup, served.Group);
        Assert.Equal([0, 1], served.Partitions.Where(p => p.Topic == payments).Select(p => p.Partition.Value).Order());
        Assert.Equal([(payments, 0, WireError.None), (payments, 1, WireError.None)],
            _rig.TargetFront.OffsetDeletes.Where(r => r.Group == paymentsGroup).Select(r => (r.Topic, r.Partition, r.Error)).Order());
        Assert.DoesNotContain(_rig.SourceFront.OffsetDeletes, r => r.Group == ordersGroup || r.Group == paymentsGroup);
    }

    private static ConfigResource Topic(string name) => new() { Type = ResourceType.Topic, Name = name };
}
