using System.Net;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Admin;

/// <summary>
/// The client inventory (<c>GET /v1/clients</c>, <c>switchback clients</c>) with Confluent.Kafka clients through the
/// proxy, and the read-only admin token. kcat, kafka-python and kafkajs are checked in <c>ExternalClientTests</c>.
/// </summary>
public sealed class ClientInventoryTests
{
    [Fact]
    public async Task Inventory_NamesEachClientItsSoftwareAndWhereItProducedFetchedAndCommitted_AcrossASwitch()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 2);
        var tag = Guid.NewGuid().ToString("N")[..8];
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            ClientId = $"inv-producer-{tag}",
            Acks = Acks.All,
            MessageTimeoutMs = 20_000,
        }).SetLogHandler(static (_, _) => { }).Build();
        for (var i = 0; i < 10; i++)
        {
            await producer.ProduceAsync(SwitchingRig.Topic, new Message<string, string> { Key = $"k{i}", Value = $"v{i}" });
        }

        var group = $"orders-inv-{tag}";
        using (var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            ClientId = $"inv-consumer-{tag}",
            GroupId = group,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            FetchWaitMaxMs = 50,
        }).SetLogHandler(static (_, _) => { }).Build())
        {
            consumer.Subscribe(SwitchingRig.Topic);
            var read = 0;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (read < 10 && DateTime.UtcNow < deadline)
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is not null)
                {
                    read++;
                }
            }
            Assert.Equal(10, read);
            consumer.Commit();
            consumer.Close();
        }

        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "inventory" });
        Assert.Equal(HttpStatusCode.OK, switched.Status);
        await producer.ProduceAsync(SwitchingRig.Topic, new Message<string, string> { Key = "after", Value = "switch" });

        var clients = (await rig.SendAsync(HttpMethod.Get, "v1/clients", null, null)).Body.EnumerateArray().ToList();
        var producerEntries = clients.Where(c => c.GetProperty("clientId").GetString() == $"inv-producer-{tag}").ToList();
        var consumerEntries = clients.Where(c => c.GetProperty("clientId").GetString() == $"inv-consumer-{tag}").ToList();
        Assert.NotEmpty(producerEntries);
        Assert.NotEmpty(consumerEntries);

        // KIP-511: Confluent.Kafka names itself in ApiVersions v3.
        Assert.All(producerEntries.Concat(consumerEntries), c =>
        {
            Assert.Equal("confluent-kafka-dotnet", c.GetProperty("softwareName").GetString());
            Assert.False(string.IsNullOrEmpty(c.GetProperty("softwareVersion").GetString()));
            Assert.Equal("User:ANONYMOUS", c.GetProperty("principal").GetString());
            Assert.StartsWith("127.0.0.1:", c.GetProperty("address").GetString(), StringComparison.Ordinal);
            Assert.False(string.IsNullOrEmpty(c.GetProperty("instance").GetString()));
        });
        Assert.Equal(["source", "target"], Clusters(producerEntries, "producedTo"));
        Assert.Empty(Clusters(producerEntries, "fetchedFrom"));
        Assert.Equal(["source"], Clusters(consumerEntries, "fetchedFrom"));
        Assert.Equal(["source"], Clusters(consumerEntries, "committedTo"));
        Assert.Empty(Clusters(consumerEntries, "producedTo"));
        // The consumer has gone: its connections are still listed, closed; the producer's are open.
        Assert.All(consumerEntries, c => Assert.Equal(JsonValueKind.String, c.GetProperty("closedAt").ValueKind));
        Assert.Contains(producerEntries, c => c.GetProperty("closedAt").ValueKind == JsonValueKind.Null);

        var (code, output, stderr) = await AdminCliRunner.RunWithOutputAsync(["clients", "--admin", rig.AdminUrl]);
        Assert.True(code == 0, stderr);
        Assert.Contains(output.Split('\n'), line => line.Contains($"inv-producer-{tag}", StringComparison.Ordinal)
            && line.Contains("confluent-kafka-dotnet", StringComparison.Ordinal) && line.Contains("orders[P:source P:target]", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ReadOnlyToken_MayRead_MayNotSwitch_AndTheAuditNamesTheTokenThatActed()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 2, token: "admin-secret", readToken: "read-secret");

        Assert.Equal(HttpStatusCode.OK, (await rig.SendAsync(HttpMethod.Get, "v1/families", null, "read-secret")).Status);
        Assert.Equal(HttpStatusCode.OK, (await rig.SendAsync(HttpMethod.Get, "v1/clients", null, "read-secret")).Status);
        var refused = await rig.SendAsync(HttpMethod.Post, $"v1/families/{SwitchingRig.Family}/switch", """{"write":"target","force":true}""", "read-secret");
        Assert.Equal(HttpStatusCode.Forbidden, refused.Status);
        Assert.Contains("read-only token", refused.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, (await rig.SendAsync(HttpMethod.Post, $"v1/families/{SwitchingRig.Family}/close", "", "read-secret")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await rig.SendAsync(HttpMethod.Get, "v1/families", null, "guess")).Status);
        Assert.Equal("source", (await rig.FamilyAsync()).Body.GetProperty("write").GetString());

        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "with authority" });
        Assert.Equal(HttpStatusCode.OK, switched.Status);
        Assert.Contains("with the admin token", rig.AuditText(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "read-secret", "needs Admin:Token")]
    [InlineData("same", "same", "must differ")]
    [InlineData("admin-secret", "", "must not be empty")]
    public void ReadToken_MisconfiguredIsRefused_NamingTheKey(string? token, string readToken, string message)
    {
        var settings = DemoRunner.DemoSettings("127.0.0.1:1", "127.0.0.1:2");
        settings["Switchback:Admin:Token"] = token;
        settings["Switchback:Admin:ReadToken"] = readToken;
        var error = Assert.Throws<ConfigException>(() => ConfigValidator.Load(new ConfigurationBuilder().AddInMemoryCollection(settings).Build()));
        Assert.Equal("Switchback:Admin:ReadToken", error.Key);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    private static string[] Clusters(IEnumerable<JsonElement> entries, string use) =>
        [.. entries.SelectMany(c => c.GetProperty("families").EnumerateArray())
            .Where(f => f.GetProperty("family").GetString() == SwitchingRig.Family)
            .SelectMany(f => f.GetProperty(use).EnumerateArray().Select(c => c.GetString()!))
            .Distinct().Order(StringComparer.Ordinal)];
}
