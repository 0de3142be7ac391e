using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Faults;

/// <summary>
/// The proxy stops while a write switch is held in its drain (a produce in flight on the slow old cluster) and a new
/// proxy starts on the same ports and state directory: the route is the old or the new one as the audit log says,
/// and the idempotent producer carries on with nothing lost or duplicated.
/// </summary>
[Collection(ProxyCollection.Name)]
public sealed class RestartMidSwitchTests(ProxyFixture fixture, ITestOutputHelper output)
{
    private const int MaxBrokers = 8;

    [Fact]
    public async Task ProxyStopsDuringHeldWriteSwitch_RestartedProxyRouteMatchesAudit_ProducerLosesNothing()
    {
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-restart-{Guid.NewGuid():N}");
        var port = FreePortRange(MaxBrokers + 1);
        var overrides = new Dictionary<string, string?>
        {
            ["Switchback:Listener:Bind"] = $"127.0.0.1:{port}",
            ["Switchback:Listener:BrokerPortStart"] = $"{port + 1}",
            ["Switchback:Listener:MaxBrokers"] = $"{MaxBrokers}",
            ["Switchback:StateDirectory"] = stateDirectory,
        };
        var topic = fixture.NewTopic("orders");
        var proxy = await fixture.StartProxyAsync(overrides, new CapturingLoggerProvider());
        ProxyHost? restarted = null;
        var config = new ProducerConfig(fixture.ProducerConfig(proxy.BootstrapServers))
        {
            EnableIdempotence = true,
            MessageTimeoutMs = 60_000,
            RetryBackoffMs = 100,
            ReconnectBackoffMaxMs = 500,
        };
        using var producer = new ProducerBuilder<string, string>(config).Build();
        var deliveries = new List<Task<DeliveryResult<string, string>>>();
        using var stopProducing = new CancellationTokenSource();
        try
        {
            deliveries.Add(producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "warm" }));
            await deliveries[0].WaitAsync(TimeSpan.FromSeconds(20));
            var producing = Task.Run(async () =>
            {
                for (var i = 0; !stopProducing.IsCancellationRequested; i++)
                {
                    lock (deliveries)
                    {
                        deliveries.Add(producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 5}", Value = $"v-{i}" }));
                    }
                    await Task.Delay(20);
                }
            });

            // Slow the old cluster so a produce is in flight there: the switch's drain has to wait for it.
            SetRtt(fixture.Source, 1500);
            await Task.Delay(200);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var body = JsonSerializer.Serialize(new { write = "target", force = true, reason = "restart-mid-switch", timeoutMs = 10_000 });
            var switching = http.PostAsync(new Uri(proxy.AdminUri, "v1/families/orders/switch"), new StringContent(body, Encoding.UTF8, "application/json"));
            await Task.Delay(300);
            Assert.False(switching.IsCompleted, "the switch was not held by the in-flight produce");

            await proxy.DisposeAsync();
            proxy = null!;
            try
            {
                await switching;
            }
            catch (HttpRequestException)
            {
                // The admin connection went down with the proxy.
            }
            SetRtt(fixture.Source, 0);

            restarted = await fixture.StartProxyAsync(overrides, new CapturingLoggerProvider());
            Assert.Equal($"127.0.0.1:{port}", restarted.BootstrapServers);
            await Task.Delay(1500);
            await stopProducing.CancelAsync();
            await producing;

            // The route the new proxy took up is the one the audit log recorded.
            var audit = new AuditLog(stateDirectory).ReadAll().Where(e => e.Family == "orders").ToList();
            var switched = audit.Any(e => e.Action == "switch" && e.Outcome == "ok");
            var write = restarted.State.Routes.Current.Find("orders")!.Route.Write;
            output.WriteLine($"audit: {string.Join(" | ", audit.Select(e => $"{e.Action} {e.From}->{e.To} {e.Outcome} {e.Detail}"))}; write route after restart: {write}");
            Assert.Equal(switched ? "target" : "source", write);

            Task<DeliveryResult<string, string>>[] all;
            lock (deliveries)
            {
                all = [.. deliveries];
            }
            var results = await Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
            var stored = ProxyFixture.ReadDirectly(fixture.Source, topic).Concat(ProxyFixture.ReadDirectly(fixture.Target, topic))
                .Select(r => r.Message.Value).ToList();
            // Known limit, asserted as such: the proxy keeps the producer-id mappings that make retries idempotent
            // across a switch in memory, so a write whose answer was lost when the proxy stopped can be stored again
            // when the producer retries it through the restarted proxy. What must never happen is a loss, or a
            // duplicate of something the producer did not send.
            var duplicates = stored.GroupBy(v => v).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            var sent = results.Select(r => r.Message.Value).ToHashSet();
            Assert.All(duplicates, d => Assert.Contains(d, sent));
            output.WriteLine($"{results.Length} delivered, {stored.Count} stored, {duplicates.Count} stored twice across the restart");
            var missing = results.Select(r => r.Message.Value).Except(stored).ToList();
            Assert.True(missing.Count == 0, $"acknowledged but missing: {string.Join(", ", missing.Take(10))}");
        }
        finally
        {
            await stopProducing.CancelAsync();
            SetRtt(fixture.Source, 0);
            if (proxy is not null)
            {
                await proxy.DisposeAsync();
            }
            if (restarted is not null)
            {
                await restarted.DisposeAsync();
            }
            if (Directory.Exists(stateDirectory))
            {
                Directory.Delete(stateDirectory, recursive: true);
            }
        }
    }

    private static void SetRtt(MockKafkaCluster cluster, int rttMs)
    {
        foreach (var broker in cluster.BrokerIds)
        {
            cluster.SetBrokerRtt(broker, rttMs);
        }
    }

    /// <summary>A port with <paramref name="count"/> free ports from it upwards, so a restarted proxy can bind the same ones.</summary>
    private static int FreePortRange(int count)
    {
        var random = new Random();
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var start = random.Next(20_000, 60_000);
            var sockets = new List<Socket>();
            try
            {
                for (var p = start; p < start + count; p++)
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    sockets.Add(socket);
                    socket.Bind(new IPEndPoint(IPAddress.Loopback, p));
                }
                return start;
            }
            catch (SocketException)
            {
            }
            finally
            {
                sockets.ForEach(s => s.Dispose());
            }
        }
        throw new InvalidOperationException("No free port range found.");
    }
}
