using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Switchback.Proxy.Tests.Switching;
using Switchback.Proxy.Window;
using Xunit;

namespace Switchback.Proxy.Tests.Window;

/// <summary>The mirror supervisor as the proxy hosts it: on <c>/metrics</c>, and resumed by a restarted proxy.</summary>
public sealed class MirrorSupervisorHostingTests
{
    [Fact]
    public async Task AProxyRestartedWhileAMirrorRuns_ResumesIt_AndItsSeriesAreOnMetrics()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 2);
        var partitions = Enumerable.Range(0, rig.Partitions).Select(p => new TopicPartition(SwitchingRig.Topic, p)).ToList();
        var start = partitions.ToDictionary(p => p, p => rig.EndOffsets(rig.Target)[p.Partition.Value]);
        var supervisor = rig.Host.Services.GetRequiredService<MirrorSupervisor>();
        await supervisor.StartMirrorAsync(SwitchingRig.Family, "target", "source", start);
        // A retried start between the same clusters changes nothing; between others it is refused.
        await supervisor.StartMirrorAsync(SwitchingRig.Family, "target", "source", start);
        await Assert.ThrowsAsync<InvalidOperationException>(() => supervisor.StartMirrorAsync(SwitchingRig.Family, "source", "target", start));

        await SwitchingRig.ProduceDirectAsync(rig.Target, Enumerable.Range(0, 100).Select(i => (i % 2, $"k{i}", $"first-{i}")));
        await supervisor.WaitCopiedAsync(SwitchingRig.Family, Ends(rig, partitions), new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        using (var http = new HttpClient())
        {
            var metrics = await http.GetStringAsync($"{rig.AdminUrl}/metrics");
            Assert.Contains("switchback_mirror_copied_records_total{family=\"orders\",partition=\"total\"} 100", metrics);
            Assert.Contains("switchback_mirror_running{family=\"orders\"} 1", metrics);
        }

        await rig.RestartAsync();
        var resumed = rig.Host.Services.GetRequiredService<MirrorSupervisor>();
        Assert.NotNull(resumed.Mirror(SwitchingRig.Family));
        await SwitchingRig.ProduceDirectAsync(rig.Target, Enumerable.Range(0, 100).Select(i => (i % 2, $"k{i}", $"second-{i}")));
        await resumed.WaitCopiedAsync(SwitchingRig.Family, Ends(rig, partitions), new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);

        var copies = rig.ReadAll("source");
        Assert.Equal(200, copies.Count);
        Assert.Equal(rig.ReadAll("target").Select(r => (r.Partition, r.Offset, r.Key, r.Value)), copies.Select(r => (r.Partition, r.Offset, r.Key, r.Value)));
        Assert.Equal(200, resumed.Figures(SwitchingRig.Family)!.Totals.Copied);

        Assert.True(await resumed.StopMirrorAsync(SwitchingRig.Family));
        Assert.Null(resumed.Figures(SwitchingRig.Family));
        Assert.False(await resumed.StopMirrorAsync(SwitchingRig.Family));
    }

    private static Dictionary<TopicPartition, long> Ends(SwitchingRig rig, List<TopicPartition> partitions)
    {
        var ends = rig.EndOffsets(rig.Target);
        return partitions.ToDictionary(p => p, p => ends[p.Partition.Value]);
    }
}
