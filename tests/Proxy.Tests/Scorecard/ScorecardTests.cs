using System.Net;
using Switchback.Proxy.Scorecard;
using Switchback.Proxy.Tests.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Scorecard;

/// <summary>
/// The scorecard's five gates, each turned red and green by the evidence that should move it, against two mock
/// clusters (<c>source</c>, where the family is, and <c>target</c>, which would take over).
/// </summary>
public sealed class ScorecardTests
{
    [Fact]
    public async Task Scorecard_NamesTheFiveGates_404ForAnUnknownFamily_400ForABadRefresh()
    {
        await using var rig = await SwitchingRig.StartAsync();

        var answer = await rig.SendAsync(HttpMethod.Get, $"v1/families/{SwitchingRig.Family}/scorecard", null, null);
        Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        Assert.Equal(SwitchingRig.Family, answer.Body.GetProperty("family").GetString());
        Assert.True(answer.Body.GetProperty("computedAt").GetDateTimeOffset() > DateTimeOffset.UnixEpoch);
        Assert.Equal(ScorecardGates.All, answer.Body.GetProperty("gates").EnumerateArray().Select(g => g.GetProperty("gate").GetString()));
        Assert.All(answer.Body.GetProperty("gates").EnumerateArray(),
            g => Assert.Contains(g.GetProperty("status").GetString(), new[] { GateStatus.Green, GateStatus.Red, GateStatus.Unknown }));
        Assert.Equal("target", answer.Body.GetProperty("takeover").GetProperty("write").GetString());
        Assert.Equal("source", answer.Body.GetProperty("oldCluster").GetString());

        Assert.Equal(HttpStatusCode.NotFound, (await rig.SendAsync(HttpMethod.Get, "v1/families/nope/scorecard", null, null)).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await rig.SendAsync(HttpMethod.Get, $"v1/families/{SwitchingRig.Family}/scorecard?refresh=maybe", null, null)).Status);
    }

    [Fact]
    public async Task DataParity_RedWhileTargetLacksRecords_GreenOnceItHasThem()
    {
        await using var rig = await SwitchingRig.StartAsync();
        await rig.UntilGateAsync(ScorecardGates.DataParity, GateStatus.Green);

        await SwitchingRig.ProduceDirectAsync(rig.Source, Enumerable.Range(0, 5).Select(i => (1, $"k{i}", $"v{i}")));
        var red = await rig.UntilGateAsync(ScorecardGates.DataParity, GateStatus.Red);
        Assert.Contains("target is behind source by 5 record(s) on 1 partition(s)", red.Summary, StringComparison.Ordinal);
        var behind = red.Evidence.GetProperty("checks")[0].GetProperty("behind")[0];
        Assert.Equal((1, 5L, 0L), (behind.GetProperty("partition").GetInt32(), behind.GetProperty("fromEnd").GetInt64(), behind.GetProperty("toEnd").GetInt64()));

        // What replication would do: the same records on target.
        await SwitchingRig.ProduceDirectAsync(rig.Target, Enumerable.Range(0, 5).Select(i => (1, $"k{i}", $"v{i}")));
        var green = await rig.UntilGateAsync(ScorecardGates.DataParity, GateStatus.Green);
        Assert.Contains("target has every record source has", green.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DataParity_AndTheSwitchGate_HonourTheFamilysRecordLimit()
    {
        await using var rig = await SwitchingRig.StartAsync(settings: new Dictionary<string, string?> { ["Switchback:Families:0:Gates:MaxLagRecords"] = "5" });

        await SwitchingRig.ProduceDirectAsync(rig.Source, Enumerable.Range(0, 3).Select(i => (1, $"k{i}", $"v{i}")));
        var within = await rig.UntilGateAsync(ScorecardGates.DataParity, GateStatus.Green, "within the limit of 5 record(s)");
        Assert.Contains("behind source by 3 record(s)", within.Summary, StringComparison.Ordinal);

        await SwitchingRig.ProduceDirectAsync(rig.Source, Enumerable.Range(3, 3).Select(i => (1, $"k{i}", $"v{i}")));
        var over = await rig.UntilGateAsync(ScorecardGates.DataParity, GateStatus.Red, "over the limit of 5 record(s)");
        Assert.Contains("behind source by 6 record(s)", over.Summary, StringComparison.Ordinal);
        // The switch evaluates the same way: refused at 6 behind...
        var refused = await rig.SwitchAsync(new { write = "target", reason = "limit" });
        Assert.True(refused.Status == HttpStatusCode.Conflict, refused.ToString());
        Assert.Equal("data-parity-write", Assert.Single(refused.Body.GetProperty("failed").EnumerateArray()).GetProperty("gate").GetString());

        // ...and let through at 1 behind.
        await SwitchingRig.ProduceDirectAsync(rig.Target, Enumerable.Range(0, 5).Select(i => (1, $"k{i}", $"v{i}")));
        await rig.UntilGateAsync(ScorecardGates.DataParity, GateStatus.Green, "behind source by 1 record(s)");
        var switched = await rig.SwitchAsync(new { write = "target", reason = "limit" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
    }

    [Fact]
    public async Task DataParity_TimeLimit_RedWhenTheOldestMissingRecordIsOlder()
    {
        await using var rig = await SwitchingRig.StartAsync(settings: new Dictionary<string, string?> { ["Switchback:Families:0:Gates:MaxLagMs"] = "60000" });

        // Dated an hour back: an hour behind, whatever the clock does during the test.
        await ScorecardRig.ProduceDatedAsync(rig.Source, 2, 2, DateTime.UtcNow.AddHours(-1));
        var red = await rig.UntilGateAsync(ScorecardGates.DataParity, GateStatus.Red, "over the limit of 60000 ms");
        var behind = red.Evidence.GetProperty("checks")[0].GetProperty("behind")[0];
        Assert.True(behind.GetProperty("behindMs").GetInt64() >= 3_000_000, behind.ToString());

        // Dated an hour ahead on another partition once the first is copied: behind, but by records younger than the limit.
        await ScorecardRig.ProduceDatedAsync(rig.Target, 2, 2, DateTime.UtcNow.AddHours(-1));
        await ScorecardRig.ProduceDatedAsync(rig.Source, 3, 1, DateTime.UtcNow.AddHours(1));
        await rig.UntilGateAsync(ScorecardGates.DataParity, GateStatus.Green, "within the limit of 60000 ms");
    }

    [Fact]
    public async Task OffsetParity_RedWhileAGroupsOffsetsAreOnlyOnSource_GreenOnceCommittedOnTarget()
    {
        await using var rig = await SwitchingRig.StartAsync();
        foreach (var cluster in new[] { rig.Source, rig.Target })
        {
            await SwitchingRig.ProduceDirectAsync(cluster, Enumerable.Range(0, 5).Select(i => (0, $"k{i}", $"v{i}")));
        }
        const string group = "orders-scorecard";
        // Through the proxy, so the proxy knows the group as the family's.
        await ScorecardRig.CommitAsync(rig.BootstrapServers, group, 0, 4);

        var red = await rig.UntilGateAsync(ScorecardGates.OffsetParity, GateStatus.Red);
        Assert.Contains("are not committed on target", red.Summary, StringComparison.Ordinal);
        var missing = red.Evidence.GetProperty("offsets")[0];
        Assert.Equal((group, 0, 4L), (missing.GetProperty("group").GetString(), missing.GetProperty("partition").GetInt32(), missing.GetProperty("committed").GetInt64()));

        await ScorecardRig.CommitAsync(rig.Target.BootstrapServers, group, 0, 4);
        var green = await rig.UntilGateAsync(ScorecardGates.OffsetParity, GateStatus.Green);
        Assert.Contains("every committed offset on source is committed on target", green.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClientRouting_RedOnStrayWritesToTheOldClusterDuringTheWindow()
    {
        await using var rig = await SwitchingRig.StartAsync(mirrorBack: true);
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "stray writes" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        var unrehearsed = await rig.UntilGateAsync(ScorecardGates.ClientRouting, GateStatus.Unknown);
        Assert.Contains("not rehearsed since the last switch", unrehearsed.Summary, StringComparison.Ordinal);

        // A client bypassing the proxy writes the origin's write cluster directly.
        await SwitchingRig.ProduceDirectAsync(rig.Source, Enumerable.Range(0, 3).Select(i => (1, "stray", $"stray-{i}")));
        var red = await rig.UntilGateAsync(ScorecardGates.ClientRouting, GateStatus.Red);
        Assert.Contains("3 stray write(s) to source bypassed the proxy", red.Summary, StringComparison.Ordinal);
        Assert.Equal(3, red.Evidence.GetProperty("strayWrites").GetInt64());
    }

    [Fact]
    public async Task SourceReadiness_GreenWhileTheOldClusterServes_RedOnceItIsDown()
    {
        // The fronts answer DescribeConfigs (the mock does not), so retention can be read.
        await using var rig = await SwitchingRig.StartAsync(groupFronts: true);
        var green = await rig.UntilGateAsync(ScorecardGates.SourceReadiness, GateStatus.Green);
        Assert.Contains("source reachable", green.Summary, StringComparison.Ordinal);
        Assert.Contains("retention 7 d", green.Summary, StringComparison.Ordinal);

        rig.SourceFront!.Stop();
        var red = await rig.UntilGateAsync(ScorecardGates.SourceReadiness, GateStatus.Red);
        Assert.Contains("old cluster unreachable", red.Summary, StringComparison.Ordinal);
        Assert.False(red.Evidence.GetProperty("reachable").GetBoolean());
    }

    [Fact]
    public async Task DecisionAuthority_RedWithoutOwner()
    {
        await using var rig = await SwitchingRig.StartAsync();
        var red = await rig.UntilGateAsync(ScorecardGates.DecisionAuthority, GateStatus.Red);
        Assert.Contains("no owner; no abort criteria", red.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DecisionAuthority_NamesTheOwner_AndWhoMadeEachSwitch()
    {
        await using var rig = await SwitchingRig.StartAsync(settings: new Dictionary<string, string?> { ["Switchback:Families:0:Owner"] = "data-platform team" });
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "owner test" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        var gate = (await rig.ScorecardAsync())[ScorecardGates.DecisionAuthority];
        Assert.Contains("owner data-platform team", gate.Summary, StringComparison.Ordinal);
        Assert.Contains("1 switch(es), rollback(s) or close(s) by 1 caller(s)", gate.Summary, StringComparison.Ordinal);
        Assert.Equal("data-platform team", gate.Evidence.GetProperty("owner").GetString());
        var decision = Assert.Single(gate.Evidence.GetProperty("decisions").EnumerateArray());
        Assert.Equal(("switch", "owner test"), (decision.GetProperty("action").GetString(), decision.GetProperty("reason").GetString()));
        Assert.Contains("127.0.0.1", decision.GetProperty("caller").GetString(), StringComparison.Ordinal);
        // An owner without abort criteria: the abort decision is not written down, so the gate stays red.
        Assert.Equal(GateStatus.Red, gate.Status);
        Assert.Contains("no abort criteria", gate.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DecisionAuthority_GreenWithAnOwnerAndAbortCriteria()
    {
        await using var rig = await SwitchingRig.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Switchback:Families:0:Owner"] = "data-platform team",
            ["Switchback:Families:0:AbortWhen:ProduceErrorRatePercent"] = "1",
            ["Switchback:Families:0:AbortWhen:ForSeconds"] = "30",
        });
        var green = await rig.UntilGateAsync(ScorecardGates.DecisionAuthority, GateStatus.Green);
        Assert.Contains("owner data-platform team; abort criteria set", green.Summary, StringComparison.Ordinal);
        var criteria = green.Evidence.GetProperty("abortWhen");
        Assert.Equal(1, criteria.GetProperty("produceErrorRatePercent").GetDouble());
        Assert.Equal(30, criteria.GetProperty("forSeconds").GetDouble());
    }
}
