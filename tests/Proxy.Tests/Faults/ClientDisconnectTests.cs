using Confluent.Kafka;
using Switchback.Proxy.Tests.Integration;
using Xunit;

namespace Switchback.Proxy.Tests.Faults;

/// <summary>Clients that hang up with a request in flight: the proxy logs the close, frees the session, serves on.</summary>
[Collection(ProxyCollection.Name)]
public sealed class ClientDisconnectTests(ProxyFixture fixture)
{
    [Fact]
    public async Task ProducerGone_WhileProduceInFlight_SessionFreed_AndProxyServesOn()
    {
        var logs = new CapturingLoggerProvider();
        await using var proxy = await fixture.StartProxyAsync(logs: logs);
        var topic = fixture.NewTopic("orders");
        var baseline = proxy.State.Sessions.Count;
        var producer = new ProducerBuilder<string, string>(fixture.ProducerConfig(proxy.BootstrapServers)).Build();
        await fixture.ProduceAsync(producer, topic, 1, "warm");
        try
        {
            foreach (var broker in fixture.Source.BrokerIds)
            {
                fixture.Source.SetBrokerRtt(broker, 3000);
            }
            _ = producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "abandoned" });
            await Task.Delay(500);
            producer.Dispose(); // closes its connections without waiting for the answer
            Assert.True(await Poll.UntilAsync(() => proxy.State.Sessions.Count == baseline, TimeSpan.FromSeconds(10)),
                $"sessions {proxy.State.Sessions.Count}, baseline {baseline}");
        }
        finally
        {
            foreach (var broker in fixture.Source.BrokerIds)
            {
                fixture.Source.SetBrokerRtt(broker, 0);
            }
        }
        Assert.Equal(baseline, proxy.State.Metrics.OpenConnections);
        Assert.Contains(logs.Entries, e => e.EventId == 1002);
        Assert.DoesNotContain(logs.Entries, e => e.EventId == 1003);
        using var next = new ProducerBuilder<string, string>(fixture.ProducerConfig(proxy.BootstrapServers)).Build();
        await fixture.ProduceAsync(next, topic, 3, "after");
    }

    [Fact]
    public async Task ConsumerGone_DuringLongFetch_SessionFreedBeforeTheFetchWaitEnds()
    {
        var logs = new CapturingLoggerProvider();
        await using var proxy = await fixture.StartProxyAsync(logs: logs);
        var topic = fixture.NewTopic("orders");
        var baseline = proxy.State.Sessions.Count;
        var config = fixture.ConsumerConfig(ProxyFixture.NewGroup("orders"), proxy.BootstrapServers);
        config.FetchWaitMaxMs = 30_000;
        config.SocketTimeoutMs = 60_000;
        var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Assign(Enumerable.Range(0, ProxyFixture.Partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        Assert.Null(consumer.Consume(TimeSpan.FromSeconds(2))); // empty topic: fetches now wait upstream
        var started = DateTime.UtcNow;
        consumer.Dispose(); // no Close: the connections just go away
        Assert.True(await Poll.UntilAsync(() => proxy.State.Sessions.Count == baseline, TimeSpan.FromSeconds(10)),
            $"sessions {proxy.State.Sessions.Count}, baseline {baseline} after {DateTime.UtcNow - started}");
        Assert.DoesNotContain(logs.Entries, e => e.EventId == 1003);
        Assert.Equal(baseline, proxy.State.Metrics.OpenConnections);

        using var producer = new ProducerBuilder<string, string>(fixture.ProducerConfig(proxy.BootstrapServers)).Build();
        await fixture.ProduceAsync(producer, topic, 3, "after");
    }
}
