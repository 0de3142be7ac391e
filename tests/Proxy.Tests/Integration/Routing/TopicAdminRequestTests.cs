using System.Globalization;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Switchback.Protocol.Messages;
using Xunit;
using ApiKey = Switchback.Protocol.ApiKey;
using WireError = Switchback.Protocol.ErrorCode;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>
/// Topic-admin calls (CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, DeleteRecords) naming topics of
/// both demo families, <c>orders</c> on source and <c>payments</c> on target, made with Confluent.Kafka's AdminClient:
/// every entry is served by its own family's cluster (DeleteRecords by each partition's leader) and answered in one
/// result. The clusters are librdkafka mocks, which have none of these APIs; the <see cref="GroupApisFront"/> before
/// each of them is a test-only stand-in that answers them from what its mock knows and records what each broker got.
/// </summary>
public sealed class TopicAdminRequestTests(MultiGroupRig rig) : IClassFixture<MultiGroupRig>
{
    private static readonly TimeSpan AdminTimeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task CreateTopics_OrdersAndPaymentsInOneCall_EachCreatedOnItsFamilysWriteClusterOnly()
    {
        // The front answers CreateTopics as a test-only stand-in: the mock lacks the API.
        var orders = NewName("orders");
        var payments = NewName("payments");
        using var admin = rig.AdminClient();

        await admin.CreateTopicsAsync(
            [new TopicSpecification { Name = payments, NumPartitions = 2, ReplicationFactor = 1 }, new TopicSpecification { Name = orders, NumPartitions = 2, ReplicationFactor = 1 }],
            new CreateTopicsOptions { RequestTimeout = AdminTimeout });

        Assert.Equal([(ApiKey.CreateTopics, orders, WireError.None)], Received(rig.SourceFront, ApiKey.CreateTopics, orders, payments));
        Assert.Equal([(ApiKey.CreateTopics, payments, WireError.None)], Received(rig.TargetFront, ApiKey.CreateTopics, orders, payments));
        Assert.True(Exists(rig.SourceFront, orders));
        Assert.False(Exists(rig.SourceFront, payments));
        Assert.True(Exists(rig.TargetFront, payments));
        Assert.False(Exists(rig.TargetFront, orders));
    }

    [Fact]
    public async Task CreateTopicsV7_RelayedAndSplit_AnswerWithTheProxysTopicIds()
    {
        // Sent at the wire level: librdkafka does not read topic ids from CreateTopics. The front answers
        // CreateTopics as a test-only stand-in (the mock lacks the API), with an id of the cluster's own.
        var alone = NewName("orders");
        var orders = NewName("orders");
        var payments = NewName("payments");
        CreateTopicsRequest.CreatableTopic Topic(string name) => new() { Name = name, NumPartitions = 1, ReplicationFactor = 1 };

        var relayed = await rig.ExchangeAsync<CreateTopicsResponse>(ApiKey.CreateTopics, 7, new CreateTopicsRequest { Topics = [Topic(alone)] });
        var split = await rig.ExchangeAsync<CreateTopicsResponse>(ApiKey.CreateTopics, 7, new CreateTopicsRequest { Topics = [Topic(payments), Topic(orders)] });

        var ids = await ProxyTopicIdsAsync(alone, orders, payments);
        Assert.Equal([(alone, ids[alone])], relayed.Topics.Select(t => (t.Name, t.TopicId)));
        Assert.Equal([(payments, ids[payments]), (orders, ids[orders])], split.Topics.Select(t => (t.Name, t.TopicId)));
        Assert.All(relayed.Topics.Concat(split.Topics), t => Assert.Equal(0, t.ErrorCode));
    }

    [Fact]
    public async Task DeleteTopics_OrdersAndPaymentsInOneCall_EachDeletedOnItsFamilysWriteClusterOnly()
    {
        // The front answers DeleteTopics as a test-only stand-in: the mock lacks the API (and cannot delete a topic).
        var orders = rig.NewTopic("orders");
        var payments = rig.NewTopic("payments");
        using var admin = rig.AdminClient();

        await admin.DeleteTopicsAsync([orders, payments], new DeleteTopicsOptions { RequestTimeout = AdminTimeout });

        Assert.Equal([(ApiKey.DeleteTopics, orders, WireError.None)], Received(rig.SourceFront, ApiKey.DeleteTopics, orders, payments));
        Assert.Equal([(ApiKey.DeleteTopics, payments, WireError.None)], Received(rig.TargetFront, ApiKey.DeleteTopics, orders, payments));
    }

