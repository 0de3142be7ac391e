using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Fleet;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Tests.Faults;
using Switchback.Proxy.Tests.Integration;
using Switchback.Proxy.Tests.Switching;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// A fleet member that dies as a crash would: instance p3 runs as a child process (<c>switchback run</c>) and is
/// killed with SIGKILL, so it leaves no LeaveGroup, no abort and no flush behind, while p1 and p2 run in the test
/// process. A switch that p3 holds up completes once the group has expelled it, a producer whose instance died
/// retries its unanswered writes through another instance under the same upstream producer id, epoch and sequence,
/// and a transactional producer whose instance died in the middle of a transaction commits it through another one.
/// </summary>
public sealed class FleetKillTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task KillDuringHold_SwitchCompletesAfterItsMembershipExpiresOrAborts_SurvivorsLoseNothing()
    {
        await using var rig = await FleetRig.StartAsync(instances: 2);
        using var log = new ControlTopicTail(rig.Source, FleetRig.ControlTopic);
        var deliveries = new ConcurrentQueue<(string Key, string Value, string? Error)>();
        var errors = new ConcurrentQueue<string>();
        using var stopProducing = new CancellationTokenSource();
        Task[] producers = [];
        ProxyProcess? p3 = null;
        try
        {
            p3 = await ProxyProcess.StartAsync(rig.Settings("p3"), StartTimeout);
            await FleetSwitchTests.WaitForAsync(() => FleetIs(rig, "p1", "p2", "p3"), "p1 and p2 see p3 in the fleet and route again");

            // A transaction through p3 that never ends: p3 cannot drain the family, so it can never answer the prepare.
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, p3.BootstrapPort);
            await using var transaction = new NetworkStream(socket, ownsSocket: false);
            await BeginTransactionAsync(transaction, $"orders-tx-{Guid.NewGuid():N}");

            // Idempotent producers through the instances that survive.
            producers = [.. new[] { "p1", "p2" }.Select((id, index) => Task.Run(() =>
                FleetSwitchTests.Produce(rig[id].BootstrapServers, index, deliveries, errors, stopProducing.Token)))];
            await FleetSwitchTests.WaitForAsync(() => deliveries.Select(d => d.Key[..d.Key.IndexOf('-', StringComparison.Ordinal)]).Distinct().Count() == producers.Length,
                "every producer acknowledged");
            var before = deliveries.Count;
            await FleetSwitchTests.WaitForAsync(() => deliveries.Count > before + 500, "steady load");

            // When p1's view of the group lost p3.
            var clock = Stopwatch.StartNew();
            var liveness = rig["p1"].Services.GetRequiredService<FleetCoordinator>().Liveness;
            long p3LeftViewAtMs = -1;
            void OnMembershipChanged()
            {
                if (!liveness.LiveInstances.Contains("p3"))
                {
                    Interlocked.CompareExchange(ref p3LeftViewAtMs, clock.ElapsedMilliseconds, -1);
                }
            }
            liveness.Changed += OnMembershipChanged;
            AdminAnswer answer;
            string switchId;
            long killedAtMs;
            long answeredAtMs;
            try
            {
                var switching = rig.PostAsync("p1", "v1/families/orders/switch", new { write = "target", force = true, timeoutMs = 30_000, reason = "kill during hold" });
                await FleetSwitchTests.WaitForAsync(() => switching.IsCompleted || log.Records.OfType<PrepareRecord>().Any(p => p.Coordinator == "p1"), "the prepare in the log");
                switchId = log.Records.OfType<PrepareRecord>().FirstOrDefault(p => p.Coordinator == "p1")?.SwitchId ?? "";
                // The hold phase: p1 and p2 hold the family's writes and have drained them; p3 holds, but cannot drain.
                await FleetSwitchTests.WaitForAsync(() => switching.IsCompleted
                    || (WritesHeld(rig["p1"]) && WritesHeld(rig["p2"]) && Answers(log, switchId).Order(StringComparer.Ordinal).SequenceEqual(["p1 ready", "p2 ready"])),
                    "p1 and p2 hold the family and answered ready");
                if (switching.IsCompleted)
                {
                    Assert.Fail($"the switch was answered while p3 was alive and could not drain: {await switching}");
                }
                killedAtMs = clock.ElapsedMilliseconds;
                await p3.KillAsync();
                answer = await switching;
                answeredAtMs = clock.ElapsedMilliseconds;
            }
            finally
            {
                liveness.Changed -= OnMembershipChanged;
            }

            await log.CaughtUpAsync(TimeSpan.FromSeconds(30));
            var decision = log.Records.FirstOrDefault(r => r is CommitRecord c && c.SwitchId == switchId || r is AbortRecord a && a.SwitchId == switchId);
            var leftView = Interlocked.Read(ref p3LeftViewAtMs);
            output.WriteLine($"outcome: {answer}");
            output.WriteLine($"p3 killed at {killedAtMs} ms; p1's view lost p3 at {leftView} ms; the switch answered at {answeredAtMs} ms; decided by {decision}");
            output.WriteLine($"answers to the prepare: {string.Join(", ", Answers(log, switchId))}");
            Assert.DoesNotContain(Answers(log, switchId), a => a.StartsWith("p3", StringComparison.Ordinal));
            long[]? sourceEndsAtCommit = null;
            if (answer.Status == HttpStatusCode.OK)
            {
                // Committed without p3's answer: only once the group had expelled it.
                Assert.True(leftView >= killedAtMs && leftView <= answeredAtMs, $"answered 200 at {answeredAtMs} ms, but p1's view lost p3 at {leftView} ms");
                Assert.IsType<CommitRecord>(decision);
                Assert.All(rig.WriteRoutes(), r => Assert.Equal("target", r.Value));
                sourceEndsAtCommit = SwitchingRig.EndOffsets(rig.Source, FleetRig.Topic, rig.Partitions);
            }
            else
            {
                Assert.True(answer.Status == HttpStatusCode.ServiceUnavailable, answer.ToString());
                Assert.Contains("nothing changed", answer.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
                Assert.IsType<AbortRecord>(decision);
                Assert.All(rig.WriteRoutes(), r => Assert.Equal("source", r.Value));
            }

            var atAnswer = deliveries.Count;
            await FleetSwitchTests.WaitForAsync(() => deliveries.Count > atAnswer + 500, "writes go on after the answer");
            if (sourceEndsAtCommit is not null)
            {
                // Nothing of the family reached the old cluster after the commit.
                Assert.Equal(sourceEndsAtCommit, SwitchingRig.EndOffsets(rig.Source, FleetRig.Topic, rig.Partitions));
            }
            await stopProducing.CancelAsync();
            await Task.WhenAll(producers);

            Assert.True(errors.IsEmpty, $"producer errors: {string.Join("; ", errors.Take(5))}");
            var failed = deliveries.Where(d => d.Error is not null).ToList();
            Assert.True(failed.Count == 0, $"failed deliveries: {string.Join("; ", failed.Take(5).Select(f => f.Error))}");
            // Exactly once and in per-key order: source, then (after a commit) target.
            var stored = SwitchingRig.ReadAll(rig.Source, "source", FleetRig.Topic, rig.Partitions).Select(r => (Phase: 0, Record: r))
                .Concat(SwitchingRig.ReadAll(rig.Target, "target", FleetRig.Topic, rig.Partitions).Select(r => (Phase: 1, Record: r))).ToList();
            var duplicates = stored.GroupBy(s => (s.Record.Key, s.Record.Value)).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            Assert.True(duplicates.Count == 0, $"{duplicates.Count} duplicated: {string.Join("; ", duplicates.Take(5))}");
            Assert.Equal(deliveries.Count, stored.Count);
            foreach (var key in stored.GroupBy(s => s.Record.Key))
            {
                var sequences = key.OrderBy(s => s.Phase).ThenBy(s => s.Record.Offset).Select(s => int.Parse(s.Record.Value, CultureInfo.InvariantCulture)).ToList();
                Assert.True(sequences.SequenceEqual(Enumerable.Range(0, sequences.Count)), $"key {key.Key}: stored out of order or with gaps");
            }
            Assert.Equal(answer.Status == HttpStatusCode.OK, stored.Any(s => s.Phase == 1));
            output.WriteLine($"{deliveries.Count} acknowledged through p1 and p2, each stored once: {stored.Count(s => s.Phase == 0)} on source, {stored.Count(s => s.Phase == 1)} on target");
        }
        catch
        {
            WriteProcessOutput(p3);
            throw;
        }
        finally
        {
            await stopProducing.CancelAsync();
            await Task.WhenAll(producers).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
            if (p3 is not null)
            {
                await p3.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task ProducerRetriesThroughAnotherInstanceAfterItsInstanceDied_RecordStoredOnce()
    {
        await using var rig = await FleetRig.StartAsync(instances: 1);
        using var log = new ControlTopicTail(rig.Source, FleetRig.ControlTopic);
        var clientLog = new ConcurrentQueue<string>();
        var deliveries = new List<Task<DeliveryResult<string, string>>>();
        using var stopProducing = new CancellationTokenSource();
        var producing = Task.CompletedTask;
        ProxyProcess? p3 = null;
        string? statistics = null;
        try
        {
            p3 = await ProxyProcess.StartAsync(rig.Settings("p3"), StartTimeout);
            await FleetSwitchTests.WaitForAsync(() => FleetIs(rig, "p1", "p3"), "p1 sees p3 in the fleet and routes again");
            // Writes move first, so the producer below is mapped: its batches go to target under an upstream producer id.
            var switched = await rig.PostAsync("p1", "v1/families/orders/switch", new { write = "target", force = true, reason = "before the kill" });
            Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
            Assert.Equal("target", (await p3.GetAsync("v1/families/orders")).GetProperty("write").GetString());

            using var producer = new ProducerBuilder<string, string>(new ProducerConfig
            {
                BootstrapServers = p3.BootstrapServers,
                ClientId = "fleet-kill-producer",
                EnableIdempotence = true,
                Acks = Acks.All,
                LingerMs = 5,
                MessageTimeoutMs = 60_000,
                RetryBackoffMs = 100,
                ReconnectBackoffMaxMs = 500,
                // Once every broker it knows (p3's addresses) is down, bootstrap again: p1 answers.
                MetadataRecoveryStrategy = MetadataRecoveryStrategy.Rebootstrap,
                StatisticsIntervalMs = 100,
                Debug = "eos,broker,metadata",
            }).SetLogHandler((_, m) => clientLog.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {m.Level} {m.Facility} {m.Message}"))
            .SetStatisticsHandler((_, json) => Volatile.Write(ref statistics, json)).Build();
            producing = Task.Run(async () =>
            {
                for (var i = 0; !stopProducing.IsCancellationRequested; i++)
                {
                    lock (deliveries)
                    {
                        deliveries.Add(producer.ProduceAsync(FleetRig.Topic, new Message<string, string> { Key = $"k{i % 8}", Value = $"v-{i}" }));
                    }
                    await Task.Delay(10);
                }
            });
            await WaitForAcknowledgedAsync(deliveries, from: 0, count: 50, "the producer wrote nothing through p3");
            // p1 is a bootstrap server too, added only now: librdkafka bootstraps from a random one of its servers and
            // then uses the brokers the first answer named, so both from the start would route through p1 half the time.
            producer.AddBrokers(rig["p1"].BootstrapServers);
            var (before, _) = LearnedBrokers(Volatile.Read(ref statistics));
            output.WriteLine($"before the kill the producer's brokers are {string.Join(", ", before)}");
            Assert.All(before, port => Assert.True(p3.Owns(port), $"the producer's brokers are not all p3's: {string.Join(", ", before)}"));

            // Slow target down, so a write p3 relays is stored there but its answer comes late; kill p3 as soon as
            // such a write arrived (5 s leave room for a busy machine). The producer must retry it through p1.
            SetRtt(rig.Target, 5000);
            rig.Target.ClearTrackedRequests();
            rig.Target.StartRequestTracking();
            try
            {
                await FleetSwitchTests.WaitForAsync(() => rig.Target.GetTrackedRequests().Any(r => r.ApiKey == (short)ApiKey.Produce),
                    "target received a write after it slowed down");
                await p3.KillAsync();
            }
            finally
            {
                rig.Target.StopRequestTracking();
                rig.Target.ClearTrackedRequests();
                SetRtt(rig.Target, 0);
            }
            int atKill;
            lock (deliveries)
            {
                atKill = deliveries.Count;
            }
            await WaitForAcknowledgedAsync(deliveries, from: atKill, count: 50, "the producer wrote nothing through p1 after p3 died");
            await stopProducing.CancelAsync();
            await producing;
            Task<DeliveryResult<string, string>>[] all;
            lock (deliveries)
            {
                all = [.. deliveries];
            }
            var results = await Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds(90));
            Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
            var (after, clientProducer) = LearnedBrokers(Volatile.Read(ref statistics));
            output.WriteLine($"after the kill the producer's brokers are {string.Join(", ", after)}; its producer id {clientProducer}");
            Assert.All(after, port => Assert.False(p3.Owns(port), $"the producer's brokers are still p3's: {string.Join(", ", after)}"));

            // The mock cluster does not check an idempotent producer's sequences, so it stores a retry again where a
            // broker answers DUPLICATE_SEQUENCE_NUMBER and stores nothing. Apply the broker's rule here: a record
            // stored under a producer id, epoch and sequence already stored in its partition is one a broker refuses.
            var records = SwitchingRig.ReadAll(rig.Target, "target", FleetRig.Topic, rig.Partitions);
            var batches = await StoredBatches.ReadAsync(rig.Target, FleetRig.Topic, rig.Partitions);
            StoredBatch? BatchOf(StoredRecord record) =>
                batches.SingleOrDefault(b => b.Partition == record.Partition && b.BaseOffset <= record.Offset && record.Offset <= b.LastOffset);
            // A fetch of batch headers on a loaded machine can come back short of a record just read: read them again.
            for (var attempt = 0; attempt < 5 && records.Any(r => BatchOf(r) is null); attempt++)
            {
                batches = await StoredBatches.ReadAsync(rig.Target, FleetRig.Topic, rig.Partitions);
            }
            var sequences = new HashSet<(int, long, short, long)>();
            var stored = new List<(StoredRecord Record, StoredBatch Batch, bool Refused)>();
            foreach (var record in records)
            {
                var batch = BatchOf(record) ?? throw new InvalidOperationException($"no stored batch holds {record}");
                var sequence = (long)batch.BaseSequence + (record.Offset - batch.BaseOffset);
                stored.Add((record, batch, !sequences.Add((batch.Partition, batch.ProducerId, batch.ProducerEpoch, sequence))));
            }
            var kept = stored.Where(s => !s.Refused).Select(s => s.Record.Value).ToList();
            var refused = stored.Where(s => s.Refused).ToList();
            var duplicates = kept.GroupBy(v => v).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            output.WriteLine($"{results.Length} acknowledged, {stored.Count} stored on target, {refused.Count} of them retries a broker refuses as duplicates, {duplicates.Count} stored twice otherwise");
            var missing = results.Select(r => r.Message.Value).Except(kept).ToList();
            Assert.True(missing.Count == 0, $"acknowledged but missing: {string.Join(", ", missing.Take(10))}");
            Assert.True(duplicates.Count == 0, $"stored twice under different producer ids or sequences: {string.Join(", ", duplicates.Take(10))}");
            Assert.Equal(results.Length, kept.Count);
            Assert.True(refused.Count > 0, "no write in flight when p3 died was retried through p1: the test did not exercise the kill");
            Assert.DoesNotContain(SwitchingRig.ReadAll(rig.Source, "source", FleetRig.Topic, rig.Partitions), r => r.Key.StartsWith('k'));

            // The retries went out under the mapping p3 made and shared; p1 made none of its own for those partitions.
            await log.CaughtUpAsync(TimeSpan.FromSeconds(30));
            var mappings = log.Records.OfType<ProducerMappingRecord>().Where(m => m.Entry.Topic == FleetRig.Topic).ToList();
            foreach (var mapping in mappings)
            {
                output.WriteLine($"mapping by {mapping.Instance}: client {mapping.Entry.ProducerId}/{mapping.Entry.ProducerEpoch} partition {mapping.Entry.Partition} -> upstream {mapping.Entry.UpstreamProducerId}/{mapping.Entry.UpstreamEpoch} from sequence {mapping.Entry.BaseSequence}");
            }
            foreach (var retry in refused.GroupBy(r => r.Record.Partition))
            {
                var shared = Assert.Single(mappings, m => m.Instance == "p3" && m.Entry.Partition == retry.Key);
                Assert.Equal(clientProducer, shared.Entry.ProducerId);
                Assert.All(retry, r => Assert.Equal((shared.Entry.UpstreamProducerId, shared.Entry.UpstreamEpoch), (r.Batch.ProducerId, r.Batch.ProducerEpoch)));
                Assert.DoesNotContain(mappings, m => m.Instance == "p1" && m.Entry.Partition == retry.Key);
                output.WriteLine($"partition {retry.Key}: {retry.Count()} records retried through p1 under p3's upstream producer {shared.Entry.UpstreamProducerId}/{shared.Entry.UpstreamEpoch}, sequences {string.Join(", ", retry.Select(r => r.Batch.BaseSequence).Distinct())}");
            }
        }
        catch
        {
            WriteProcessOutput(p3);
            foreach (var line in clientLog)
            {
                output.WriteLine(line);
            }
            throw;
        }
        finally
        {
            await stopProducing.CancelAsync();
            await producing.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
            SetRtt(rig.Target, 0);
            if (p3 is not null)
            {
                await p3.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task TransactionalProducerWhoseInstanceDiedMidTransaction_CommitsItThroughAnother_UnderTheSharedMapping()
    {
        await using var rig = await FleetRig.StartAsync(instances: 1);
        using var log = new ControlTopicTail(rig.Source, FleetRig.ControlTopic);
        const string transactionalId = "orders-fleet-txn";
        var clientLog = new ConcurrentQueue<string>();
        ProxyProcess? p3 = null;
        var timeout = TimeSpan.FromSeconds(60);
        try
        {
            p3 = await ProxyProcess.StartAsync(rig.Settings("p3"), StartTimeout);
            await FleetSwitchTests.WaitForAsync(() => FleetIs(rig, "p1", "p3"), "p1 sees p3 in the fleet and routes again");
            IProducer<string, string> TransactionalProducer(string bootstrapServers, string clientId) =>
                new ProducerBuilder<string, string>(new ProducerConfig
                {
                    BootstrapServers = bootstrapServers,
                    ClientId = clientId,
                    TransactionalId = transactionalId,
                    TransactionTimeoutMs = 60_000,
                    LingerMs = 5,
                    ReconnectBackoffMaxMs = 500,
                    MetadataRecoveryStrategy = MetadataRecoveryStrategy.Rebootstrap,
                    Debug = "eos,broker",
                }).SetLogHandler((_, m) => clientLog.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {clientId} {m.Level} {m.Facility} {m.Message}")).Build();
            async Task WriteAsync(IProducer<string, string> producer, int transaction, bool commit = true)
            {
                producer.BeginTransaction();
                for (var i = 0; i < 8; i++)
                {
                    await producer.ProduceAsync(FleetRig.Topic, new Message<string, string> { Key = $"k{i}", Value = $"t{transaction}-{i}" });
                }
                if (commit)
                {
                    producer.CommitTransaction(timeout);
                }
            }

            using (var producer = TransactionalProducer(p3.BootstrapServers, "fleet-transactional"))
            {
                // Initialised through p3 while the family writes to source; then its writes move, so its next
                // transactions run on target under a producer id p3 initialises there for it (and shares).
                producer.InitTransactions(timeout);
                await WriteAsync(producer, 1);
                var switched = await rig.PostAsync("p1", "v1/families/orders/switch", new { write = "target", force = true, reason = "before the kill" });
                Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
                await WriteAsync(producer, 2);
                // Transaction 3 is written through p3 and still open when p3 dies.
                await WriteAsync(producer, 3, commit: false);
                await p3.KillAsync();

                // The client finds its coordinator again through p1 (a bootstrap server from now on): p1's brokers
                // have ids of their own, so to librdkafka this is a coordinator change, not the dead coordinator at a
                // new address. p1 must know from the fleet that the transaction is open on target under p3's mapping.
                producer.AddBrokers(rig["p1"].BootstrapServers);
                producer.CommitTransaction(timeout);
                // And it goes on through p1 under the same mapping and sequence bases.
                await WriteAsync(producer, 4);
            }

            var target = SwitchingRig.ReadAll(rig.Target, "target", FleetRig.Topic, rig.Partitions).Where(r => r.Value.StartsWith('t')).ToList();
            string[] expected = [.. Enumerable.Range(2, 3).SelectMany(t => Enumerable.Range(0, 8).Select(i => $"t{t}-{i}"))];
            Assert.Equal(expected.Order(StringComparer.Ordinal), target.Select(r => r.Value).Order(StringComparer.Ordinal));
            Assert.Equal(Enumerable.Range(0, 8).Select(i => $"t1-{i}"),
                SwitchingRig.ReadAll(rig.Source, "source", FleetRig.Topic, rig.Partitions).Select(r => r.Value).Order(StringComparer.Ordinal));

            // Transactions 2, 3 and 4 went under the one mapping p3 made; p1 made none of its own.
            await log.CaughtUpAsync(TimeSpan.FromSeconds(30));
            var mappings = log.Records.OfType<TransactionalIdRecord>().Where(r => r.Entry is Proxy.Switching.TransactionMappingEntry).ToList();
            var mapping = (Proxy.Switching.TransactionMappingEntry)Assert.Single(mappings, r => r.Instance == "p3").Entry;
            Assert.DoesNotContain(mappings, r => r.Instance == "p1");
            var batches = await StoredBatches.ReadAsync(rig.Target, FleetRig.Topic, rig.Partitions);
            var mapped = batches.Where(b => (b.ProducerId, b.ProducerEpoch) == (mapping.ProducerId, mapping.Epoch)).ToList();
            Assert.Equal(24, target.Count(r => mapped.Any(b => b.Partition == r.Partition && b.BaseOffset <= r.Offset && r.Offset <= b.LastOffset)));
        }
        catch
        {
            WriteProcessOutput(p3);
            foreach (var line in clientLog)
            {
                output.WriteLine(line);
            }
            throw;
        }
        finally
        {
            if (p3 is not null)
            {
                await p3.DisposeAsync();
            }
        }
    }

    /// <summary>True when every in-process instance is unfenced and its view of the group is exactly <paramref name="instances"/>.</summary>
    private static bool FleetIs(FleetRig rig, params string[] instances) =>
        rig.Instances.Values.All(host => host.Services.GetRequiredService<FleetCoordinator>() is { IsFenced: false } fleet
            && fleet.Liveness.LiveInstances.Order(StringComparer.Ordinal).SequenceEqual(instances));

    private static bool WritesHeld(ProxyHost host) => host.State.Traffic.For(FleetRig.Family).Writes.IsHeld;

    /// <summary>The members' answers to a prepare in the log ("p1 ready", "p3 refuse"...).</summary>
    private static IEnumerable<string> Answers(ControlTopicTail log, string switchId) =>
        log.Records.Select(r => r switch
        {
            ReadyRecord ready when ready.SwitchId == switchId => $"{ready.Instance} ready",
            RefuseRecord refuse when refuse.SwitchId == switchId => $"{refuse.Instance} refuse",
            _ => null,
        }).OfType<string>();

    /// <summary>InitProducerId, then AddPartitionsToTxn on the family's topic: a transaction open for ten minutes.</summary>
    private static async Task BeginTransactionAsync(Stream stream, string transactionalId)
    {
        var timeout = TimeSpan.FromSeconds(20);
        var init = await WireExchange.ExchangeAsync<InitProducerIdResponse>(stream, ApiKey.InitProducerId, 1,
            new InitProducerIdRequest { TransactionalId = transactionalId, TransactionTimeoutMs = 600_000 }, "never-ending-transaction", timeout);
        Assert.Equal(0, init.ErrorCode);
        var added = await WireExchange.ExchangeAsync<AddPartitionsToTxnResponse>(stream, ApiKey.AddPartitionsToTxn, 1, new AddPartitionsToTxnRequest
        {
            V3AndBelowTransactionalId = transactionalId,
            V3AndBelowProducerId = init.ProducerId,
            V3AndBelowProducerEpoch = init.ProducerEpoch,
            V3AndBelowTopics = [new() { Name = FleetRig.Topic, Partitions = [0] }],
        }, "never-ending-transaction", timeout);
        Assert.All(added.ResultsByTopicV3AndBelow.SelectMany(t => t.ResultsByPartition), p => Assert.Equal(0, p.PartitionErrorCode));
    }

    /// <summary>Waits until the <paramref name="count"/> writes produced from index <paramref name="from"/> on are all acknowledged.</summary>
    private static Task WaitForAcknowledgedAsync(List<Task<DeliveryResult<string, string>>> deliveries, int from, int count, string failure) =>
        FleetSwitchTests.WaitForAsync(() =>
        {
            lock (deliveries)
            {
                return deliveries.Count >= from + count && deliveries.Skip(from).Take(count).All(d => d.IsCompletedSuccessfully);
            }
        }, failure);

    /// <summary>The ports of the brokers a librdkafka client learnt from metadata, and its idempotent producer id, from its statistics.</summary>
    private static (List<int> Ports, long ProducerId) LearnedBrokers(string? statistics)
    {
        Assert.NotNull(statistics);
        using var document = JsonDocument.Parse(statistics);
        var ports = document.RootElement.GetProperty("brokers").EnumerateObject().Select(b => b.Value)
            .Where(b => b.GetProperty("source").GetString() == "learned")
            .Select(b => int.Parse(b.GetProperty("nodename").GetString()!.Split(':')[1], CultureInfo.InvariantCulture)).Order().ToList();
        Assert.NotEmpty(ports);
        return (ports, document.RootElement.GetProperty("eos").GetProperty("producer_id").GetInt64());
    }

    private static void SetRtt(MockKafkaCluster cluster, int rttMs)
    {
        foreach (var broker in cluster.BrokerIds)
        {
            cluster.SetBrokerRtt(broker, rttMs);
        }
    }

    private void WriteProcessOutput(ProxyProcess? process)
    {
        if (process is null)
        {
            return;
        }
        output.WriteLine($"--- p3 (pid {process.Id}) output:");
        foreach (var line in process.Output)
        {
            output.WriteLine(line);
        }
    }
}
