using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Switchback.Proxy.Tests.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Metrics;

/// <summary>
/// <c>deploy/grafana/switchback-dashboard.json</c> against a running proxy: every metric its queries name is one the
/// proxy exports once it has carried produce and fetch traffic through a switch with a rollback window's mirror.
/// </summary>
public sealed partial class GrafanaDashboardTests
{
    [Fact]
    public async Task EveryQueryOfTheDashboard_NamesAMetricTheProxyExports()
    {
        var queries = DashboardQueries();
        Assert.True(queries.Count >= 15, $"only {queries.Count} queries found");
        foreach (var query in queries)
        {
            Assert.True(query.Count(c => c == '(') == query.Count(c => c == ')') && query.Count(c => c == '{') == query.Count(c => c == '}'),
                $"unbalanced query: {query}");
        }
        var named = queries.SelectMany(q => MetricName().Matches(q).Select(m => m.Value))
            .Select(n => Regex.Replace(n, "_(bucket|sum|count)$", "")).ToHashSet(StringComparer.Ordinal);

        await using var rig = await SwitchingRig.StartAsync(partitions: 2, mirrorBack: true, settings: new Dictionary<string, string?>
        {
            ["Families:0:AbortWhen:ProduceErrorRatePercent"] = "50",
            ["Families:0:AbortWhen:ForSeconds"] = "30",
        });
        await ProduceAsync(rig.BootstrapServers, 20);
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "dashboard" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        await ProduceAsync(rig.BootstrapServers, 20);
        rig.Target.PushRequestErrors(0, 19); // one NOT_ENOUGH_REPLICAS answer, retried by the producer: an error answer on the page
        await ProduceAsync(rig.BootstrapServers, 5);
        Consume(rig.BootstrapServers, 45);

        using var http = new HttpClient();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        List<string> missing;
        while (true)
        {
            var exported = ExportedNames(await http.GetStringAsync($"{rig.AdminUrl}/metrics"));
            missing = [.. named.Where(n => !exported.Contains(n)).Order()];
            if (missing.Count == 0 || DateTime.UtcNow > deadline)
            {
                break;
            }
            await Task.Delay(100);
        }
        Assert.True(missing.Count == 0, $"the dashboard names metrics the proxy does not export: {string.Join(", ", missing)}");
    }

    private static List<string> DashboardQueries()
    {
        var path = Path.Combine(RepositoryRoot(), "deploy", "grafana", "switchback-dashboard.json");
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var queries = new List<string>();
        Collect(document.RootElement, queries);
        return queries;

        static void Collect(JsonElement element, List<string> queries)
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var property in element.EnumerateObject())
                    {
                        if (property.Name is "expr" or "definition" && property.Value.ValueKind == JsonValueKind.String)
                        {
                            queries.Add(property.Value.GetString()!);
                        }
                        Collect(property.Value, queries);
                    }
                    break;
                case JsonValueKind.Array:
                    foreach (var item in element.EnumerateArray())
                    {
                        Collect(item, queries);
                    }
                    break;
            }
        }
    }

    /// <summary>Names of the metric families on a Prometheus text page (from samples, so a family without series does not count).</summary>
    private static HashSet<string> ExportedNames(string page) =>
        page.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => SampleName().Match(l).Value)
            .Select(n => Regex.Replace(n, "_(bucket|sum|count)$", "")).ToHashSet(StringComparer.Ordinal);

    private static async Task ProduceAsync(string bootstrap, int count)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrap, EnableIdempotence = true })
            .SetLogHandler(static (_, _) => { }).Build();
        for (var i = 0; i < count; i++)
        {
            await producer.ProduceAsync(SwitchingRig.Topic, new Message<string, string> { Key = $"k{i % 4}", Value = $"v{i}" });
        }
    }

    private static void Consume(string bootstrap, int count)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = "orders-dashboard",
            AutoOffsetReset = AutoOffsetReset.Earliest,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Subscribe(SwitchingRig.Topic);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        for (var seen = 0; seen < count;)
        {
            Assert.True(DateTime.UtcNow < deadline, $"consumed {seen} of {count} records");
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { IsPartitionEOF: false })
            {
                seen++;
            }
        }
        consumer.Close();
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Proxy.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException("Proxy.sln not found above the test's directory");
    }

    [GeneratedRegex("switchback_[a-z_]+")]
    private static partial Regex MetricName();

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*")]
    private static partial Regex SampleName();
}