    [Fact]
    public async Task DeleteTopicsV6_ByTopicId_IdsResolvedToEachFamilysCluster_UnknownIdAnswersUnknownTopicId()
    {
        // Sent at the wire level: librdkafka deletes topics by name only. The front answers DeleteTopics as a
        // test-only stand-in, the mock lacking the API.
        var orders = rig.NewTopic("orders");
        var payments = rig.NewTopic("payments");
        var ids = await ProxyTopicIdsAsync(orders, payments);
        var ordersId = ids[orders];
        var paymentsId = ids[payments];
        var unknownId = Guid.NewGuid();

        var response = await rig.ExchangeAsync<DeleteTopicsResponse>(ApiKey.DeleteTopics, 6, new DeleteTopicsRequest
        {
            Topics = [.. new[] { paymentsId, unknownId, ordersId }.Select(id => new DeleteTopicsRequest.DeleteTopicState { TopicId = id })],
            TimeoutMs = 5_000,
        });

        Assert.Equal([paymentsId, unknownId, ordersId], response.Responses.Select(r => r.TopicId));
        Assert.Equal([payments, null, orders], response.Responses.Select(r => r.Name));
        Assert.Equal([0, (short)WireError.UnknownTopicId, 0], response.Responses.Select(r => r.ErrorCode));
        Assert.Equal([(ApiKey.DeleteTopics, orders, WireError.None)], Received(rig.SourceFront, ApiKey.DeleteTopics, orders, payments));
        Assert.Equal([(ApiKey.DeleteTopics, payments, WireError.None)], Received(rig.TargetFront, ApiKey.DeleteTopics, orders, payments));
    }

    [Fact]
    public async Task CreatePartitions_OrdersAndPaymentsInOneCall_EachGrownOnItsFamilysWriteClusterOnly()
    {
        // The front answers CreatePartitions as a test-only stand-in: the mock lacks the API.
        var orders = rig.NewTopic("orders");
        var payments = rig.NewTopic("payments");
        using var admin = rig.AdminClient();

        await admin.CreatePartitionsAsync(
            [new PartitionsSpecification { Topic = orders, IncreaseTo = 5 }, new PartitionsSpecification { Topic = payments, IncreaseTo = 4 }],
            new CreatePartitionsOptions { RequestTimeout = AdminTimeout });

        Assert.Equal([(ApiKey.CreatePartitions, orders, WireError.None)], Received(rig.SourceFront, ApiKey.CreatePartitions, orders, payments));
        Assert.Equal([(ApiKey.CreatePartitions, payments, WireError.None)], Received(rig.TargetFront, ApiKey.CreatePartitions, orders, payments));
    }

    [Fact]
    public async Task DescribeConfigs_TopicsOfBothFamilies_EachDescribedByItsFamilysReadCluster()
    {
        // The front answers DescribeConfigs as a test-only stand-in: the mock lacks the API. Each topic exists on
        // its own family's cluster only.
        var orders = NewName("orders");
        var payments = NewName("payments");
        rig.Source.CreateTopic(orders, ProxyFixture.Partitions);
        rig.Target.CreateTopic(payments, ProxyFixture.Partitions);
        using var admin = rig.AdminClient();

        var results = await admin.DescribeConfigsAsync(
            [new ConfigResource { Type = ResourceType.Topic, Name = orders }, new ConfigResource { Type = ResourceType.Topic, Name = payments }],
            new DescribeConfigsOptions { RequestTimeout = AdminTimeout });

        Assert.Equal([orders, payments], results.Select(r => r.ConfigResource.Name));
        Assert.All(results, r => Assert.Equal("delete", r.Entries["cleanup.policy"].Value));
        Assert.Equal([(ApiKey.DescribeConfigs, orders, WireError.None)], Received(rig.SourceFront, ApiKey.DescribeConfigs, orders, payments));
        Assert.Equal([(ApiKey.DescribeConfigs, payments, WireError.None)], Received(rig.TargetFront, ApiKey.DescribeConfigs, orders, payments));
    }

