using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Confluent.Kafka;
using Switchback.Proxy.Tests.Switching;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Window;

/// <summary>
/// A family with <c>MirrorBack</c>: writes switched to target are copied back to source while the rollback window is
/// open, so a rollback resumes on source with nothing left behind, and a producer writing source directly meanwhile
/// is counted as stray writes.
/// </summary>
public sealed class MirrorBackRollbackTests(ITestOutputHelper output)
{
    private const int Keys = 8;
    private const int StrayPartition = 1;
    private const int Strays = 5;

    [Fact]
    public async Task WriteSwitch_IdempotentLoad_Rollback_OriginHoldsEveryRecordOnceInOrder_NothingLeftBehind_StraysCounted()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 4, mirrorBack: true);
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "mirror back" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        Assert.StartsWith("copying target to source", switched.Body.GetProperty("details").GetProperty("mirror").GetString(), StringComparison.Ordinal);

        var load = new KeyedLoad(Keys, TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(30));
        var (acknowledged, errors) = (load.Acknowledged, load.Errors);
        using var stop = new CancellationTokenSource();
        var producing = Task.Run(() => load.Run(rig.BootstrapServers, stop.Token));

        // Load on target, and a producer bypassing the proxy on source.
        await UntilAsync(() => Task.FromResult(acknowledged.Count >= 600), TimeSpan.FromSeconds(60), "600 records acknowledged on target");
        await SwitchingRig.ProduceDirectAsync(rig.Source, Enumerable.Range(0, Strays).Select(i => (StrayPartition, "stray", $"stray-{i}")));
        await UntilAsync(async () => (await rig.SendAsync(HttpMethod.Get, $"v1/families/{SwitchingRig.Family}/window", null, null)).Body
            .GetProperty("mirroredRecords").GetInt64() > 0, TimeSpan.FromSeconds(60), "the window view to show copies");

        var rolledBack = await rig.RollbackAsync(new { reason = "mirror back", timeoutMs = 30_000 });
        output.WriteLine($"rollback: {rolledBack}");
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        var details = rolledBack.Body.GetProperty("details");
        Assert.Equal(0, details.GetProperty("leftBehind").GetProperty("records").GetInt64());
        Assert.Equal("caught up and ended", details.GetProperty("mirror").GetString());
        Assert.Equal(Strays, details.GetProperty("strayWrites").GetProperty("records").GetInt64());
        var strayPartitions = details.GetProperty("strayWrites").GetProperty("partitions").EnumerateArray().ToList();
        Assert.Equal(StrayPartition, Assert.Single(strayPartitions).GetProperty("partition").GetInt32());

        // Writes go on, now to source again.
        var atRollback = acknowledged.Count;
        await UntilAsync(() => Task.FromResult(acknowledged.Count >= atRollback + 200), TimeSpan.FromSeconds(60), "200 more records acknowledged after the rollback");
        await stop.CancelAsync();
        await producing;
        Assert.True(errors.IsEmpty, string.Join("; ", errors.Take(5)));

        // Source alone holds every acknowledged record exactly once, in per-key order.
        var source = rig.ReadAll("source").Where(r => r.Key != "stray").ToList();
        var target = rig.ReadAll("target");
        Assert.NotEmpty(target);
        var duplicates = source.GroupBy(r => (r.Key, r.Value)).Where(g => g.Count() > 1).Select(g => $"{g.Key}").ToList();
        Assert.True(duplicates.Count == 0, $"duplicated on source: {string.Join(", ", duplicates.Take(5))}");
        var missing = acknowledged.Where(a => !source.Any(r => r.Key == a.Key && r.Value == a.Sequence.ToString(CultureInfo.InvariantCulture))).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged record(s) missing from source, e.g. {string.Join(", ", missing.Take(5))}");
        foreach (var key in source.GroupBy(r => r.Key))
        {
            var sequences = key.OrderBy(r => r.Offset).Select(r => int.Parse(r.Value, CultureInfo.InvariantCulture)).ToList();
            Assert.True(sequences.SequenceEqual(Enumerable.Range(0, sequences.Count)), $"key {key.Key}: source order {string.Join(",", sequences.Take(20))}");
        }
        // Both clusters were empty at the switch: where no stray write interleaved, the copies sit at their original offsets.
        foreach (var copy in target.Where(r => r.Partition != StrayPartition))
        {
            Assert.Contains(source, r => r.Partition == copy.Partition && r.Offset == copy.Offset && r.Key == copy.Key && r.Value == copy.Value);
        }
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(25);
        }
    }

}
