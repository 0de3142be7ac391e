using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Confluent.Kafka;
using Switchback.Proxy.Scorecard;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Tests.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Scorecard;

/// <summary>A dry-run switch holds and drains the family for real, then releases it to its unchanged route.</summary>
public sealed class RehearsalTests
{
    [Fact]
    public async Task DryRun_HoldsAndReleases_RouteEpochAndStateUnchanged_ProducersKeepWorking_RehearsalTurnsGreen()
    {
        await using var rig = await SwitchingRig.StartAsync();
        await ScorecardRig.CommitAsync(rig.BootstrapServers, "orders-rehearsed", 0, 0);
        var before = await rig.UntilGateAsync(ScorecardGates.ClientRouting, GateStatus.Unknown);
        Assert.Contains("not rehearsed", before.Summary, StringComparison.Ordinal);
        var routesFile = Path.Combine(rig.StateDirectory, "routes.json");
        var routesBefore = File.Exists(routesFile) ? await File.ReadAllTextAsync(routesFile) : null;

        var acknowledged = new ConcurrentQueue<int>();
        var errors = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var producing = Task.Run(() => Produce(rig.BootstrapServers, acknowledged, errors, stop.Token));
        await UntilAsync(() => acknowledged.Count >= 100, "100 records acknowledged before the rehearsal");

        // Forced: the load makes target lag source, and the rehearsal is of the hold, not of the gates.
        var answer = await rig.SwitchAsync(new { write = "target", read = "target", dryRun = true, force = true, reason = "rehearse" });

        Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        Assert.True(answer.Body.GetProperty("dryRun").GetBoolean());
        Assert.False(answer.Body.GetProperty("changed").GetBoolean());
        Assert.Equal(("source", "source", 0L), (answer.Body.GetProperty("write").GetString(), answer.Body.GetProperty("read").GetString(), answer.Body.GetProperty("epoch").GetInt64()));
        Assert.Equal("target", answer.Body.GetProperty("wouldSwitchTo").GetProperty("write").GetString());
        var pauseMs = answer.Body.GetProperty("pauseMs").GetDouble();
        Assert.True(pauseMs >= 0);
        var copied = Assert.Single(answer.Body.GetProperty("wouldCopy").GetProperty("offsets").EnumerateArray());
        Assert.Equal(("orders-rehearsed", 1), (copied.GetProperty("group").GetString(), copied.GetProperty("partitions").GetInt32()));
        Assert.Equal(1, answer.Body.GetProperty("wouldCopy").GetProperty("producersRemapped").GetInt32());

        // Producers go on, to source.
        var atRelease = acknowledged.Count;
        await UntilAsync(() => acknowledged.Count >= atRelease + 100, "100 more records acknowledged after the rehearsal");
        var after = await rig.UntilGateAsync(ScorecardGates.ClientRouting, GateStatus.Green);
        Assert.Contains("rehearsed at", after.Summary, StringComparison.Ordinal);
        Assert.Contains("1 producer(s), 0 consumer(s), 1 group(s); client software confluent-kafka-dotnet", after.Summary, StringComparison.Ordinal);
        await stop.CancelAsync();
        await producing;
        Assert.True(errors.IsEmpty, string.Join("; ", errors.Take(5)));
        Assert.Equal(0, rig.EndOffsets(rig.Target).Sum());
        Assert.True(rig.EndOffsets(rig.Source).Sum() >= acknowledged.Count);

        var family = await rig.FamilyAsync();
        Assert.Equal(("source", "source", 0L, "active"), (family.Body.GetProperty("write").GetString(), family.Body.GetProperty("read").GetString(),
            family.Body.GetProperty("epoch").GetInt64(), family.Body.GetProperty("state").GetString()));
        Assert.Equal("none", (await rig.WindowAsync()).Body.GetProperty("state").GetString());
        Assert.Equal(routesBefore, File.Exists(routesFile) ? await File.ReadAllTextAsync(routesFile) : null);

        var rehearsal = Assert.Single(new AuditLog(rig.StateDirectory).ReadAll());
        Assert.Equal(("rehearsal", "ok", "rehearse"), (rehearsal.Action, rehearsal.Outcome, rehearsal.Reason));
        Assert.Equal(Math.Round(pauseMs, 3), rehearsal.PauseMs);

        Assert.Equal(rehearsal.PauseMs, after.Evidence.GetProperty("rehearsal").GetProperty("pauseMs").GetDouble());
    }

    [Fact]
    public async Task DryRun_RefusedByAGate_Answers409_AuditedAsARefusedRehearsal()
    {
        await using var rig = await SwitchingRig.StartAsync();
        await SwitchingRig.ProduceDirectAsync(rig.Source, Enumerable.Range(0, 4).Select(i => (1, $"k{i}", $"v{i}")));

        var answer = await rig.SwitchAsync(new { write = "target", dryRun = true, reason = "rehearse lagging" });

        Assert.True(answer.Status == HttpStatusCode.Conflict, answer.ToString());
        Assert.True(answer.Body.GetProperty("dryRun").GetBoolean());
        Assert.Equal("data-parity-write", Assert.Single(answer.Body.GetProperty("failed").EnumerateArray()).GetProperty("gate").GetString());
        var entry = Assert.Single(new AuditLog(rig.StateDirectory).ReadAll());
        Assert.Equal(("rehearsal", "refused"), (entry.Action, entry.Outcome));
        await rig.UntilGateAsync(ScorecardGates.ClientRouting, GateStatus.Unknown, "not rehearsed");
    }

    [Fact]
    public async Task DryRun_ToTheCurrentRoute_IsABadRequest()
    {
        await using var rig = await SwitchingRig.StartAsync();
        var answer = await rig.SwitchAsync(new { write = "source", dryRun = true });
        Assert.True(answer.Status == HttpStatusCode.BadRequest, answer.ToString());
        Assert.Empty(new AuditLog(rig.StateDirectory).ReadAll());
    }

    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(25);
        }
    }

    private static void Produce(string bootstrap, ConcurrentQueue<int> acknowledged, ConcurrentQueue<string> errors, CancellationToken stop)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = bootstrap,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 2,
            MessageTimeoutMs = 30_000,
        }).SetErrorHandler((_, e) => errors.Enqueue($"{e.Code}: {e.Reason}")).SetLogHandler(static (_, _) => { }).Build();
        for (var sequence = 0; !stop.IsCancellationRequested; sequence++)
        {
            var value = sequence;
            producer.Produce(SwitchingRig.Topic, new Message<string, string> { Key = $"k{value % 4}", Value = value.ToString(CultureInfo.InvariantCulture) }, report =>
            {
                if (report.Error.IsError)
                {
                    errors.Enqueue($"{value}: {report.Error.Reason}");
                }
                else
                {
                    acknowledged.Enqueue(value);
                }
            });
            Thread.Sleep(2);
        }
        producer.Flush(TimeSpan.FromSeconds(30));
    }
}