    [Fact]
    public async Task DescribeConfigs_BrokerResource_GoesToTheUpstreamBrokerBehindTheVirtualId_AnUnknownIdAnswersInvalidRequest()
    {
        // The front answers DescribeConfigs as a test-only stand-in (the mock lacks the API), and like a broker
        // describes only its own broker resource.
        using var admin = rig.AdminClient();
        var brokers = admin.GetMetadata(AdminTimeout).Brokers.Select(b => b.BrokerId).ToList();
        var targetBroker = brokers.Where(id => id / 100_000 == 2).Order().Last();
        var targetUpstream = targetBroker % 100_000;
        var sourceBroker = brokers.Where(id => id / 100_000 == 1).Order().First();
        var sourceUpstream = sourceBroker % 100_000;

        // librdkafka sends a broker resource to the broker it names (one per call).
        var results = await admin.DescribeConfigsAsync(
            [new ConfigResource { Type = ResourceType.Broker, Name = targetBroker.ToString(CultureInfo.InvariantCulture) }],
            new DescribeConfigsOptions { RequestTimeout = AdminTimeout });

        var described = Assert.Single(results);
        Assert.Equal(targetBroker.ToString(CultureInfo.InvariantCulture), described.ConfigResource.Name);
        Assert.Equal(targetUpstream.ToString(CultureInfo.InvariantCulture), described.Entries["broker.id"].Value);
        var upstreamName = targetUpstream.ToString(CultureInfo.InvariantCulture);
        Assert.Contains(new TopicAdminReceipt(ApiKey.DescribeConfigs, upstreamName, -1, targetUpstream, WireError.None), rig.TargetFront.TopicAdmin);

        // Several resources in one request, at the wire level (librdkafka allows one broker resource per call): a
        // topic, a source broker, and names that are no broker of either cluster.
        var orders = rig.NewTopic("orders");
        var response = await rig.ExchangeAsync<DescribeConfigsResponse>(ApiKey.DescribeConfigs, 4, new DescribeConfigsRequest
        {
            Resources =
            [
                new DescribeConfigsRequest.DescribeConfigsResource { ResourceType = 2, ResourceName = orders, ConfigurationKeys = null },
                new DescribeConfigsRequest.DescribeConfigsResource { ResourceType = 4, ResourceName = sourceBroker.ToString(CultureInfo.InvariantCulture), ConfigurationKeys = null },
                new DescribeConfigsRequest.DescribeConfigsResource { ResourceType = 4, ResourceName = "7" },
                new DescribeConfigsRequest.DescribeConfigsResource { ResourceType = 4, ResourceName = "100099" },
            ],
        });

        Assert.Equal([orders, sourceBroker.ToString(CultureInfo.InvariantCulture), "7", "100099"], response.Results.Select(r => r.ResourceName));
        Assert.Equal([0, 0, (short)WireError.InvalidRequest, (short)WireError.InvalidRequest], response.Results.Select(r => r.ErrorCode));
        Assert.Equal(sourceUpstream.ToString(CultureInfo.InvariantCulture), response.Results[1].Configs.Single(c => c.Name == "broker.id").Value);
        Assert.DoesNotContain(rig.SourceFront.TopicAdmin.Concat(rig.TargetFront.TopicAdmin), r => r.Name is "7" or "100099");
    }

