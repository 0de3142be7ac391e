using System.Net.Sockets;
using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Xunit;

namespace Switchback.Proxy.Tests.Demo;

public sealed class MockKafkaClusterTests : IDisposable
{
    private const short ProduceApiKey = 0;
    private const short NotLeaderOrFollower = 6;

    private readonly MockKafkaCluster _cluster = MockKafkaCluster.Start(3);

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public void Start_ListensOnOneLoopbackPortPerBroker()
    {
        Assert.Equal([1, 2, 3], _cluster.BrokerIds);
        Assert.Equal(3, _cluster.BootstrapServers.Split(',').Length);
        foreach (var id in _cluster.BrokerIds)
        {
            using var client = new TcpClient();
            client.Connect(_cluster.GetBrokerListener(id));
            Assert.True(client.Connected);
        }
    }

    [Fact]
    public void LibrdkafkaLoader_SharesOneNativeCopyWithConfluentKafka()
    {
        Assert.NotNull(LibrdkafkaLoader.LoadedPath);
        Assert.StartsWith("2.16", Library.VersionString);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = _cluster.BootstrapServers }).Build();
        var metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
        Assert.Equal(3, metadata.Brokers.Count);

        var mapped = File.ReadLines("/proc/self/maps")
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields.Length >= 6 && fields[5].Contains("librdkafka", StringComparison.Ordinal))
            .Select(fields => fields[5])
            .Distinct()
            .ToList();
        Assert.Equal([LibrdkafkaLoader.LoadedPath], mapped);
    }

    [Fact]
    public void SetBrokerDown_RefusesConnectionsOnThatBrokersPort_UntilSetUp()
    {
        _cluster.SetBrokerDown(2);
        using (var refused = new TcpClient())
        {
            Assert.Throws<SocketException>(() => refused.Connect(_cluster.GetBrokerListener(2)));
        }
        using (var other = new TcpClient())
        {
            other.Connect(_cluster.GetBrokerListener(1));
        }

        _cluster.SetBrokerUp(2);
        using var accepted = new TcpClient();
        accepted.Connect(_cluster.GetBrokerListener(2));
        Assert.True(accepted.Connected);
    }

    [Fact]
    public async Task ConfluentClients_ProduceKeyedRecordsWithAcksAll_ConsumerGroupReadsThemAllBack()
    {
        const int count = 200;
        var topic = UniqueName("orders");
        _cluster.CreateTopic(topic, partitions: 4, replicationFactor: 3);

        using (var producer = new ProducerBuilder<string, string>(ProducerConfig()).Build())
        {
            var deliveries = Enumerable.Range(0, count)
                .Select(i => producer.ProduceAsync(topic, new Message<string, string> { Key = $"key-{i % 17}", Value = $"value-{i}" }))
                .ToArray();
            var results = await Task.WhenAll(deliveries).WaitAsync(TimeSpan.FromSeconds(20));
            Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
            // Same key, same partition.
            Assert.All(results.GroupBy(r => r.Message.Key), g => Assert.Single(g.Select(r => r.Partition.Value).Distinct()));
        }

        var received = ConsumeAll(topic, UniqueName("group"), count, TimeSpan.FromSeconds(30));
        Assert.Equal(
            Enumerable.Range(0, count).Select(i => $"value-{i}").Order(),
            received.Select(r => r.Message.Value).Order());
        Assert.All(received, r => Assert.Equal($"key-{int.Parse(r.Message.Value["value-".Length..]) % 17}", r.Message.Key));
    }

    [Fact]
    public async Task BrokerDown_ProduceToItsPartitionWaits_AndCompletesOnceItIsUpAgain()
    {
        var topic = UniqueName("down");
        _cluster.CreateTopic(topic, partitions: 1, replicationFactor: 1);
        _cluster.SetPartitionLeader(topic, 0, 2);

        var config = ProducerConfig();
        config.MessageTimeoutMs = 20_000;
        using var producer = new ProducerBuilder<string, string>(config).Build();
        var first = await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "before" });
        Assert.Equal(0, first.Offset.Value);

        _cluster.SetBrokerDown(2);
        var pending = producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "during" });
        var early = await Task.WhenAny(pending, Task.Delay(1500));
        Assert.NotSame(pending, early);

        _cluster.SetBrokerUp(2);
        var second = await pending.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(1, second.Offset.Value);
    }

    [Fact]
    public async Task BrokerDown_ProduceFailsOnceMessageTimeoutExpires()
    {
        var topic = UniqueName("timeout");
        _cluster.CreateTopic(topic, partitions: 1, replicationFactor: 1);
        _cluster.SetPartitionLeader(topic, 0, 3);

        var config = ProducerConfig();
        config.MessageTimeoutMs = 1500;
        using var producer = new ProducerBuilder<string, string>(config).Build();
        await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "warm-up" });

        _cluster.SetBrokerDown(3);
        var ex = await Assert.ThrowsAsync<ProduceException<string, string>>(
            () => producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "lost" }).WaitAsync(TimeSpan.FromSeconds(15)));
        Assert.Equal(ErrorCode.Local_MsgTimedOut, ex.Error.Code);
    }

    [Fact]
    public async Task PushRequestErrors_RetriableProduceErrorIsRetriedTransparently()
    {
        var topic = UniqueName("errors");
        _cluster.CreateTopic(topic, partitions: 1);
        _cluster.StartRequestTracking();
        _cluster.PushRequestErrors(ProduceApiKey, NotLeaderOrFollower, NotLeaderOrFollower);

        using var producer = new ProducerBuilder<string, string>(ProducerConfig()).Build();
        var result = await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "v" })
            .WaitAsync(TimeSpan.FromSeconds(15));

        Assert.Equal(PersistenceStatus.Persisted, result.Status);
        Assert.True(_cluster.GetTrackedRequests().Count(r => r.ApiKey == ProduceApiKey) >= 3);
    }

    [Fact]
    public void ControlCalls_RejectUnknownBrokersAndDisposedClusters()
    {
        Assert.Throws<MockKafkaClusterException>(() => _cluster.SetBrokerDown(42));
        Assert.Throws<ArgumentOutOfRangeException>(() => _cluster.SetBrokerAdvertisedAddress(42, "localhost", 9092));

        var other = MockKafkaCluster.Start(1);
        other.Dispose();
        other.Dispose();
        Assert.Throws<ObjectDisposedException>(() => other.CreateTopic("t", 1));
    }

    private ProducerConfig ProducerConfig() => new()
    {
        BootstrapServers = _cluster.BootstrapServers,
        Acks = Acks.All,
        LingerMs = 5,
        MessageTimeoutMs = 15_000,
    };

    private List<ConsumeResult<string, string>> ConsumeAll(string topic, string groupId, int count, TimeSpan timeout)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = _cluster.BootstrapServers,
            GroupId = groupId,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            SessionTimeoutMs = 6000,
            FetchWaitMaxMs = 50,
        };
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(topic);
        var received = new List<ConsumeResult<string, string>>();
        var deadline = DateTime.UtcNow + timeout;
        while (received.Count < count && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is { IsPartitionEOF: false })
            {
                received.Add(result);
            }
        }
        consumer.Close();
        return received;
    }

    private static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid():N}";
}
