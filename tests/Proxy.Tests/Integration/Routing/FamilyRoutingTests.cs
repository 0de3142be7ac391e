using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Xunit;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>Confluent.Kafka clients through the proxy: records and group state go where each family's route says.</summary>
[Collection(ProxyCollection.Name)]
public sealed class FamilyRoutingTests(ProxyFixture fixture)
{
    private const int Count = 60;

    [Fact]
    public Task ClassicConsumerGroups_TwoFamiliesOnDifferentClusters_RecordsLandOnRouteClusterExactlyOnce_AndGroupsCommitThere() =>
        ProduceConsumeAcrossFamiliesAsync(GroupProtocol.Classic, idempotent: false);

    [Fact]
    public Task Kip848ConsumerGroups_TwoFamiliesOnDifferentClusters_RecordsLandOnRouteClusterExactlyOnce_AndGroupsCommitThere() =>
        ProduceConsumeAcrossFamiliesAsync(GroupProtocol.Consumer, idempotent: false);

    [Fact]
    public Task IdempotentProducer_TwoFamiliesOnDifferentClusters_RecordsLandOnRouteClusterExactlyOnce() =>
        ProduceConsumeAcrossFamiliesAsync(GroupProtocol.Classic, idempotent: true);

    private async Task ProduceConsumeAcrossFamiliesAsync(GroupProtocol groupProtocol, bool idempotent)
    {
        var orders = fixture.NewTopic("orders");
        var payments = fixture.NewTopic("payments");

        var producerConfig = fixture.ProducerConfig();
        producerConfig.EnableIdempotence = idempotent;
        List<string> ordersValues, paymentsValues;
        using (var producer = new ProducerBuilder<string, string>(producerConfig).Build())
        {
            ordersValues = await fixture.ProduceAsync(producer, orders, Count, "order");
            paymentsValues = await fixture.ProduceAsync(producer, payments, Count, "payment");
        }

        // Where the records physically are: read each cluster directly, not through the proxy.
        AssertExactly(ordersValues, ProxyFixture.ReadDirectly(fixture.Source, orders));
        Assert.Empty(ProxyFixture.ReadDirectly(fixture.Target, orders));
        AssertExactly(paymentsValues, ProxyFixture.ReadDirectly(fixture.Target, payments));
        Assert.Empty(ProxyFixture.ReadDirectly(fixture.Source, payments));

        foreach (var (topic, values, readCluster, otherCluster) in new[]
        {
            (orders, ordersValues, fixture.Source, fixture.Target),
            (payments, paymentsValues, fixture.Target, fixture.Source),
        })
        {
            var family = topic[..topic.IndexOf('.', StringComparison.Ordinal)];
            var group = ProxyFixture.NewGroup(family);
            var config = fixture.ConsumerConfig(group);
            config.GroupProtocol = groupProtocol;
            if (groupProtocol == GroupProtocol.Consumer)
            {
                // The session timeout belongs to the broker under KIP-848.
                config.SessionTimeoutMs = null;
            }
            var (records, committed) = ProxyFixture.ConsumeAndCommit(config, [topic], values.Count, TimeSpan.FromSeconds(40));
            AssertExactly(values, records);

            // Committed offsets, read back through the proxy, cover every record.
            Assert.Equal(values.Count, committed.Sum(c => Math.Max(0, c.Offset.Value)));
            // ... and live in the family's read cluster, not the other one.
            Assert.Equal(values.Count, CommittedDirectly(readCluster, group, topic).Sum(c => Math.Max(0, c.Offset.Value)));
            Assert.All(CommittedDirectly(otherCluster, group, topic), c => Assert.True(c.Offset.Value < 0, $"offset {c} committed on the wrong cluster"));
        }
    }

    private static void AssertExactly(List<string> expected, List<ConsumeResult<string, string>> records) =>
        Assert.Equal(expected.Order(StringComparer.Ordinal), records.Select(r => r.Message.Value).Order(StringComparer.Ordinal));

    private static List<TopicPartitionOffset> CommittedDirectly(MockKafkaCluster cluster, string group, string topic)
    {
        var config = new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = group, EnableAutoCommit = false };
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        var partitions = Enumerable.Range(0, ProxyFixture.Partitions).Select(p => new TopicPartition(topic, p));
        var committed = consumer.Committed(partitions, TimeSpan.FromSeconds(10));
        consumer.Close();
        return committed;
    }
}