    [Fact]
    public async Task DeleteRecords_PartitionsLedByDifferentBrokersOfBothClusters_EachDeletedByItsLeader()
    {
        // The front answers DeleteRecords as a test-only stand-in (the mock lacks the API), and like a broker only
        // for partitions it leads: NOT_LEADER_OR_FOLLOWER elsewhere.
        var orders = rig.NewTopic("orders");
        var payments = rig.NewTopic("payments");
        await ProduceToEveryPartitionAsync(orders, 3);
        await ProduceToEveryPartitionAsync(payments, 3);
        var leaders = new Dictionary<(string, int), (GroupApisFront Front, int Leader)>();
        foreach (var (topic, front) in new[] { (orders, rig.SourceFront), (payments, rig.TargetFront) })
        {
            using var clusterAdmin = MultiGroupRig.ClusterAdminClient(front);
            foreach (var partition in clusterAdmin.GetMetadata(topic, AdminTimeout).Topics.Single().Partitions)
            {
                leaders[(topic, partition.PartitionId)] = (front, partition.Leader);
            }
        }
        Assert.True(leaders.Values.Where(l => l.Front == rig.SourceFront).Select(l => l.Leader).Distinct().Count() > 1, "orders' partitions should have several leaders");
        Assert.True(leaders.Values.Where(l => l.Front == rig.TargetFront).Select(l => l.Leader).Distinct().Count() > 1, "payments' partitions should have several leaders");
        using var admin = rig.AdminClient();

        var results = await admin.DeleteRecordsAsync(
            [.. leaders.Keys.Select(k => new TopicPartitionOffset(k.Item1, k.Item2, 2))],
            new DeleteRecordsOptions { RequestTimeout = AdminTimeout });

        Assert.Equal(leaders.Count, results.Count);
        Assert.All(results, r => Assert.Equal(2, r.Offset.Value));
        foreach (var ((topic, partition), (front, leader)) in leaders)
        {
            var other = front == rig.SourceFront ? rig.TargetFront : rig.SourceFront;
            Assert.Equal([(leader, WireError.None)], front.TopicAdmin
                .Where(r => r.ApiKey == ApiKey.DeleteRecords && r.Name == topic && r.Partition == partition).Select(r => (r.Broker, r.Error)));
            Assert.DoesNotContain(other.TopicAdmin, r => r.Name == topic);
        }
    }

    [Fact]
    public async Task DeleteRecordsV2_OneRequestAcrossLeadersOfBothClusters_SplitPerLeader_AnsweredInRequestOrder()
    {
        // Sent at the wire level: AdminClients send DeleteRecords to each leader themselves, so only a request to
        // the wrong broker names partitions of several leaders. The front answers DeleteRecords as a test-only
        // stand-in (the mock lacks the API), and only for partitions its broker leads.
        var orders = rig.NewTopic("orders");
        var payments = rig.NewTopic("payments");
        await ProduceToEveryPartitionAsync(orders, 2);
        await ProduceToEveryPartitionAsync(payments, 2);
        DeleteRecordsRequest.DeleteRecordsTopic Topic(string name, params int[] partitions) => new()
        {
            Name = name,
            Partitions = [.. partitions.Select(p => new DeleteRecordsRequest.DeleteRecordsPartition { PartitionIndex = p, Offset = 1 })],
        };

        var response = await rig.ExchangeAsync<DeleteRecordsResponse>(ApiKey.DeleteRecords, 2, new DeleteRecordsRequest
        {
            Topics = [Topic(payments, 2, 0), Topic(orders, 1, 9, 0, 2), Topic(payments, 1)],
            TimeoutMs = 5_000,
        });

        Assert.Equal([payments, orders, payments], response.Topics.Select(t => t.Name));
        Assert.Equal([[2, 0], [1, 9, 0, 2], [1]], response.Topics.Select(t => t.Partitions.Select(p => p.PartitionIndex).ToArray()));
        Assert.Equal([[0, 0], [0, (short)WireError.UnknownTopicOrPartition, 0, 0], [0]],
            response.Topics.Select(t => t.Partitions.Select(p => p.ErrorCode).ToArray()));
        Assert.All(response.Topics.SelectMany(t => t.Partitions).Where(p => p.ErrorCode == 0), p => Assert.Equal(1, p.LowWatermark));
        Assert.DoesNotContain(rig.SourceFront.TopicAdmin.Concat(rig.TargetFront.TopicAdmin),
            r => (r.Name == orders || r.Name == payments) && r.Error != WireError.None);
        Assert.Equal(3, rig.SourceFront.TopicAdmin.Count(r => r.ApiKey == ApiKey.DeleteRecords && r.Name == orders));
        Assert.Equal(3, rig.TargetFront.TopicAdmin.Count(r => r.ApiKey == ApiKey.DeleteRecords && r.Name == payments));
    }

