using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Tests.Integration;
using Xunit;

namespace Switchback.Proxy.Tests.Faults;

/// <summary>The connection and idle limits, on real sockets to a running proxy.</summary>
[Collection(ProxyCollection.Name)]
public sealed class LimitsTests(ProxyFixture fixture)
{
    [Fact]
    public async Task MaxConnections_CountsBootstrapAndBrokerPortsTogether_AndRefusesBeyondWithLoggedReason()
    {
        var logs = new CapturingLoggerProvider();
        await using var proxy = await fixture.StartProxyAsync(new Dictionary<string, string?> { ["Switchback:Limits:MaxConnections"] = "3" }, logs);
        var brokerPort = await proxy.State.BrokerPort(proxy.State.BootstrapNodeId.GetValueOrDefault() + 1) ?? throw new InvalidOperationException("no broker port");
        Assert.NotEqual(proxy.State.AdvertisedPort, brokerPort); // a per-broker listener, not the bootstrap one
        var broker = $"127.0.0.1:{brokerPort}";

        using var first = await RawClient.ConnectAsync(proxy.BootstrapServers);
        using var second = await RawClient.ConnectAsync(proxy.BootstrapServers);
        using var third = await RawClient.ConnectAsync(broker);
        Assert.True(await Poll.UntilAsync(() => proxy.State.Sessions.Count == 3, TimeSpan.FromSeconds(5)));

        // One more on a broker port and one on the bootstrap port: both refused, each with its reason logged.
        Assert.True(await IsRefusedAsync(broker), "a 4th connection on a broker port was kept");
        Assert.True(await IsRefusedAsync(proxy.BootstrapServers), "a 4th connection on the bootstrap port was kept");
        Assert.True(await Poll.UntilAsync(() => logs.Entries.Count(e => e.EventId == 1004) >= 2, TimeSpan.FromSeconds(5)),
            "refusals logged: " + string.Join(" | ", logs.Entries.Where(e => e.EventId == 1004).Select(e => e.Message)));
        Assert.Contains("Limits:MaxConnections", logs.Entries.First(e => e.EventId == 1004).Message, StringComparison.Ordinal);

        // The connections within the limit still work, and a freed slot can be used again.
        await third.SendAsync(RawClient.ApiVersionsRequest(7));
        Assert.NotNull(await third.ReceiveFrameAsync(TimeSpan.FromSeconds(5)));
        first.Dispose();
        Assert.True(await Poll.UntilAsync(() => proxy.State.Sessions.Count == 2, TimeSpan.FromSeconds(5)));
        using var again = await RawClient.ConnectAsync(broker);
        await again.SendAsync(RawClient.ApiVersionsRequest(8));
        Assert.NotNull(await again.ReceiveFrameAsync(TimeSpan.FromSeconds(5)));
    }

    private static async Task<bool> IsRefusedAsync(string address)
    {
        try
        {
            using var client = await RawClient.ConnectAsync(address);
            return await client.IsClosedByPeerAsync(TimeSpan.FromSeconds(5));
        }
        catch (System.Net.Sockets.SocketException)
        {
            return true; // reset while connecting
        }
    }

    [Fact]
    public async Task IdleTimeout_ClosesSilentConnection_WithReasonIdle_AndKeepsBusyOnes()
    {
        var logs = new CapturingLoggerProvider();
        await using var proxy = await fixture.StartProxyAsync(new Dictionary<string, string?> { ["Switchback:Limits:IdleTimeoutMs"] = "2000" }, logs);
        var topic = fixture.NewTopic("orders");
        using var producer = new ProducerBuilder<string, string>(fixture.ProducerConfig(proxy.BootstrapServers)).Build();
        await fixture.ProduceAsync(producer, topic, 2, "first");

        using var silent = await RawClient.ConnectAsync(proxy.BootstrapServers);
        using var busy = await RawClient.ConnectAsync(proxy.BootstrapServers);
        var closedSilent = silent.IsClosedByPeerAsync(TimeSpan.FromSeconds(8));
        var started = DateTime.UtcNow;
        while (!closedSilent.IsCompleted || DateTime.UtcNow - started < TimeSpan.FromSeconds(3))
        {
            await busy.SendAsync(RawClient.ApiVersionsRequest(1));
            Assert.True(await busy.ReceiveFrameAsync(TimeSpan.FromSeconds(5)) is not null, $"the busy connection was closed after {DateTime.UtcNow - started}: " +
                string.Join(" | ", logs.Entries.Where(e => e.EventId == 1002).Select(e => e.Message)));
            await Task.Delay(200);
        }
        Assert.True(await closedSilent, "the silent connection was not closed");
        Assert.Contains(logs.Entries, e => e.EventId == 1002 && e.Message.EndsWith("closed: idle", StringComparison.Ordinal));

        // The producer's connections were idle just as long; it reconnects as it does after a broker's idle close.
        await fixture.ProduceAsync(producer, topic, 2, "after-idle");
        Assert.Equal(4, ProxyFixture.ReadDirectly(fixture.Source, topic).Count);
    }

