using Xunit;

namespace Switchback.Proxy.Tests.Integration;

/// <summary>
/// Clients written by others, each over a different span of protocol versions (see PEERS.md), produce and consume
/// with a group through the proxy. The topic belongs to <c>payments</c>, routed to target, so a record that
/// reached source (the default route) or arrived twice shows a routing fault.
/// </summary>
[Collection(ProxyCollection.Name)]
public sealed class ExternalClientTests(ProxyFixture fixture)
{
    private const int Count = 20;

    [Fact]
    public async Task Kcat_ProducesAndConsumesWithGroupThroughProxy_RecordsLandOnRouteClusterExactlyOnce()
    {
        var kcat = await ExternalClients.EnsureKcatAsync();
        var topic = fixture.NewTopic("payments");
        var input = string.Concat(Enumerable.Range(0, Count).Select(i => $"k{i}:kcat-{i}\n"));

        var produce = await ExternalClients.RunAsync(kcat,
            ["-b", fixture.Bootstrap, "-P", "-t", topic, "-K:", "-X", "acks=all", "-X", "message.timeout.ms=20000"], input);
        Assert.True(produce.ExitCode == 0, $"kcat -P failed: {produce}");

        var consume = await ExternalClients.RunAsync(kcat,
            ["-b", fixture.Bootstrap, "-G", ProxyFixture.NewGroup("payments"), "-X", "auto.offset.reset=earliest",
             "-X", "fetch.wait.max.ms=100", "-X", "session.timeout.ms=6000", "-c", ExternalClients.Text(Count), "-f", "%s\n", topic],
            timeout: TimeSpan.FromSeconds(60));
        Assert.True(consume.ExitCode == 0, $"kcat -G failed: {consume}");
        var expected = Enumerable.Range(0, Count).Select(i => $"kcat-{i}").ToList();
        Assert.Equal(expected.Order(StringComparer.Ordinal),
            consume.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal));

        AssertLandedOnTargetOnly(topic, expected);
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
    }

    private void AssertLandedOnTargetOnly(string topic, List<string> expected)
    {
        var onTarget = ProxyFixture.ReadDirectly(fixture.Target, topic).Select(r => r.Message.Value).Order(StringComparer.Ordinal);
        Assert.Equal(expected.Order(StringComparer.Ordinal), onTarget);
        Assert.Empty(ProxyFixture.ReadDirectly(fixture.Source, topic));
    }
}
