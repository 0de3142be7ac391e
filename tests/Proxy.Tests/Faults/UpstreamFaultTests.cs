using Confluent.Kafka;
using Switchback.Proxy.Tests.Integration;
using Xunit;

namespace Switchback.Proxy.Tests.Faults;

/// <summary>
/// Faults of the upstream cluster under steady client traffic through the proxy: no acknowledged record is lost or
/// duplicated, clients see the errors a broker would send, and the proxy recovers without a restart.
/// </summary>
[Collection(ProxyCollection.Name)]
public sealed class UpstreamFaultTests(ProxyFixture fixture)
{
    private const short ProduceApi = 0;
    private const short FetchApi = 1;
    private const short FindCoordinatorApi = 10;
    private const short InitProducerIdApi = 22;
    private const short NotLeaderOrFollower = 6;
    private const short RequestTimedOut = 7;
    private const short CoordinatorNotAvailable = 15;
    private const short TopicAuthorizationFailed = 29;

    private ProducerConfig IdempotentProducer() => new(fixture.ProducerConfig())
    {
        EnableIdempotence = true,
        Acks = Acks.All,
        MessageTimeoutMs = 30_000,
        RetryBackoffMs = 50,
    };

    [Fact]
    public async Task BrokerDownAndUp_DuringSteadyIdempotentProduce_EveryDeliveredRecordPresentExactlyOnce()
    {
        var topic = fixture.NewTopic("orders");
        using var producer = new ProducerBuilder<string, string>(IdempotentProducer()).Build();
        var deliveries = new List<Task<DeliveryResult<string, string>>>();
        var stop = DateTime.UtcNow + TimeSpan.FromSeconds(4);
        var i = 0;
        var faults = Task.Run(async () =>
        {
            await Task.Delay(1000);
            fixture.Source.SetBrokerDown(2);
            await Task.Delay(1500);
            fixture.Source.SetBrokerUp(2);
        });
        try
        {
            while (DateTime.UtcNow < stop)
            {
                deliveries.Add(producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 5}", Value = $"v-{i}" }));
                i++;
                await Task.Delay(10);
            }
            await faults;
        }
        finally
        {
            fixture.Source.SetBrokerUp(2);
        }
        var results = await Task.WhenAll(deliveries).WaitAsync(TimeSpan.FromSeconds(40));
        Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
        AssertExactlyOnce(results.Select(r => r.Message.Value), ProxyFixture.ReadDirectly(fixture.Source, topic));
    }