    [Fact]
    public async Task CreateTopicsAndDescribeConfigs_OneClusterUnreachable_ItsEntriesFailOnTheirOwn_TheOthersAreServed()
    {
        // The front answers these APIs as a test-only stand-in (the mock lacks them). A rig of its own: its target
        // goes away for good.
        var own = new MultiGroupRig();
        await own.InitializeAsync();
        try
        {
            var described = own.NewTopic("orders");
            var describedPayments = own.NewTopic("payments");
            var orders = NewName("orders");
            var payments = NewName("payments");
            using var admin = own.AdminClient();
            own.TargetFront.Stop();

            var created = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync(
                [new TopicSpecification { Name = payments, NumPartitions = 1, ReplicationFactor = 1 }, new TopicSpecification { Name = orders, NumPartitions = 1, ReplicationFactor = 1 }],
                new CreateTopicsOptions { RequestTimeout = AdminTimeout }));
            Assert.Equal(Confluent.Kafka.ErrorCode.NetworkException, created.Results.Single(r => r.Topic == payments).Error.Code);
            Assert.Equal(Confluent.Kafka.ErrorCode.NoError, created.Results.Single(r => r.Topic == orders).Error.Code);
            Assert.Equal([(ApiKey.CreateTopics, orders, WireError.None)], Received(own.SourceFront, ApiKey.CreateTopics, orders, payments));

            var configs = await Assert.ThrowsAsync<DescribeConfigsException>(() => admin.DescribeConfigsAsync(
                [new ConfigResource { Type = ResourceType.Topic, Name = describedPayments }, new ConfigResource { Type = ResourceType.Topic, Name = described }],
                new DescribeConfigsOptions { RequestTimeout = AdminTimeout }));
            Assert.Equal(Confluent.Kafka.ErrorCode.NetworkException, configs.Results.Single(r => r.ConfigResource.Name == describedPayments).Error.Code);
            var served = configs.Results.Single(r => r.ConfigResource.Name == described);
            Assert.Equal(Confluent.Kafka.ErrorCode.NoError, served.Error.Code);
            Assert.Equal("delete", served.Entries["cleanup.policy"].Value);
        }
        finally
        {
            await own.DisposeAsync();
        }
    }

    [Fact]
    public async Task WithAnAllowList_DeniedFamilysTopicsAnswerTopicAuthorizationFailed_NeverReachTheCluster_TheOthersAreServed()
    {
        // A rig of its own: orders is open to alice only, and this AdminClient is anonymous. The fronts answer the
        // topic-admin APIs as test-only stand-ins (the mock lacks them).
        var own = new MultiGroupRig { Overrides = new Dictionary<string, string?> { ["Switchback:Families:0:AllowedPrincipals:0"] = "User:alice" } };
        await own.InitializeAsync();
        try
        {
            using var admin = own.AdminClient();
            var newOrders = NewName("orders");
            var newPayments = NewName("payments");
            var created = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync(
                [new TopicSpecification { Name = newOrders, NumPartitions = 1, ReplicationFactor = 1 }, new TopicSpecification { Name = newPayments, NumPartitions = 1, ReplicationFactor = 1 }],
                new CreateTopicsOptions { RequestTimeout = AdminTimeout }));
            Assert.Equal(ErrorCode.TopicAuthorizationFailed, created.Results.Single(r => r.Topic == newOrders).Error.Code);
            Assert.Equal(ErrorCode.NoError, created.Results.Single(r => r.Topic == newPayments).Error.Code);
            Assert.True(Exists(own.TargetFront, newPayments));

            var orders = own.NewTopic("orders");
            var payments = own.NewTopic("payments");
            var described = await Assert.ThrowsAsync<DescribeConfigsException>(() => admin.DescribeConfigsAsync(
                [new ConfigResource { Type = ResourceType.Topic, Name = orders }, new ConfigResource { Type = ResourceType.Topic, Name = payments }],
                new DescribeConfigsOptions { RequestTimeout = AdminTimeout }));
            Assert.Equal(ErrorCode.TopicAuthorizationFailed, described.Results.Single(r => r.ConfigResource.Name == orders).Error.Code);
            Assert.Equal(ErrorCode.NoError, described.Results.Single(r => r.ConfigResource.Name == payments).Error.Code);

            var grown = await Assert.ThrowsAsync<CreatePartitionsException>(() => admin.CreatePartitionsAsync(
                [new PartitionsSpecification { Topic = orders, IncreaseTo = 6 }, new PartitionsSpecification { Topic = payments, IncreaseTo = 6 }],
                new CreatePartitionsOptions { RequestTimeout = AdminTimeout }));
            Assert.Equal(ErrorCode.TopicAuthorizationFailed, grown.Results.Single(r => r.Topic == orders).Error.Code);

            // DeleteRecords at the wire level: librdkafka looks up leaders in Metadata first, which already refuses orders.
            // A topic created a moment ago may still be unknown to the proxy's view (UNKNOWN_TOPIC_OR_PARTITION, which
            // clients retry): asked again as a client would.
            DeleteRecordsResponse records;
            var retryUntil = DateTime.UtcNow + TimeSpan.FromSeconds(15);
            while (true)
            {
                records = await own.ExchangeAsync<DeleteRecordsResponse>(ApiKey.DeleteRecords, 1, new DeleteRecordsRequest
                {
                    TimeoutMs = 5000,
                    Topics = [.. new[] { orders, payments }.Select(t => new DeleteRecordsRequest.DeleteRecordsTopic { Name = t, Partitions = [new() { PartitionIndex = 0, Offset = 0 }] })],
                });
                if (DateTime.UtcNow > retryUntil || !records.Topics.Any(t => t.Partitions.Any(p => p.ErrorCode == (short)WireError.UnknownTopicOrPartition)))
                {
                    break;
                }
                await Task.Delay(200);
            }
            var recordErrors = records.Topics.ToDictionary(t => t.Name, t => (WireError)t.Partitions.Single().ErrorCode);
            Assert.Equal(WireError.TopicAuthorizationFailed, recordErrors[orders]);
            Assert.Equal(WireError.None, recordErrors[payments]);

            var deleted = await Assert.ThrowsAsync<DeleteTopicsException>(() => admin.DeleteTopicsAsync([orders, payments], new DeleteTopicsOptions { RequestTimeout = AdminTimeout }));
            Assert.Equal(ErrorCode.TopicAuthorizationFailed, deleted.Results.Single(r => r.Topic == orders).Error.Code);
            Assert.Equal(ErrorCode.NoError, deleted.Results.Single(r => r.Topic == payments).Error.Code);

            // Nothing of the orders family reached its cluster.
            Assert.DoesNotContain(own.SourceFront.TopicAdmin, r => r.Name == newOrders || r.Name == orders);
            Assert.Contains(own.TargetFront.TopicAdmin, r => r.Name == payments);
        }
        finally
        {
            await own.DisposeAsync();
        }
    }

    private static string NewName(string family) => $"{family}.{Guid.NewGuid():N}";

    /// <summary>The entries naming any of <paramref name="names"/> that a front's brokers received for one API.</summary>
    private static (ApiKey, string, WireError)[] Received(GroupApisFront front, ApiKey apiKey, params string[] names) =>
        [.. front.TopicAdmin.Where(r => r.ApiKey == apiKey && names.Contains(r.Name)).Select(r => (r.ApiKey, r.Name, r.Error))];

    /// <summary>Whether a cluster holds a topic, asked of the cluster itself (through its front, not the proxy).</summary>
    private static bool Exists(GroupApisFront front, string topic)
    {
        using var admin = MultiGroupRig.ClusterAdminClient(front);
        return admin.GetMetadata(AdminTimeout).Topics.Any(t => t.Topic == topic);
    }

    /// <summary>The topic ids the proxy shows for topics (its Metadata, asked again until it knows them all).</summary>
    private async Task<Dictionary<string, Guid>> ProxyTopicIdsAsync(params string[] topics)
    {
        var deadline = DateTime.UtcNow + AdminTimeout;
        while (true)
        {
            var metadata = await rig.ExchangeAsync<MetadataResponse>(ApiKey.Metadata, 12, new MetadataRequest
            {
                Topics = [.. topics.Select(t => new MetadataRequest.MetadataRequestTopic { Name = t })],
                AllowAutoTopicCreation = false,
            });
            if (metadata.Topics.All(t => t.ErrorCode == 0 && t.TopicId != Guid.Empty))
            {
                return metadata.Topics.ToDictionary(t => t.Name!, t => t.TopicId);
            }
            Assert.True(DateTime.UtcNow < deadline, $"The proxy did not learn of {string.Join(", ", topics)} in {AdminTimeout.TotalSeconds} s.");
            await Task.Delay(200);
        }
    }

    private async Task ProduceToEveryPartitionAsync(string topic, int perPartition)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = rig.Proxy.BootstrapServers, Acks = Acks.All }).Build();
        for (var partition = 0; partition < ProxyFixture.Partitions; partition++)
        {
            for (var i = 0; i < perPartition; i++)
            {
                await producer.ProduceAsync(new TopicPartition(topic, partition), new Message<string, string> { Key = $"k{i}", Value = $"v{i}" });
            }
        }
    }
}
