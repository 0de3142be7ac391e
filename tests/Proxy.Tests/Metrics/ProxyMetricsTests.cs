using System.Text;
using Prometheus;
using Switchback.Protocol;
using Switchback.Proxy.Metrics;
using Xunit;

namespace Switchback.Proxy.Tests.Metrics;

/// <summary>The labelled series the proxy exports, counted through the children it keeps per API and per route.</summary>
public sealed class ProxyMetricsTests
{
    [Fact]
    public async Task RequestsAndRoutedPartitions_AreCountedPerLabel_UnknownApisTogether()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var metrics = new ProxyMetrics(registry);

        for (var i = 0; i < 3; i++)
        {
            metrics.RequestReceived(100);
            metrics.RequestAnswered(ApiKey.Produce, TimeSpan.FromMilliseconds(2), 50);
        }
        metrics.RequestReceived(100);
        metrics.RequestAnswered(ApiKey.Fetch, TimeSpan.FromMilliseconds(2), 50);
        metrics.RequestAnswered((ApiKey)999, TimeSpan.FromMilliseconds(2), 50);
        metrics.RequestAnswered((ApiKey)(-3), TimeSpan.FromMilliseconds(2), 50);
        metrics.Routed(ApiKey.Produce, "orders", "source", 2);
        metrics.Routed(ApiKey.Produce, "orders", "source", 3);
        metrics.Routed(ApiKey.Produce, "orders", "target", 1);
        metrics.Routed(ApiKey.Fetch, "orders", "source", 4);

        var text = await ExportAsync(registry);

        Assert.Contains("switchback_requests_total{api=\"Produce\"} 3", text);
        Assert.Contains("switchback_requests_total{api=\"Fetch\"} 1", text);
        Assert.Contains("switchback_requests_total{api=\"Unknown\"} 2", text);
        Assert.Contains("switchback_request_duration_seconds_count{api=\"Produce\"} 3", text);
        Assert.Contains("switchback_routed_partitions_total{api=\"Produce\",family=\"orders\",cluster=\"source\"} 5", text);
        Assert.Contains("switchback_routed_partitions_total{api=\"Produce\",family=\"orders\",cluster=\"target\"} 1", text);
        Assert.Contains("switchback_routed_partitions_total{api=\"Fetch\",family=\"orders\",cluster=\"source\"} 4", text);
        Assert.DoesNotContain("api=\"Metadata\"", text); // a series appears once its API is seen
    }

    private static async Task<string> ExportAsync(CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream);
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
