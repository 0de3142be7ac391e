using System.Net;
using System.Text.Json;
using Switchback.Proxy.Tests.Integration;
using Switchback.Proxy.Tests.Switching;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.ClientMatrix;

/// <summary>One record a client driver reported as produced (acknowledged) or consumed.</summary>
public sealed record ClientRecord(string Op, string Key, string Value, int Partition, long Offset);

/// <summary>
/// How to run one client driver: <c>FileName Arguments... produce|consume bootstrap topic group count prefix</c>,
/// printing one JSON line per record (see the drivers under ClientMatrix/Clients).
/// </summary>
public sealed record ClientDriver(string Name, string FileName, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string>? Environment = null)
{
    public async Task<List<ClientRecord>> RunAsync(string mode, string bootstrap, string topic, string group, int count, string prefix)
    {
        var run = await ExternalClients.RunAsync(FileName, [.. Arguments, mode, bootstrap, topic, group, ExternalClients.Text(count), prefix],
            environment: Environment, timeout: TimeSpan.FromSeconds(90));
        Assert.True(run.ExitCode == 0, $"{Name} {mode} failed: {run}");
        return ClientMatrixScenario.ParseRecords(run.Output);
    }
}

/// <summary>
/// The client-matrix scenario, the same for every client: through the proxy, produce N keyed records and consume them
/// with a fresh consumer group; force the family's writes source -> target and produce M more; roll back and produce
/// K more. Then both clusters are read directly: source holds the N and the K, target the M, each exactly once.
/// </summary>
public sealed class ClientMatrixScenario(ITestOutputHelper output)
{
    public const int BeforeSwitch = 30;
    public const int DuringSwitch = 20;
    public const int AfterRollback = 20;

    /// <summary>Runs the scenario with a client driven as a child process, one invocation per step.</summary>
    public Task RunAsync(ClientDriver driver) => RunAsync(
        driver.Name,
        (bootstrap, topic, count, prefix) => driver.RunAsync("produce", bootstrap, topic, "-", count, prefix),
        (bootstrap, topic, group, count) => driver.RunAsync("consume", bootstrap, topic, group, count, "-"));

