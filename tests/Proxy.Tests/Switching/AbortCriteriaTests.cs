using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Confluent.Kafka;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// <c>Families[].AbortWhen</c>: with writes switched to target and the window open, produce errors on target (the
/// mock's error injection) that last longer than <c>ForSeconds</c> make the proxy roll the family back by itself,
/// audited with the measurements, counted on <c>/metrics</c>; the producer's records all end up on source, once, in order.
/// </summary>
public sealed class AbortCriteriaTests(ITestOutputHelper output)
{
    private const int Keys = 8;
    private const short ProduceApi = 0;
    private const short NotEnoughReplicas = 19; // retriable: the producer retries, nothing is lost

    [Fact]
    public async Task ProduceErrorsOnTarget_LongerThanForSeconds_RollTheFamilyBackByItself_NothingLost()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 4, mirrorBack: true, settings: new Dictionary<string, string?>
        {
            ["Families:0:AbortWhen:ProduceErrorRatePercent"] = "20",
            ["Families:0:AbortWhen:ForSeconds"] = "3",
        });
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "cutover" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        var load = NewLoad();
        var (acknowledged, errors) = (load.Acknowledged, load.Errors);
        using var stop = new CancellationTokenSource();
        var producing = Task.Run(() => load.Run(rig.BootstrapServers, stop.Token));
        await UntilAsync(() => acknowledged.Count >= 300, TimeSpan.FromSeconds(60), "300 records acknowledged on target");

        // Healthy traffic for a while does not trip it.
        var family = await rig.FamilyAsync();
        Assert.Equal("target", family.Body.GetProperty("write").GetString());

        // Target starts refusing writes: every produce request fails, for far longer than ForSeconds if nothing acts.
        rig.Target.PushRequestErrors(ProduceApi, [.. Enumerable.Repeat(NotEnoughReplicas, 20_000)]);
        await UntilAsync(() => rig.AuditText().Contains("\"abort-criteria\"", StringComparison.Ordinal),
            TimeSpan.FromSeconds(90), "the family to roll back to source by itself");
        rig.Target.ClearRequestErrors(ProduceApi);
        Assert.Equal("source", (await rig.FamilyAsync()).Body.GetProperty("write").GetString());

        var audit = rig.AuditText().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var automatic = Assert.Single(audit, e => e.GetProperty("caller").GetString() == "abort-criteria");
        output.WriteLine(automatic.ToString());
        Assert.Equal("rollback", automatic.GetProperty("action").GetString());
        Assert.Equal("ok", automatic.GetProperty("outcome").GetString());
        var reason = automatic.GetProperty("reason").GetString()!;
        Assert.Contains("ProduceErrorRatePercent: produce error rate", reason, StringComparison.Ordinal);
        Assert.Contains("limit 20%", reason, StringComparison.Ordinal);

        using var http = new HttpClient();
        var metrics = await http.GetStringAsync($"{rig.AdminUrl}/metrics");
        Assert.Contains("switchback_automatic_rollbacks_total{family=\"orders\",outcome=\"ok\"} 1", metrics, StringComparison.Ordinal);
        Assert.Matches("switchback_error_answers_total\\{api=\"Produce\",family=\"orders\",error=\"NOT_ENOUGH_REPLICAS\"\\} [1-9]", metrics);
        Assert.Contains("switchback_family_route{family=\"orders\",role=\"write\",cluster=\"source\"} 1", metrics, StringComparison.Ordinal);

        // Writes go on, to source.
        var atRollback = acknowledged.Count;
        await UntilAsync(() => acknowledged.Count >= atRollback + 200, TimeSpan.FromSeconds(60), "200 more records acknowledged after the rollback");
        await stop.CancelAsync();
        await producing;
        Assert.True(errors.IsEmpty, string.Join("; ", errors.Take(5)));

        // Source holds every acknowledged record once, in per-key order: those written to target were mirrored back.
        var source = rig.ReadAll("source");
        var duplicates = source.GroupBy(r => (r.Key, r.Value)).Where(g => g.Count() > 1).Select(g => $"{g.Key}").ToList();
        Assert.True(duplicates.Count == 0, $"duplicated on source: {string.Join(", ", duplicates.Take(5))}");
        var stored = source.Select(r => (r.Key, r.Value)).ToHashSet();
        var missing = acknowledged.Where(a => !stored.Contains((a.Key, a.Sequence.ToString(CultureInfo.InvariantCulture)))).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged record(s) missing from source, e.g. {string.Join(", ", missing.Take(5))}");
        foreach (var key in source.GroupBy(r => r.Key))
        {
            var sequences = key.OrderBy(r => r.Offset).Select(r => int.Parse(r.Value, CultureInfo.InvariantCulture)).ToList();
            Assert.True(sequences.SequenceEqual(Enumerable.Range(0, sequences.Count)), $"key {key.Key}: source order {string.Join(",", sequences.Take(20))}");
        }
    }

    [Fact]
    public async Task WithoutAnOpenWindow_ErrorsDoNotRollBack_AndHealthyTrafficOnTargetDoesNot()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 2, settings: new Dictionary<string, string?>
        {
            ["Families:0:AbortWhen:ProduceErrorRatePercent"] = "20",
            ["Families:0:AbortWhen:ForSeconds"] = "1",
        });
        var load = NewLoad();
        var (acknowledged, errors) = (load.Acknowledged, load.Errors);
        using var stop = new CancellationTokenSource();
        var producing = Task.Run(() => load.Run(rig.BootstrapServers, stop.Token));
        await UntilAsync(() => acknowledged.Count >= 100, TimeSpan.FromSeconds(60), "100 records acknowledged on source");

        // No window yet: errors on source are not the switch's doing, and nothing rolls back.
        rig.Source.PushRequestErrors(ProduceApi, [.. Enumerable.Repeat(NotEnoughReplicas, 300)]);
        var before = acknowledged.Count;
        await UntilAsync(() => acknowledged.Count >= before + 100, TimeSpan.FromSeconds(60), "the producer to get past the errors");
        rig.Source.ClearRequestErrors(ProduceApi);

        // A switch with healthy traffic on target: the window is open, the criterion is judged, and does not hold.
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "cutover" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        before = acknowledged.Count;
        await UntilAsync(() => acknowledged.Count >= before + 300, TimeSpan.FromSeconds(60), "300 records acknowledged on target");
        using var http = new HttpClient();
        await UntilAsync(async () => (await http.GetStringAsync($"{rig.AdminUrl}/metrics"))
            .Contains("switchback_abort_criteria_breached{family=\"orders\",criterion=\"ProduceErrorRatePercent\"} 0", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the criterion to be judged");
        await stop.CancelAsync();
        await producing;

        Assert.Equal("target", (await rig.FamilyAsync()).Body.GetProperty("write").GetString());
        Assert.DoesNotContain("abort-criteria", rig.AuditText(), StringComparison.Ordinal);
    }

    /// <summary>Retries quickly, and for long: a retriable error must not fail a record while the criteria act.</summary>
    private static KeyedLoad NewLoad() => new(Keys, TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(120), config =>
    {
        config.RetryBackoffMs = 20;
        config.RetryBackoffMaxMs = 200;
    });

    private static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what) => UntilAsync(() => Task.FromResult(condition()), timeout, what);

    private static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

}
