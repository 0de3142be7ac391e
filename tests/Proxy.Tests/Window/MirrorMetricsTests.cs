using System.Text;
using Prometheus;
using Switchback.Proxy.Metrics;
using Switchback.Proxy.Window;
using Xunit;

namespace Switchback.Proxy.Tests.Window;

public sealed class MirrorMetricsTests
{
    [Fact]
    public async Task Figures_ArePublishedPerPartitionAndInTotal_WithBoundedLabels_AndRemovedWithTheirMirror()
    {
        var registry = new CollectorRegistry();
        var metrics = new MirrorMetrics(registry);
        var partitions = Enumerable.Range(0, MirrorMetrics.MaxPartitionSeries + 6)
            .Select(p => new PartitionMirrorFigures("orders.events", p, 0, 10, 12, 10, 10, 2, 1500, p == 1 ? 3 : 0, 0, null)).ToList();
        var figures = new MirrorFigures("orders", "target", "source", MirrorState.Running, DateTimeOffset.UnixEpoch, partitions,
            new MirrorTotals(10 * partitions.Count, 1000, 2 * partitions.Count, 1500, 3), new OffsetAlignment(10 * partitions.Count, 0, null), null);

        metrics.Publish(figures);
        metrics.Publish(figures with { Totals = figures.Totals with { Copied = figures.Totals.Copied + 5 } });
        var text = await Scrape(registry);

        Assert.Contains("switchback_mirror_copied_records_total{family=\"orders\",partition=\"orders.events-0\"} 10", text);
        Assert.Contains($"switchback_mirror_copied_records_total{{family=\"orders\",partition=\"total\"}} {10 * partitions.Count + 5}", text);
        Assert.Contains("switchback_mirror_lag_records{family=\"orders\",partition=\"orders.events-3\"} 2", text);
        Assert.Contains("switchback_mirror_lag_seconds{family=\"orders\",partition=\"total\"} 1.5", text);
        Assert.Contains("switchback_mirror_stray_writes{family=\"orders\",partition=\"orders.events-1\"} 3", text);
        Assert.Contains("switchback_mirror_running{family=\"orders\"} 1", text);
        Assert.Contains("switchback_mirror_divergent_copies{family=\"orders\"} 0", text);
        Assert.Contains($"partition=\"orders.events-{MirrorMetrics.MaxPartitionSeries - 1}\"", text);
        Assert.DoesNotContain($"partition=\"orders.events-{MirrorMetrics.MaxPartitionSeries}\"", text);

        metrics.Remove("orders");
        Assert.DoesNotContain("family=\"orders\"", await Scrape(registry));
    }

    private static async Task<string> Scrape(CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream);
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
