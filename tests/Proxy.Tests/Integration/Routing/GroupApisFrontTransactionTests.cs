using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Xunit;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>
/// The <see cref="GroupApisFront"/>'s stand-in for transactional offsets, which librdkafka's mock takes but never
/// stores: a committed transaction's offsets become the group's committed offsets, an aborted one's do not. Clients
/// talk to the front directly (no proxy), as the switching tests' proxy does.
/// </summary>
public sealed class GroupApisFrontTransactionTests
{
    [Fact]
    public async Task SendOffsetsToTransaction_CommittedTransactionsOffsetsFetchedAsTheGroups_AbortedOnesNot()
    {
        using var cluster = MockKafkaCluster.Start(3);
        await using var front = new GroupApisFront(cluster);
        var topic = $"orders.{Guid.NewGuid():N}";
        var group = $"orders-{Guid.NewGuid():N}";
        cluster.CreateTopic(topic, 1);
        using (var input = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = front.BootstrapServers }).SetLogHandler(static (_, _) => { }).Build())
        {
            for (var i = 0; i < 20; i++)
            {
                await input.ProduceAsync(topic, new Message<string, string> { Key = $"k{i}", Value = $"v{i}" });
            }
        }

        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = front.BootstrapServers,
            GroupId = group,
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = 50,
            SessionTimeoutMs = 30_000,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Subscribe(topic);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
        while (consumer.Consume(TimeSpan.FromMilliseconds(200)) is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the consumer read nothing in 40 s");
        }
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = front.BootstrapServers,
            TransactionalId = $"orders-{Guid.NewGuid():N}",
        }).SetLogHandler(static (_, _) => { }).Build();
        producer.InitTransactions(TimeSpan.FromSeconds(30));
        var partition = new TopicPartition(topic, 0);

        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([new TopicPartitionOffset(partition, 7)], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(30));
        producer.CommitTransaction(TimeSpan.FromSeconds(30));
        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([new TopicPartitionOffset(partition, 9)], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(30));
        producer.AbortTransaction(TimeSpan.FromSeconds(30));

        // What the switch copies (the admin client's OffsetFetch) and what a consumer resumes from (a stable OffsetFetch).
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = front.BootstrapServers }).SetLogHandler(static (_, _) => { }).Build();
        var listed = await admin.ListConsumerGroupOffsetsAsync([new ConsumerGroupTopicPartitions(group, [partition])]);
        Assert.Equal(7, listed.Single().Partitions.Single().Offset.Value);
        Assert.Equal(7, consumer.Committed([partition], TimeSpan.FromSeconds(10)).Single().Offset.Value);
        Assert.Equal([TransactionalOffsetsOutcome.Written, TransactionalOffsetsOutcome.Dropped], front.TransactionalOffsets.Select(r => r.Outcome));
        consumer.Close();
    }
}