    [Fact]
    public async Task LeadershipMoves_DuringProduceAndConsume_NoRecordLostOrDuplicated()
    {
        var topic = fixture.NewTopic("orders");
        using var producer = new ProducerBuilder<string, string>(IdempotentProducer()).Build();
        var first = await fixture.ProduceAsync(producer, topic, 30, "before-move");
        using var consumer = new ConsumerBuilder<string, string>(fixture.ConsumerConfig(ProxyFixture.NewGroup("orders"))).Build();
        consumer.Subscribe(topic);
        var received = new List<string>();
        var moved = Task.Run(async () =>
        {
            await Task.Delay(300);
            for (var p = 0; p < ProxyFixture.Partitions; p++)
            {
                fixture.Source.SetPartitionLeader(topic, p, 1 + ((p + 1) % 3));
            }
        });
        var during = fixture.ProduceAsync(producer, topic, 30, "during-move");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (received.Count < 60 && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { IsPartitionEOF: false } record)
            {
                received.Add(record.Message.Value);
            }
        }
        await moved;
        var second = await during;
        consumer.Close();
        AssertExactlyOnce([.. first, .. second], ProxyFixture.ReadDirectly(fixture.Source, topic));
        Assert.Equal([.. first.Concat(second).Order()], received.Order());
    }

    [Fact]
    public async Task RttSpike_RequestsStillComplete_AndClientsOfTheOtherClusterAreNotHeldBack()
    {
        var orders = fixture.NewTopic("orders");
        var payments = fixture.NewTopic("payments");
        using var slow = new ProducerBuilder<string, string>(fixture.ProducerConfig()).Build();
        using var fast = new ProducerBuilder<string, string>(fixture.ProducerConfig()).Build();
        await fixture.ProduceAsync(slow, orders, 1, "warm");
        await fixture.ProduceAsync(fast, payments, 1, "warm");
        try
        {
            foreach (var broker in fixture.Source.BrokerIds)
            {
                fixture.Source.SetBrokerRtt(broker, 500);
            }
            var delayed = fixture.ProduceAsync(slow, orders, 10, "slow");
            // The payments producer (target cluster) is answered while the orders produce still waits on the RTT.
            await fixture.ProduceAsync(fast, payments, 10, "fast");
            Assert.False(delayed.IsCompleted, "the orders produce completed before the payments one despite a 500 ms RTT");
            await delayed;
        }
        finally
        {
            foreach (var broker in fixture.Source.BrokerIds)
            {
                fixture.Source.SetBrokerRtt(broker, 0);
            }
        }
        Assert.Equal(11, ProxyFixture.ReadDirectly(fixture.Source, orders).Count);
        Assert.Equal(11, ProxyFixture.ReadDirectly(fixture.Target, payments).Count);
    }

    [Fact]
    public async Task InjectedRetriableErrors_OnProduceFetchAndFindCoordinator_ClientRetriesSucceed()
    {
        var topic = fixture.NewTopic("orders");
        try
        {
            fixture.Source.PushRequestErrors(ProduceApi, NotLeaderOrFollower, RequestTimedOut, NotLeaderOrFollower);
            using var producer = new ProducerBuilder<string, string>(IdempotentProducer()).Build();
            var values = await fixture.ProduceAsync(producer, topic, 20, "retried");
            AssertExactlyOnce(values, ProxyFixture.ReadDirectly(fixture.Source, topic));

            fixture.Source.PushRequestErrors(FindCoordinatorApi, CoordinatorNotAvailable, CoordinatorNotAvailable);
            fixture.Source.PushRequestErrors(FetchApi, NotLeaderOrFollower, RequestTimedOut);
            // librdkafka reports a failed fetch to the application as a non-fatal consume error and retries it.
            using var consumer = new ConsumerBuilder<string, string>(fixture.ConsumerConfig(ProxyFixture.NewGroup("orders"))).Build();
            consumer.Subscribe(topic);
            var received = new List<string>();
            var reported = new List<ErrorCode>();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (received.Count < values.Count && DateTime.UtcNow < deadline)
            {
                try
                {
                    if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { IsPartitionEOF: false } record)
                    {
                        received.Add(record.Message.Value);
                    }
                }
                catch (ConsumeException e) when (!e.Error.IsFatal)
                {
                    reported.Add(e.Error.Code);
                }
            }
            consumer.Commit();
            var committed = consumer.Committed(TimeSpan.FromSeconds(10));
            consumer.Close();
            Assert.Equal(values.Order(), received.Order());
            Assert.Equal(20, committed.Sum(c => c.Offset.Value));
            Assert.All(reported, code => Assert.Contains(code, new[] { ErrorCode.NotLeaderForPartition, ErrorCode.RequestTimedOut }));
        }
        finally
        {
            fixture.Source.ClearRequestErrors(ProduceApi);
            fixture.Source.ClearRequestErrors(FetchApi);
            fixture.Source.ClearRequestErrors(FindCoordinatorApi);
        }
    }

    [Fact]
    public async Task InjectedFatalError_OnProduce_ReachesTheClientUnchanged_AndTheNextProduceSucceeds()
    {
        var topic = fixture.NewTopic("orders");
        using var producer = new ProducerBuilder<string, string>(fixture.ProducerConfig()).Build();
        await fixture.ProduceAsync(producer, topic, 1, "before");
        try
        {
            fixture.Source.PushRequestErrors(ProduceApi, TopicAuthorizationFailed);
            var error = await Assert.ThrowsAsync<ProduceException<string, string>>(
                () => producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "denied" }).WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(ErrorCode.TopicAuthorizationFailed, error.Error.Code);
        }
        finally
        {
            fixture.Source.ClearRequestErrors(ProduceApi);
        }
        // librdkafka remembers the topic's authorization error for a while; a new client shows the proxy serves on.
        using var next = new ProducerBuilder<string, string>(fixture.ProducerConfig()).Build();
        await fixture.ProduceAsync(next, topic, 1, "after");
        Assert.Equal(["after-0", "before-0"], ProxyFixture.ReadDirectly(fixture.Source, topic).Select(r => r.Message.Value).Order());
    }

    [Fact]
    public async Task RefusedProducerId_ForAProducerMappedAfterASwitch_IsAskedForAgainOnTheClientsRetry()
    {
        // Its own proxy: the switch must not move the shared proxy's routes under other tests.
        await using var proxy = await fixture.StartProxyAsync(logs: new CapturingLoggerProvider());
        var topic = fixture.NewTopic("orders");
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig(IdempotentProducer())
        {
            BootstrapServers = proxy.BootstrapServers,
            MessageTimeoutMs = 20_000,
        }).Build();
        await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "before" }).WaitAsync(TimeSpan.FromSeconds(20));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var switched = await http.PostAsync(new Uri(proxy.AdminUri, "v1/families/orders/switch"),
            new StringContent("""{"write":"target","force":true,"reason":"refused producer id"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.True(switched.IsSuccessStatusCode, await switched.Content.ReadAsStringAsync());

        // The first producer id the proxy asks target for, to map the client's producer onto, is refused.
        try
        {
            fixture.Target.PushRequestErrors(InitProducerIdApi, CoordinatorNotAvailable);
            var after = await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "after" }).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(PersistenceStatus.Persisted, after.Status);
        }
        finally
        {
            fixture.Target.ClearRequestErrors(InitProducerIdApi);
        }
        Assert.Equal(["after"], ProxyFixture.ReadDirectly(fixture.Target, topic).Select(r => r.Message.Value));
        Assert.Equal(["before"], ProxyFixture.ReadDirectly(fixture.Source, topic).Select(r => r.Message.Value));
    }

    private static void AssertExactlyOnce(IEnumerable<string> delivered, IEnumerable<ConsumeResult<string, string>> stored)
    {
        var storedValues = stored.Select(r => r.Message.Value).ToList();
        var duplicates = storedValues.GroupBy(v => v).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, $"stored twice: {string.Join(", ", duplicates.Take(10))}");
        var missing = delivered.Except(storedValues).ToList();
        Assert.True(missing.Count == 0, $"acknowledged but missing: {string.Join(", ", missing.Take(10))}");
    }

}
