using Switchback.Proxy.Tests.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Admin;

/// <summary>The <c>switchback</c> command line: help, validation, pass-through of settings to <c>run</c>, and refused switches.</summary>
public sealed class CommandLineTests
{
    // Nothing listens here: a command that got as far as calling the admin API would say it cannot reach it.
    private static readonly string[] Unreachable = ["--admin", "http://127.0.0.1:1"];

    [Fact]
    public async Task Help_ForTheRoot_ExitsZeroAndNamesEveryCommand()
    {
        var (code, output, stderr) = await AdminCliRunner.RunWithOutputAsync(["--help"]);

        Assert.True(code == 0, stderr);
        Assert.Empty(stderr);
        foreach (var command in new[] { "run", "demo", "routes", "status", "switch", "rollback", "close", "fleet", "clients" })
        {
            Assert.Matches($@"(?m)^\s+{command}\b", output);
        }
    }

    [Fact]
    public async Task Help_ForSwitch_ExitsZeroAndNamesItsOptions()
    {
        var (code, output, stderr) = await AdminCliRunner.RunWithOutputAsync(["switch", "--help"]);

        Assert.True(code == 0, stderr);
        Assert.Empty(stderr);
        Assert.Contains("switch <FAMILY>", output, StringComparison.Ordinal);
        foreach (var option in new[] { "--write", "--read", "--dry-run", "--reason", "--force", "--timeout-ms", "--admin", "--token" })
        {
            Assert.Contains(option, output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Help_ForClose_OffersNeitherForceNorRoutes()
    {
        var (code, output, _) = await AdminCliRunner.RunWithOutputAsync(["close", "--help"]);

        Assert.Equal(0, code);
        Assert.Contains("--reason", output, StringComparison.Ordinal);
        Assert.DoesNotContain("--force", output, StringComparison.Ordinal);
        Assert.DoesNotContain("--write", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("unexpected argument '--bogus'", "switch", "orders", "--write", "target", "--bogus")]
    [InlineData("switch needs a FAMILY", "switch", "--write", "target")]
    [InlineData("rollback needs a FAMILY", "rollback")]
    [InlineData("switch needs --write and/or --read", "switch", "orders")]
    [InlineData("unexpected argument '--force'", "close", "orders", "--force")]
    [InlineData("unexpected argument '--write'", "close", "orders", "--write", "target")]
    [InlineData("--timeout-ms needs a positive number", "switch", "orders", "--write", "target", "--timeout-ms", "0")]
    [InlineData("--timeout-ms needs a positive number", "rollback", "orders", "--timeout-ms", "soon")]
    [InlineData("unexpected argument 'orders'", "routes", "orders")]
    [InlineData("unknown command 'routs'", "routs")]
    [InlineData("status needs a FAMILY", "status")]
    [InlineData("unexpected argument '--force'", "status", "orders", "--force")]
    [InlineData("switch needs --write and/or --read", "switch", "orders", "--dry-run")]
    [InlineData("unexpected argument '--dry-run'", "rollback", "orders", "--dry-run")]
    public async Task Mistake_ExitsNonZero_WithOneLineReason_BeforeCallingTheAdminApi(string reason, params string[] args)
    {
        var (code, output, stderr) = await AdminCliRunner.RunWithOutputAsync([.. args, .. Unreachable]);

        Assert.NotEqual(0, code);
        Assert.Contains(reason, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot reach", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Empty(output);
    }

    [Fact]
    public async Task AdminUrl_NotAUrl_IsRefused()
    {
        var (code, stderr) = await AdminCliRunner.RunAsync(["routes", "--admin", "not a url"]);

        Assert.NotEqual(0, code);
        Assert.Contains("'not a url' is not an admin URL", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--Switchback:NoSuchSetting=1")]
    // A setting's value that is also a command name is still a setting's value: the command is run.
    [InlineData("--Switchback:NoSuchSetting", "demo")]
    [InlineData("run", "--Switchback:NoSuchSetting", "close")]
    public async Task Settings_ReachTheConfiguration_OfRun(params string[] args)
    {
        var (code, stderr) = await AdminCliRunner.RunAsync(args);

        // The configuration validator saw the setting: it names the key it does not know.
        Assert.NotEqual(0, code);
        Assert.Contains("'Switchback:NoSuchSetting'", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public async Task Switch_RefusedByAGate_PrintsEachFailedGateWithItsEvidence()
    {
        await using var rig = await SwitchingRig.StartAsync();
        // Source holds 5 records on partition 1 and 3 on partition 2; target, without replication, holds none.
        await SwitchingRig.ProduceDirectAsync(rig.Source,
            [.. Enumerable.Range(0, 5).Select(i => (1, $"k{i}", $"v{i}")), .. Enumerable.Range(0, 3).Select(i => (2, $"k{i}", $"v{i}"))]);

        var (code, output, stderr) = await AdminCliRunner.RunWithOutputAsync(
            ["switch", SwitchingRig.Family, "--write", "target", "--reason", "cli-gates", "--admin", rig.AdminUrl]);

        Assert.NotEqual(0, code);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains("409", stderr, StringComparison.Ordinal);
        Assert.Contains("Readiness gates failed", stderr, StringComparison.Ordinal);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd()).ToList();
        Assert.Contains(lines, l => l.StartsWith("data-parity-write", StringComparison.Ordinal)
            && l.Contains("target is behind source by 8 record(s) on 2 partition(s)", StringComparison.Ordinal));
        Assert.Contains(lines, l => Words(l).SequenceEqual(["topic", "partition", "fromEnd", "toEnd", "behindBy"]));
        Assert.Contains(lines, l => Words(l).SequenceEqual([SwitchingRig.Topic, "1", "5", "0", "5"]));
        Assert.Contains(lines, l => Words(l).SequenceEqual([SwitchingRig.Topic, "2", "3", "0", "3"]));
        Assert.Equal("source", (await rig.FamilyAsync()).Body.GetProperty("write").GetString());

        static string[] Words(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public async Task Status_PrintsEachGateWithItsStatusAndSummary()
    {
        await using var rig = await SwitchingRig.StartAsync();
        await SwitchingRig.ProduceDirectAsync(rig.Source, Enumerable.Range(0, 2).Select(i => (3, $"k{i}", $"v{i}")));

        var (code, output, stderr) = await AdminCliRunner.RunWithOutputAsync(["status", SwitchingRig.Family, "--admin", rig.AdminUrl]);

        Assert.True(code == 0, stderr);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd()).ToList();
        Assert.StartsWith($"family {SwitchingRig.Family}: write=source read=source; takes over: write=target read=target; old cluster: source", lines[0], StringComparison.Ordinal);
        Assert.Equal(["GATE", "STATUS", "SUMMARY"], lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["data-parity", "offset-parity", "client-routing", "source-readiness", "decision-authority"], lines.Skip(2).Select(l => l.Split(' ')[0]));
        Assert.Contains(lines, l => l.StartsWith("data-parity", StringComparison.Ordinal) && l.Contains(" red ", StringComparison.Ordinal)
            && l.Contains("target is behind source by 2 record(s) on 1 partition(s)", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("decision-authority", StringComparison.Ordinal) && l.Contains("no owner", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Switch_DryRun_RehearsesWithoutChangingTheRoute()
    {
        await using var rig = await SwitchingRig.StartAsync();

        var (code, output, stderr) = await AdminCliRunner.RunWithOutputAsync(
            ["switch", SwitchingRig.Family, "--write", "target", "--dry-run", "--reason", "cli-rehearsal", "--admin", rig.AdminUrl]);

        Assert.True(code == 0, stderr);
        using var answer = System.Text.Json.JsonDocument.Parse(output);
        Assert.True(answer.RootElement.GetProperty("dryRun").GetBoolean());
        Assert.Equal("target", answer.RootElement.GetProperty("wouldSwitchTo").GetProperty("write").GetString());
        var family = await rig.FamilyAsync();
        Assert.Equal(("source", 0L), (family.Body.GetProperty("write").GetString(), family.Body.GetProperty("epoch").GetInt64()));
        var entry = Assert.Single(new Switchback.Proxy.Switching.AuditLog(rig.StateDirectory).ReadAll());
        Assert.Equal(("rehearsal", "ok", "cli-rehearsal"), (entry.Action, entry.Outcome, entry.Reason));
    }
}
