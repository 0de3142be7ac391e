using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Integration;

/// <summary>
/// Clients written by others, each over a different span of protocol versions (see PEERS.md), produce and consume
/// with a group through the proxy. The topic belongs to <c>payments</c>, routed to target, so a record that
/// reached source (the default route) or arrived twice shows a routing fault. Each client then appears in the
/// proxy's client inventory with where it produced, fetched and committed.
/// </summary>
[Collection(ProxyCollection.Name)]
public sealed class ExternalClientTests(ProxyFixture fixture, ITestOutputHelper output)
{
    private const int Count = 20;

    [Fact]
    public async Task Kcat_ProducesAndConsumesWithGroupThroughProxy_RecordsLandOnRouteClusterExactlyOnce()
    {
        var kcat = await ExternalClients.EnsureKcatAsync();
        var topic = fixture.NewTopic("payments");
        var input = string.Concat(Enumerable.Range(0, Count).Select(i => $"k{i}:kcat-{i}\n"));

        var clientId = $"itest-kcat-{Guid.NewGuid():N}";
        var produce = await ExternalClients.RunAsync(kcat,
            ["-b", fixture.Bootstrap, "-P", "-t", topic, "-K:", "-X", "acks=all", "-X", "message.timeout.ms=20000", "-X", $"client.id={clientId}"], input);
        Assert.True(produce.ExitCode == 0, $"kcat -P failed: {produce}");

        var consume = await ExternalClients.RunAsync(kcat,
            ["-b", fixture.Bootstrap, "-G", ProxyFixture.NewGroup("payments"), "-X", "auto.offset.reset=earliest", "-X", $"client.id={clientId}",
             "-X", "fetch.wait.max.ms=100", "-X", "session.timeout.ms=6000", "-c", ExternalClients.Text(Count), "-f", "%s\n", topic],
            timeout: TimeSpan.FromSeconds(60));
        Assert.True(consume.ExitCode == 0, $"kcat -G failed: {consume}");
        var expected = Enumerable.Range(0, Count).Select(i => $"kcat-{i}").ToList();
        Assert.Equal(expected.Order(StringComparer.Ordinal),
            consume.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal));

        AssertLandedOnTargetOnly(topic, expected);
        var inventory = await AssertInventoriedAsync(id => id == clientId);
        // KIP-511: librdkafka names itself in ApiVersions v3.
        Assert.All(inventory, c => Assert.Equal("librdkafka", c.GetProperty("softwareName").GetString()));
    }

    [Fact]
    public async Task KafkaPython_ProducesAndConsumesWithGroupThroughProxy_RecordsLandOnRouteClusterExactlyOnce()
    {
        await ExternalClients.EnsureKafkaPythonAsync();
        var topic = fixture.NewTopic("payments");
        var run = await ExternalClients.RunAsync(ExternalClients.SystemPython,
            [Path.Combine(ExternalClients.ClientsDirectory, "kafka_python_client.py"), fixture.Bootstrap, topic,
             ProxyFixture.NewGroup("payments"), ExternalClients.Text(Count)]);
        Assert.True(run.ExitCode == 0, $"kafka-python client failed: {run}");
        Assert.Contains($"consumed {Count}", run.Output, StringComparison.Ordinal);
        AssertLandedOnTargetOnly(topic, Enumerable.Range(0, Count).Select(i => $"kafka-python-{i}").ToList());
        await AssertInventoriedAsync(id => id?.StartsWith("kafka-python", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task Kafkajs_ProducesAndConsumesWithGroupThroughProxy_RecordsLandOnRouteClusterExactlyOnce()
    {
        var nodeModules = await ExternalClients.EnsureKafkajsAsync();
        var topic = fixture.NewTopic("payments");
        var run = await ExternalClients.RunAsync("node",
            [Path.Combine(ExternalClients.ClientsDirectory, "kafkajs_client.js"), fixture.Bootstrap, topic,
             ProxyFixture.NewGroup("payments"), ExternalClients.Text(Count)],
            environment: new Dictionary<string, string> { ["NODE_PATH"] = nodeModules });
        Assert.True(run.ExitCode == 0, $"kafkajs client failed: {run}");
        Assert.Contains($"consumed {Count}", run.Output, StringComparison.Ordinal);
        AssertLandedOnTargetOnly(topic, Enumerable.Range(0, Count).Select(i => $"kafkajs-{i}").ToList());
        await AssertInventoriedAsync(id => id == "itest-kafkajs");
    }

    /// <summary>
    /// The client's connections are in the inventory (closed by now), with the payments family produced to, fetched
    /// from and committed to on target, its route.
    /// </summary>
    private async Task<List<JsonElement>> AssertInventoriedAsync(Func<string?, bool> isClient)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri(fixture.Proxy.AdminUri, "v1/clients"));
        var entries = JsonDocument.Parse(text).RootElement.Clone().EnumerateArray().Where(c => isClient(c.GetProperty("clientId").GetString())).ToList();
        Assert.NotEmpty(entries);
        foreach (var entry in entries.Take(3))
        {
            output.WriteLine($"{entry.GetProperty("clientId")}: software '{entry.GetProperty("softwareName")}' '{entry.GetProperty("softwareVersion")}'");
        }
        string[] Clusters(string use) => [.. entries.SelectMany(c => c.GetProperty("families").EnumerateArray())
            .Where(f => f.GetProperty("family").GetString() == "payments")
            .SelectMany(f => f.GetProperty(use).EnumerateArray().Select(c => c.GetString()!)).Distinct()];
        Assert.Equal(["target"], Clusters("producedTo"));
        Assert.Equal(["target"], Clusters("fetchedFrom"));
        Assert.Equal(["target"], Clusters("committedTo"));
        return entries;
    }

    private void AssertLandedOnTargetOnly(string topic, List<string> expected)
    {
        var onTarget = ProxyFixture.ReadDirectly(fixture.Target, topic).Select(r => r.Message.Value).Order(StringComparer.Ordinal);
        Assert.Equal(expected.Order(StringComparer.Ordinal), onTarget);
        Assert.Empty(ProxyFixture.ReadDirectly(fixture.Source, topic));
    }
}
