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
/// proxy starts on the same ports and state directory: the route is the old or the new one as the audit log says.
/// That proxy then dies abruptly while writes of the now mapped producer are in flight on the new cluster, and a
/// third one takes over: the producer's retries of those writes map to the same upstream producer id, epoch and
/// sequences, so the cluster deduplicates them. Nothing is lost and nothing is stored twice.
/// </summary>
[Collection(ProxyCollection.Name)]
public sealed class RestartMidSwitchTests(ProxyFixture fixture, ITestOutputHelper output)
{
    private const int MaxBrokers = 8;

    /// <summary>Fixed ports and a state directory, so a proxy started again takes over where the last one stopped.</summary>
    private static Dictionary<string, string?> RestartableProxy(string stateDirectory)
    {
        var port = FreePorts.Range(MaxBrokers + 1);
        return new Dictionary<string, string?>
        {
            ["Switchback:Listener:Bind"] = $"127.0.0.1:{port}",
            ["Switchback:Listener:BrokerPortStart"] = $"{port + 1}",
            ["Switchback:Listener:MaxBrokers"] = $"{MaxBrokers}",
            ["Switchback:StateDirectory"] = stateDirectory,
        };
    }

    [Fact]
    public async Task ProxyStopsDuringHeldWriteSwitch_ThenDiesWithMappedWritesInFlight_RouteMatchesAudit_NothingLostOrDuplicated()
    {
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-restart-{Guid.NewGuid():N}");
        var overrides = RestartableProxy(stateDirectory);
        var topic = fixture.NewTopic("orders");
        var logs = new[] { new CapturingLoggerProvider(), new CapturingLoggerProvider(), new CapturingLoggerProvider() };
        var proxy = await fixture.StartProxyAsync(overrides, logs[0]);
        ProxyHost? restarted = null;
        ProxyHost? third = null;
        var config = new ProducerConfig(fixture.ProducerConfig(proxy.BootstrapServers))
        {
            EnableIdempotence = true,
            MessageTimeoutMs = 60_000,
            RetryBackoffMs = 100,
            ReconnectBackoffMaxMs = 500,
            Debug = "eos,broker,protocol",
        };
        var clientLog = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var producer = new ProducerBuilder<string, string>(config)
            .SetLogHandler((_, m) => clientLog.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {m.Level} {m.Facility} {m.Message}")).Build();
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

            restarted = await fixture.StartProxyAsync(overrides, logs[1]);
            Assert.Equal(overrides["Switchback:Listener:Bind"], restarted.BootstrapServers);

            // The route the new proxy took up is the one the audit log recorded.
            var audit = new AuditLog(stateDirectory).ReadAll().Where(e => e.Family == "orders").ToList();
            var switched = audit.Any(e => e.Action == "switch" && e.Outcome == "ok");
            var write = restarted.State.Routes.Current.Find("orders")!.Route.Write;
            output.WriteLine($"audit: {string.Join(" | ", audit.Select(e => $"{e.Action} {e.From}->{e.To} {e.Outcome} {e.Detail}"))}; write route after restart: {write}");
            Assert.Equal(switched ? "target" : "source", write);
            if (!switched)
            {
                var again = await http.PostAsync(new Uri(restarted.AdminUri, "v1/families/orders/switch"), new StringContent(body, Encoding.UTF8, "application/json"));
                Assert.True(again.IsSuccessStatusCode, await again.Content.ReadAsStringAsync());
            }

            // The producer's batches now go to target under a mapped producer id. Slow target so some are in flight
            // (written, answer not yet sent) and kill the proxy: the producer retries them through the next one.
            // Under load a restarted proxy takes a while to serve its first requests: wait until it has acknowledged
            // writes produced after it started, so the producer is connected through it before target slows down.
            int firstAfterRestart;
            lock (deliveries)
            {
                firstAfterRestart = deliveries.Count;
            }
            await WaitUntilAsync(() =>
            {
                lock (deliveries)
                {
                    return deliveries.Count >= firstAfterRestart + 10
                        && deliveries.Skip(firstAfterRestart).Take(10).All(d => d.IsCompletedSuccessfully);
                }
            }, TimeSpan.FromSeconds(30), "the restarted proxy acknowledged no writes");
            // Kill it once target has taken a write it has not answered yet (it answers 2 s late): the producer must
            // retry that write through the next proxy, which a broker then refuses as a duplicate. A fixed wait is
            // not enough on a loaded machine, where the producer may send nothing for a while.
            fixture.Target.ClearTrackedRequests();
            fixture.Target.StartRequestTracking();
            SetRtt(fixture.Target, 2000);
            try
            {
                await WaitUntilAsync(() => fixture.Target.GetTrackedRequests().Any(r => r.ApiKey == (short)Switchback.Protocol.ApiKey.Produce),
                    TimeSpan.FromSeconds(20), "target received no write after it slowed down");
            }
            finally
            {
                fixture.Target.StopRequestTracking();
                fixture.Target.ClearTrackedRequests();
            }
            await Task.Delay(200);
            await restarted.StopAsync(new CancellationToken(canceled: true));
            await restarted.DisposeAsync();
            restarted = null;
            SetRtt(fixture.Target, 0);

            third = await fixture.StartProxyAsync(overrides, logs[2]);
            Assert.Equal("target", third.State.Routes.Current.Find("orders")!.Route.Write);
            await Task.Delay(1500);
            await stopProducing.CancelAsync();
            await producing;

            Task<DeliveryResult<string, string>>[] all;
            lock (deliveries)
            {
                all = [.. deliveries];
            }
            var results = await Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
            // The mock cluster checks sequences of transactional producers only, so it stores an idempotent producer's
            // retry again where a broker would answer DUPLICATE_SEQUENCE_NUMBER and store nothing. Apply that rule
            // here: a record stored under a producer id, epoch and sequence already stored in its partition is one a
            // broker would have refused. What remains must hold every delivered record exactly once.
            var stored = new List<(string Value, bool Refused)>();
            foreach (var cluster in new[] { fixture.Source, fixture.Target })
            {
                // Records first, batch headers after: a write of the killed proxy can still land late (the slowed
                // cluster answers, and may store, after its delay), and headers read later cover every record read.
                var records = ProxyFixture.ReadDirectly(cluster, topic).OrderBy(r => r.Partition.Value).ThenBy(r => r.Offset.Value).ToList();
                var batches = await StoredBatches.ReadAsync(cluster, topic, ProxyFixture.Partitions);
                StoredBatch? BatchOf(ConsumeResult<string, string> record) =>
                    batches.SingleOrDefault(b => b.Partition == record.Partition.Value && b.BaseOffset <= record.Offset.Value && record.Offset.Value <= b.LastOffset);
                // A fetch of batch headers on a loaded machine can come back short of a record just read: read them again.
                for (var attempt = 0; attempt < 5 && records.Any(r => BatchOf(r) is null); attempt++)
                {
                    batches = await StoredBatches.ReadAsync(cluster, topic, ProxyFixture.Partitions);
                }
                var sequences = new HashSet<(int, long, short, long)>();
                foreach (var record in records)
                {
                    var batch = BatchOf(record) ?? throw new InvalidOperationException($"no stored batch holds {record.TopicPartitionOffset}");
                    var sequence = (long)batch.BaseSequence + (record.Offset.Value - batch.BaseOffset);
                    stored.Add((record.Message.Value, !sequences.Add((batch.Partition, batch.ProducerId, batch.ProducerEpoch, sequence))));
                }
            }
            var kept = stored.Where(s => !s.Refused).Select(s => s.Value).ToList();
            var refused = stored.Count(s => s.Refused);
            var duplicates = kept.GroupBy(v => v).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            output.WriteLine($"{results.Length} delivered, {stored.Count} stored, {refused} of them retries a broker refuses as duplicates, {duplicates.Count} stored twice");
            var missing = results.Select(r => r.Message.Value).Except(kept).ToList();
            Assert.True(missing.Count == 0, $"acknowledged but missing: {string.Join(", ", missing.Take(10))}");
            Assert.True(duplicates.Count == 0, $"stored twice under different producer ids or sequences: {string.Join(", ", duplicates.Take(10))}");
            Assert.Equal(results.Length, kept.Count);
            Assert.True(refused > 0, "no write in flight when the proxy died was retried: the test did not exercise the restart");
        }
        catch
        {
            for (var i = 0; i < logs.Length; i++)
            {
                foreach (var e in logs[i].Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Information))
                {
                    output.WriteLine($"proxy{i} {e.Level} {e.Category} {e.Message}");
                }
            }
            foreach (var line in clientLog)
            {
                output.WriteLine(line);
            }
            throw;
        }
        finally
        {
            await stopProducing.CancelAsync();
            SetRtt(fixture.Source, 0);
            SetRtt(fixture.Target, 0);
            foreach (var host in new[] { proxy, restarted, third })
            {
                if (host is not null)
                {
                    await host.DisposeAsync();
                }
            }
            if (Directory.Exists(stateDirectory))
            {
                Directory.Delete(stateDirectory, recursive: true);
            }
        }
    }

    [Fact]
    public async Task TransactionalProducerMappedAfterSwitch_ProxyDiesMidTransaction_TransactionCommitsOnceThroughRestartedProxy()
    {
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-restart-{Guid.NewGuid():N}");
        var overrides = RestartableProxy(stateDirectory);
        var topic = fixture.NewTopic("orders");
        var proxy = await fixture.StartProxyAsync(overrides, new CapturingLoggerProvider());
        ProxyHost? restarted = null;
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig(fixture.ProducerConfig(proxy.BootstrapServers))
        {
            TransactionalId = $"orders-tx-{Guid.NewGuid():N}",
            TransactionTimeoutMs = 60_000,
            MessageTimeoutMs = 60_000,
            RetryBackoffMs = 100,
            ReconnectBackoffMaxMs = 500,
        }).SetLogHandler(static (_, _) => { }).SetErrorHandler((_, e) => errors.Add($"{e.Code} {e.Reason} fatal={e.IsFatal}")).Build();
        try
        {
            // Initialised on source; the switch moves writes to target, where the proxy maps the id.
            producer.InitTransactions(TimeSpan.FromSeconds(20));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var switched = await http.PostAsync(new Uri(proxy.AdminUri, "v1/families/orders/switch"),
                new StringContent("""{"write":"target","force":true,"reason":"transactional restart"}""", Encoding.UTF8, "application/json"));
            Assert.True(switched.IsSuccessStatusCode, await switched.Content.ReadAsStringAsync());

            producer.BeginTransaction();
            var sent = new List<Task<DeliveryResult<string, string>>>();
            for (var i = 0; i < 30; i++)
            {
                sent.Add(producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 5}", Value = $"before-{i}" }));
            }
            await Task.WhenAll(sent).WaitAsync(TimeSpan.FromSeconds(20));

            // Writes of the open transaction in flight on a slow target when the proxy dies.
            SetRtt(fixture.Target, 2000);
            for (var i = 0; i < 30; i++)
            {
                sent.Add(producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 5}", Value = $"in-flight-{i}" }));
            }
            await Task.Delay(700);
            await proxy.StopAsync(new CancellationToken(canceled: true));
            await proxy.DisposeAsync();
            proxy = null!;
            SetRtt(fixture.Target, 0);

            restarted = await fixture.StartProxyAsync(overrides, new CapturingLoggerProvider());
            for (var i = 0; i < 30; i++)
            {
                sent.Add(producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 5}", Value = $"after-{i}" }));
            }
            var results = await Task.WhenAll(sent).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
            await Task.Run(() => producer.CommitTransaction(TimeSpan.FromSeconds(30)));

            var committed = ReadCommitted(fixture.Target, topic);
            output.WriteLine($"{results.Length} delivered, {committed.Count} committed on target, {errors.Count} transient producer errors");
            Assert.DoesNotContain(errors, e => e.EndsWith("fatal=True", StringComparison.Ordinal));
            Assert.Equal(results.Select(r => r.Message.Value).Order(), committed.Order());
            Assert.Empty(ReadCommitted(fixture.Source, topic));
        }
        finally
        {
            SetRtt(fixture.Target, 0);
            foreach (var host in new[] { proxy, restarted })
            {
                if (host is not null)
                {
                    await host.DisposeAsync();
                }
            }
            if (Directory.Exists(stateDirectory))
            {
                Directory.Delete(stateDirectory, recursive: true);
            }
        }
    }

    /// <summary>Committed values of a topic, read straight from a cluster up to each partition's end (transaction markers included).</summary>
    private static List<string> ReadCommitted(MockKafkaCluster cluster, string topic)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = $"direct-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 50,
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnablePartitionEof = true,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Assign(Enumerable.Range(0, ProxyFixture.Partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var values = new List<string>();
        var remaining = Enumerable.Range(0, ProxyFixture.Partitions).ToHashSet();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (remaining.Count > 0 && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                remaining.Remove(result.Partition.Value);
                continue;
            }
            values.Add(result.Message.Value);
        }
        Assert.True(remaining.Count == 0, $"could not read {topic} to its end on {cluster}");
        return values;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string failure)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            await Task.Delay(50);
        }
    }

    private static void SetRtt(MockKafkaCluster cluster, int rttMs)
    {
        foreach (var broker in cluster.BrokerIds)
        {
            cluster.SetBrokerRtt(broker, rttMs);
        }
    }
}