    /// <summary>Runs the scenario with produce and consume steps supplied by the caller (an in-process client).</summary>
    public async Task RunAsync(
        string client,
        Func<string, string, int, string, Task<List<ClientRecord>>> produce,
        Func<string, string, string, int, Task<List<ClientRecord>>> consume)
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 3);
        var topic = SwitchingRig.Topic;
        var group = $"{SwitchingRig.Family}-{client}-{Guid.NewGuid():N}";
        var before = Expected($"{client}-n", BeforeSwitch);
        var during = Expected($"{client}-m", DuringSwitch);
        var after = Expected($"{client}-k", AfterRollback);

        var producedBefore = await produce(rig.BootstrapServers, topic, BeforeSwitch, $"{client}-n");
        AssertEachOnce("produced before the switch", Produced(producedBefore), before);

        var consumed = await consume(rig.BootstrapServers, topic, group, BeforeSwitch);
        AssertEachOnce($"consumed by group {group}", consumed.Where(r => r.Op == "consumed").Select(r => (r.Key, r.Value)), before);

        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = $"client matrix: {client}" });
        Assert.True(switched.Status == HttpStatusCode.OK, $"switch: {switched}");
        var producedDuring = await produce(rig.BootstrapServers, topic, DuringSwitch, $"{client}-m");
        AssertEachOnce("produced after the switch", Produced(producedDuring), during);

        var rolledBack = await rig.RollbackAsync(new { reason = $"client matrix: {client}" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, $"rollback: {rolledBack}");
        var producedAfter = await produce(rig.BootstrapServers, topic, AfterRollback, $"{client}-k");
        AssertEachOnce("produced after the rollback", Produced(producedAfter), after);

        var source = rig.ReadAll("source");
        var target = rig.ReadAll("target");
        output.WriteLine($"{client}: source holds {source.Count} records, target {target.Count}; switch pause {switched.Body.GetProperty("pauseMs")} ms, rollback pause {rolledBack.Body.GetProperty("pauseMs")} ms");
        AssertEachOnce("stored on source", source.Select(r => (r.Key, r.Value)), [.. before, .. after]);
        AssertEachOnce("stored on target", target.Select(r => (r.Key, r.Value)), during);

        // The N precede the K in every source partition: the rollback appended, it did not interleave or rewrite.
        foreach (var partition in source.GroupBy(r => r.Partition))
        {
            var lastBefore = partition.Where(r => r.Value.StartsWith($"{client}-n-", StringComparison.Ordinal)).Select(r => r.Offset).DefaultIfEmpty(-1).Max();
            var firstAfter = partition.Where(r => r.Value.StartsWith($"{client}-k-", StringComparison.Ordinal)).Select(r => r.Offset).DefaultIfEmpty(long.MaxValue).Min();
            Assert.True(lastBefore < firstAfter, $"source partition {partition.Key}: a record produced before the switch sits at {lastBefore}, after one produced after the rollback at {firstAfter}");
        }
        // Where the client reports the acknowledged partition and offset, that is where the record is.
        AssertAcknowledgedWhereStored("source", producedBefore, source);
        AssertAcknowledgedWhereStored("target", producedDuring, target);
        AssertAcknowledgedWhereStored("source", producedAfter, source);
    }

    private static void AssertAcknowledgedWhereStored(string cluster, List<ClientRecord> produced, List<StoredRecord> stored)
    {
        var byValue = stored.ToDictionary(r => r.Value);
        var wrong = produced.Where(p => p.Op == "produced" && p.Offset >= 0)
            .Where(p => byValue[p.Value].Partition != p.Partition || byValue[p.Value].Offset != p.Offset)
            .Select(p => $"{p.Value} acknowledged at {p.Partition}@{p.Offset}, stored at {byValue[p.Value].Partition}@{byValue[p.Value].Offset}")
            .ToList();
        Assert.True(wrong.Count == 0, $"{cluster}: {wrong.Count} acknowledgement(s) name the wrong place: {string.Join("; ", wrong.Take(5))}");
    }

    /// <summary>Record i of a phase: key <c>prefix-k(i mod 7)</c>, value <c>prefix-i</c> (as every driver writes it).</summary>
    public static List<(string Key, string Value)> Expected(string prefix, int count) =>
        [.. Enumerable.Range(0, count).Select(i => ($"{prefix}-k{i % 7}", $"{prefix}-{i}"))];

    /// <summary>The driver's JSON lines; anything else on stdout (a client's own logging) is ignored.</summary>
    public static List<ClientRecord> ParseRecords(string stdout)
    {
        var records = new List<ClientRecord>();
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!line.StartsWith('{'))
            {
                continue;
            }
            JsonElement json;
            try
            {
                json = JsonDocument.Parse(line).RootElement;
            }
            catch (JsonException)
            {
                continue;
            }
            if (json.ValueKind == JsonValueKind.Object && json.TryGetProperty("op", out var op))
            {
                records.Add(new ClientRecord(op.GetString()!, json.GetProperty("key").GetString()!, json.GetProperty("value").GetString()!,
                    json.GetProperty("partition").GetInt32(), json.GetProperty("offset").GetInt64()));
            }
        }
        return records;
    }

    private static IEnumerable<(string Key, string Value)> Produced(List<ClientRecord> records) =>
        records.Where(r => r.Op == "produced").Select(r => (r.Key, r.Value));

    /// <summary>Every expected record exactly once and nothing else; the message lists what is missing, doubled or foreign.</summary>
    public static void AssertEachOnce(string what, IEnumerable<(string Key, string Value)> actual, IReadOnlyCollection<(string Key, string Value)> expected)
    {
        var counts = actual.GroupBy(r => r).ToDictionary(g => g.Key, g => g.Count());
        var missing = expected.Where(e => !counts.ContainsKey(e)).ToList();
        var duplicated = counts.Where(c => c.Value > 1).Select(c => $"{c.Key.Value} x{c.Value}").ToList();
        var expectedSet = expected.ToHashSet();
        var foreign = counts.Keys.Where(k => !expectedSet.Contains(k)).ToList();
        Assert.True(missing.Count == 0 && duplicated.Count == 0 && foreign.Count == 0,
            $"{what}: expected {expected.Count} records once each; {missing.Count} missing [{string.Join(", ", missing.Take(8).Select(m => m.Value))}], " +
            $"{duplicated.Count} duplicated [{string.Join(", ", duplicated.Take(8))}], {foreign.Count} unexpected [{string.Join(", ", foreign.Take(8).Select(f => $"{f.Key}={f.Value}"))}]");
    }
}
