using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.DependencyInjection;
using Switchback.Proxy.Fleet;
using Switchback.Proxy.Tests.Switching;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// Three proxy instances over two mock clusters, coordinated through the control topic: one admin call on any
/// instance switches the whole fleet, and no instance routes the family's writes to the old cluster once the switch
/// has committed.
/// </summary>
public sealed class FleetSwitchTests(ITestOutputHelper output)
{
    private const int KeysPerProducer = 8;

    [Fact]
    public async Task WriteSwitchOnOneInstance_RollbackOnAnother_UnderLoad_NoLossNoDuplicateOrderKept_NothingOnTheOldClusterAfterTheCommit()
    {
        await using var rig = await FleetRig.StartAsync();
        var deliveries = new ConcurrentQueue<(string Key, string Value, string? Error)>();
        var errors = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        // One idempotent producer bootstrapped to each instance.
        var producers = rig.Instances.Keys.Order(StringComparer.Ordinal).Select((id, index) =>
            Task.Run(() => Produce(rig[id].BootstrapServers, index, deliveries, errors, stop.Token))).ToArray();

        await WaitForAsync(() => deliveries.Select(d => d.Key[..d.Key.IndexOf('-', StringComparison.Ordinal)]).Distinct().Count() == producers.Length,
            "every producer acknowledged");
        var before = deliveries.Count;
        await WaitForAsync(() => deliveries.Count > before + 500, "steady load");

        var switched = await rig.PostAsync("p2", "v1/families/orders/switch", new { write = "target", force = true, reason = "fleet test" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        // A 200 means every live member routes by the new table.
        Assert.All(rig.WriteRoutes(), r => Assert.Equal("target", r.Value));
        var sourceEndsAtCommit = SwitchingRig.EndOffsets(rig.Source, FleetRig.Topic, rig.Partitions);

        var atSwitch = deliveries.Count;
        await WaitForAsync(() => deliveries.Count > atSwitch + 1000, "writes on target");
        // Nothing of the family reached the old cluster after the commit, from any instance.
        Assert.Equal(sourceEndsAtCommit, SwitchingRig.EndOffsets(rig.Source, FleetRig.Topic, rig.Partitions));

        var rolledBack = await rig.PostAsync("p3", "v1/families/orders/rollback", new { reason = "fleet test" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.All(rig.WriteRoutes(), r => Assert.Equal("source", r.Value));
        var targetEndsAtCommit = SwitchingRig.EndOffsets(rig.Target, FleetRig.Topic, rig.Partitions);
        var atRollback = deliveries.Count;
        await WaitForAsync(() => deliveries.Count > atRollback + 1000, "writes back on source");
        Assert.Equal(targetEndsAtCommit, SwitchingRig.EndOffsets(rig.Target, FleetRig.Topic, rig.Partitions));
        await stop.CancelAsync();
        await Task.WhenAll(producers);

        output.WriteLine($"{deliveries.Count} produced; switch {switched.Body.GetProperty("pauseMs")} ms, rollback {rolledBack.Body.GetProperty("pauseMs")} ms");
        Assert.True(errors.IsEmpty, $"producer errors: {string.Join("; ", errors.Take(5))}");
        var failed = deliveries.Where(d => d.Error is not null).ToList();
        Assert.True(failed.Count == 0, $"failed deliveries: {string.Join("; ", failed.Take(5).Select(f => f.Error))}");

        // Exactly once and in per-key order: source before the switch, then target, then source after the rollback.
        var source = SwitchingRig.ReadAll(rig.Source, "source", FleetRig.Topic, rig.Partitions);
        var target = SwitchingRig.ReadAll(rig.Target, "target", FleetRig.Topic, rig.Partitions);
        var stored = source.Select(r => (Phase: r.Offset < sourceEndsAtCommit[r.Partition] ? 0 : 2, Record: r))
            .Concat(target.Select(r => (Phase: 1, Record: r))).ToList();
        var duplicates = stored.GroupBy(s => (s.Record.Key, s.Record.Value)).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, $"{duplicates.Count} duplicated: {string.Join("; ", duplicates.Take(5))}");
        Assert.Equal(deliveries.Count, stored.Count);
        foreach (var key in stored.GroupBy(s => s.Record.Key))
        {
            var sequences = key.OrderBy(s => s.Phase).ThenBy(s => s.Record.Offset).Select(s => int.Parse(s.Record.Value, CultureInfo.InvariantCulture)).ToList();
            Assert.True(sequences.SequenceEqual(Enumerable.Range(0, sequences.Count)), $"key {key.Key}: stored out of order or with gaps");
        }
        Assert.All(new[] { 0, 1, 2 }, phase => Assert.Contains(stored, s => s.Phase == phase));
    }

    [Fact]
    public async Task NewInstance_StartedAfterSeveralSwitches_ServesTheCurrentRoutesFromItsFirstRequest()
    {
        await using var rig = await FleetRig.StartAsync(instances: 2);
        foreach (var (instance, body) in new (string, object)[]
        {
            ("p1", new { write = "target", force = true }),
            ("p2", new { read = "target", force = true }),
            ("p1", new { write = "source", force = true }),
            ("p2", new { write = "target", force = true }),
        })
        {
            var answer = await rig.PostAsync(instance, "v1/families/orders/switch", body);
            Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        }

        var late = await rig.StartInstanceAsync("p3");
        var route = late.State.Routes.Current.Find(FleetRig.Family)!;
        Assert.Equal(("target", "target", 4L), (route.Route.Write, route.Route.Read, route.Epoch));
        // Its first produce lands on target.
        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = late.BootstrapServers, EnableIdempotence = true })
            .SetLogHandler(static (_, _) => { }).Build())
        {
            var delivered = await producer.ProduceAsync(FleetRig.Topic, new Message<string, string> { Key = "late", Value = "first" });
            Assert.Equal(PersistenceStatus.Persisted, delivered.Status);
        }
        Assert.Contains(SwitchingRig.ReadAll(rig.Target, "target", FleetRig.Topic, rig.Partitions), r => r.Key == "late");
        Assert.DoesNotContain(SwitchingRig.ReadAll(rig.Source, "source", FleetRig.Topic, rig.Partitions), r => r.Key == "late");

        var fleet = await rig.GetAsync("p3", "v1/fleet");
        Assert.True(fleet.Status == HttpStatusCode.OK, fleet.ToString());
        var members = fleet.Body.GetProperty("members").EnumerateArray().Where(m => m.GetProperty("live").GetBoolean())
            .Select(m => m.GetProperty("id").GetString()).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["p1", "p2", "p3"], members);
    }

    [Fact]
    public async Task InstanceCutOffFromTheControlCluster_StopsRoutingWritesBeforeTheOthersCommit_ThenRejoinsOnTheNewRoute()
    {
        await using var rig = await FleetRig.StartAsync(controlBehindRelay: true);
        var deliveries = new ConcurrentQueue<(string Key, string Value, string? Error)>();
        var errors = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        // Producers through p1 (which stays) and p3 (which is cut off).
        var producers = new[] { ("p1", 0), ("p3", 2) }
            .Select(p => Task.Run(() => Produce(rig[p.Item1].BootstrapServers, p.Item2, deliveries, errors, stop.Token))).ToArray();
        await WaitForAsync(() => deliveries.Count(d => d.Key.StartsWith("p0-", StringComparison.Ordinal)) > 200
            && deliveries.Count(d => d.Key.StartsWith("p2-", StringComparison.Ordinal)) > 200, "both producers going");

        var cutOff = rig["p3"].Services.GetRequiredService<FleetCoordinator>();
        rig.Relay!.Cut(FleetRig.FleetClientId("p3"));
        var switched = await rig.PostAsync("p1", "v1/families/orders/switch", new { write = "target", force = true, timeoutMs = 60_000, reason = "cut off" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        Assert.Equal("target", rig["p1"].State.Routes.Current.Find(FleetRig.Family)!.Route.Write);
        Assert.Equal("target", rig["p2"].State.Routes.Current.Find(FleetRig.Family)!.Route.Write);

        // The cut-off instance fenced itself before the commit was appended (same machine, same clock).
        var commitAppended = ReadCommitTimes(rig.Control!).Single();
        Assert.True(cutOff.FencedSince is { } fenced && fenced < commitAppended,
            $"p3 fenced at {cutOff.FencedSince:O}, commit appended at {commitAppended:O}");
        var sourceEndsAtCommit = SwitchingRig.EndOffsets(rig.Source, FleetRig.Topic, rig.Partitions);
        // While cut off it routes nothing of the family to the old cluster, though its producer keeps sending.
        var onTarget = deliveries.Count;
        await WaitForAsync(() => deliveries.Count > onTarget + 500, "p1's producer on target");
        Assert.Equal(sourceEndsAtCommit, SwitchingRig.EndOffsets(rig.Source, FleetRig.Topic, rig.Partitions));

        rig.Relay.Heal(FleetRig.FleetClientId("p3"));
        await WaitForAsync(() => !cutOff.IsFenced && rig["p3"].State.Routes.Current.Find(FleetRig.Family)!.Route.Write == "target", "p3 back on the new route");
        var healed = deliveries.Count(d => d.Key.StartsWith("p2-", StringComparison.Ordinal));
        await WaitForAsync(() => deliveries.Count(d => d.Key.StartsWith("p2-", StringComparison.Ordinal)) > healed + 500, "p3's producer going again");
        await stop.CancelAsync();
        await Task.WhenAll(producers);

        Assert.Equal(sourceEndsAtCommit, SwitchingRig.EndOffsets(rig.Source, FleetRig.Topic, rig.Partitions));
        Assert.True(errors.IsEmpty, $"producer errors: {string.Join("; ", errors.Take(5))}");
        var failed = deliveries.Where(d => d.Error is not null).ToList();
        Assert.True(failed.Count == 0, $"failed deliveries: {string.Join("; ", failed.Take(5).Select(f => f.Error))}");
        var stored = SwitchingRig.ReadAll(rig.Source, "source", FleetRig.Topic, rig.Partitions).Select(r => (Phase: 0, Record: r))
            .Concat(SwitchingRig.ReadAll(rig.Target, "target", FleetRig.Topic, rig.Partitions).Select(r => (Phase: 1, Record: r))).ToList();
        Assert.Equal(deliveries.Count, stored.Count);
        foreach (var key in stored.GroupBy(s => s.Record.Key))
        {
            var sequences = key.OrderBy(s => s.Phase).ThenBy(s => s.Record.Offset).Select(s => int.Parse(s.Record.Value, CultureInfo.InvariantCulture)).ToList();
            Assert.True(sequences.SequenceEqual(Enumerable.Range(0, sequences.Count)), $"key {key.Key}: stored out of order, with gaps or twice");
        }
    }

    [Fact]
    public async Task ControlTopicAndFleetGroups_AreNotOpenToClients()
    {
        await using var rig = await FleetRig.StartAsync(instances: 1);
        var bootstrap = rig["p1"].BootstrapServers;
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).SetLogHandler(static (_, _) => { }).Build();
        var metadata = admin.GetMetadata(TimeSpan.FromSeconds(20));
        Assert.Contains(metadata.Topics, t => t.Topic == FleetRig.Topic);
        Assert.DoesNotContain(metadata.Topics, t => t.Topic == FleetRig.ControlTopic);
        // Produce and Fetch find no such topic either: the proxy's views leave it out.
        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrap, MessageTimeoutMs = 3000 })
            .SetLogHandler(static (_, _) => { }).Build())
        {
            var forged = await Assert.ThrowsAsync<ProduceException<string, string>>(() =>
                producer.ProduceAsync(FleetRig.ControlTopic, new Message<string, string> { Key = "route/orders", Value = "forged" }));
            Assert.NotEqual(PersistenceStatus.Persisted, forged.DeliveryResult.Status);
        }

        // A client joining the fleet's group could pose as an instance: its coordinator lookup is refused.
        var refused = new TaskCompletionSource<Error>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = $"{FleetRig.ControlTopic}-fleet" })
            .SetErrorHandler((_, e) => refused.TrySetResult(e)).SetLogHandler(static (_, _) => { }).Build();
        consumer.Subscribe(FleetRig.Topic);
        using var polling = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var poll = Task.Run(() =>
        {
            while (!polling.IsCancellationRequested && !refused.Task.IsCompleted)
            {
                try
                {
                    consumer.Consume(TimeSpan.FromMilliseconds(100));
                }
                catch (ConsumeException e)
                {
                    refused.TrySetResult(e.Error); // librdkafka hands a group's authorization error to the application here
                }
            }
        });
        var error = await refused.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await polling.CancelAsync();
        await poll;
        Assert.Equal(ErrorCode.GroupAuthorizationFailed, error.Code);

        // Requests naming several groups are refused for the fleet's group too, entry by entry; the others are answered.
        var fleetGroup = $"{FleetRig.ControlTopic}-fleet";
        var described = await Assert.ThrowsAsync<DescribeConsumerGroupsException>(() =>
            admin.DescribeConsumerGroupsAsync([fleetGroup, "orders-someone"], new DescribeConsumerGroupsOptions { RequestTimeout = TimeSpan.FromSeconds(20) }));
        var descriptions = described.Results.ConsumerGroupDescriptions;
        Assert.Equal(ErrorCode.GroupAuthorizationFailed, descriptions.Single(r => r.GroupId == fleetGroup).Error.Code);
        // (the mock knows no such group: whatever it answers, it is not the proxy's refusal)
        Assert.NotEqual(ErrorCode.GroupAuthorizationFailed, descriptions.Single(r => r.GroupId == "orders-someone").Error.Code);
        var deleted = await Assert.ThrowsAsync<DeleteGroupsException>(() =>
            admin.DeleteGroupsAsync([fleetGroup], new DeleteGroupsOptions { RequestTimeout = TimeSpan.FromSeconds(20) }));
        Assert.Equal(ErrorCode.GroupAuthorizationFailed, deleted.Results.Single().Error.Code);
        // The instance itself is unharmed: still the fleet's only member, routing.
        Assert.False(rig["p1"].Services.GetRequiredService<FleetCoordinator>().IsFenced);
    }

    /// <summary>When each commit record was appended to the control topic (its timestamp), read directly.</summary>
    private static List<DateTimeOffset> ReadCommitTimes(Switchback.Proxy.Demo.MockKafkaCluster control)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = control.BootstrapServers,
            GroupId = $"reader-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Assign(new TopicPartitionOffset(FleetRig.ControlTopic, 0, Offset.Beginning));
        var times = new List<DateTimeOffset>();
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is not { } result)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                return times;
            }
            if (result.Message.Value.Contains("\"kind\":\"commit\"", StringComparison.Ordinal))
            {
                times.Add(result.Message.Timestamp.UtcDateTime);
            }
        }
        throw new TimeoutException("could not read the control topic to its end");
    }

    /// <summary>One idempotent producer's load until <paramref name="stop"/>: a record for each of its keys every 5 ms, values counting up per key.</summary>
    internal static void Produce(string bootstrapServers, int index, ConcurrentQueue<(string Key, string Value, string? Error)> deliveries,
        ConcurrentQueue<string> errors, CancellationToken stop)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            ClientId = $"fleet-load-{index}",
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 2,
            MessageTimeoutMs = 60_000,
        }).SetErrorHandler((_, e) => errors.Enqueue($"{(e.IsFatal ? "FATAL " : "")}{e.Code}: {e.Reason}"))
        .SetLogHandler(static (_, _) => { }).Build();
        var clock = Stopwatch.StartNew();
        var next = TimeSpan.Zero;
        for (var sequence = 0; !stop.IsCancellationRequested; sequence++)
        {
            for (var k = 0; k < KeysPerProducer; k++)
            {
                var key = $"p{index}-k{k}";
                var value = sequence.ToString(CultureInfo.InvariantCulture);
                producer.Produce(FleetRig.Topic, new Message<string, string> { Key = key, Value = value }, report =>
                    deliveries.Enqueue((key, value, report.Error.IsError ? $"{report.Error.Code}: {report.Error.Reason}" : null)));
            }
            next += TimeSpan.FromMilliseconds(5);
            var wait = next - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                Thread.Sleep(wait);
            }
        }
        producer.Flush(TimeSpan.FromSeconds(60));
    }

    internal static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"not reached in 90 s: {what}");
            await Task.Delay(20);
        }
    }
}