    [Fact]
    public async Task UpstreamRequestTimeout_GivesUpOnASlowBroker_TellingTheClientThatTheBatchMayBeWritten_NothingLost()
    {
        var logs = new CapturingLoggerProvider();
        await using var proxy = await fixture.StartProxyAsync(new Dictionary<string, string?> { ["Switchback:Limits:UpstreamRequestTimeoutMs"] = "500" }, logs);
        var topic = fixture.NewTopic("orders");
        var config = new ProducerConfig(fixture.ProducerConfig(proxy.BootstrapServers)) { EnableIdempotence = true, MessageTimeoutMs = 30_000 };
        config.Debug = "msg"; // librdkafka logs how it classifies each produce error
        var clientLog = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var producer = new ProducerBuilder<string, string>(config).SetLogHandler((_, m) => clientLog.Enqueue(m.Message)).Build();
        await fixture.ProduceAsync(producer, topic, 1, "warm");
        List<string> values;
        try
        {
            foreach (var broker in fixture.Source.BrokerIds)
            {
                fixture.Source.SetBrokerRtt(broker, 1500);
            }
            var slow = fixture.ProduceAsync(producer, topic, 10, "slow");
            // The proxy gives up after 500 ms instead of waiting out the broker: requests the client sent are
            // answered with retriable errors (or their connection closed), and its own metadata refreshes fail.
            Assert.True(await Poll.UntilAsync(() => logs.Entries.Any(e => e.Message.Contains("No response within 500 ms", StringComparison.Ordinal)), TimeSpan.FromSeconds(10)),
                "logged: " + string.Join(" | ", logs.Entries.Select(e => e.Message)));
            foreach (var broker in fixture.Source.BrokerIds)
            {
                fixture.Source.SetBrokerRtt(broker, 0);
            }
            values = await slow;
        }
        finally
        {
            foreach (var broker in fixture.Source.BrokerIds)
            {
                fixture.Source.SetBrokerRtt(broker, 0);
            }
        }
        var stored = ProxyFixture.ReadDirectly(fixture.Source, topic).Select(r => r.Message.Value).ToList();
        Assert.Empty(values.Except(stored));
        // A batch sent upstream but not answered in time may have been written: the client must hear REQUEST_TIMED_OUT
        // ("possibly persisted": retry with the same sequence), never an error that says it was not written.
        Assert.Contains(clientLog, l => l.Contains("Request timed out (actions Retry,MsgPossiblyPersisted)", StringComparison.Ordinal));
        Assert.DoesNotContain(clientLog, l => l.Contains("MsgNotPersisted", StringComparison.Ordinal));
        // Not asserted: each record stored once. The retries carry the same producer id, epoch and sequence (the proxy
        // relays them untouched before any switch), yet the librdkafka mock appends them again where a broker would
        // answer DUPLICATE_SEQUENCE_NUMBER.
    }

    [Theory]
    [InlineData("IdleTimeoutMs", "0")]
    [InlineData("IdleTimeoutMs", "-5")]
    [InlineData("MaxConnections", "0")]
    public void InvalidLimit_IsRejected_NamingTheKey(string limit, string value)
    {
        var settings = DemoRunner.DemoSettings("127.0.0.1:1", "127.0.0.1:2");
        settings[$"Switchback:Limits:{limit}"] = value;
        var error = Assert.Throws<ConfigException>(() => ConfigValidator.Load(new ConfigurationBuilder().AddInMemoryCollection(settings).Build()));
        Assert.Equal($"Switchback:Limits:{limit}", error.Key);
    }

    [Fact]
    public void Limits_HaveSafeDefaults()
    {
        var config = ConfigValidator.Load(new ConfigurationBuilder().AddInMemoryCollection(DemoRunner.DemoSettings("127.0.0.1:1", "127.0.0.1:2")).Build());
        Assert.Equal(TimeSpan.FromMinutes(10), config.Limits.IdleTimeout);
        Assert.Equal(20_000, config.Limits.MaxConnections);
        Assert.Equal(64, config.Limits.MaxInFlightPerConnection);
        Assert.Equal(100 * 1024 * 1024, config.Limits.MaxFrameBytes);
        Assert.Equal(TimeSpan.FromMinutes(1), config.Limits.UpstreamRequestTimeout);
    }
}
