using System.Net;
using System.Security.Cryptography.X509Certificates;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Security;
using Switchback.Proxy.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Security;

/// <summary>
/// The upstream side. No TLS or SASL Kafka broker runs here (the mock cluster has neither), so the upstream is a
/// second proxy whose listener terminates TLS and SCRAM: proxy B treats proxy A as its "source" cluster.
/// </summary>
public sealed class UpstreamSecurityTests(SecurityFixture fixture) : IClassFixture<SecurityFixture>
{
    private const string UpstreamPassword = "upstream-Secret-3";

    private Dictionary<string, string?> SecuredUpstreamSettings()
    {
        var settings = fixture.Settings();
        settings["Switchback:Listener:Tls:CertificatePath"] = fixture.CertificatePath;
        settings["Switchback:Listener:Tls:KeyPath"] = fixture.KeyPath;
        settings["Switchback:Listener:Sasl:Mechanisms:0"] = SaslMechanisms.ScramSha512;
        settings["Switchback:Listener:Sasl:Users:relay"] = UpstreamPassword;
        return settings;
    }

    private Dictionary<string, string?> RelaySettings(string upstreamBootstrap, string password)
    {
        var settings = fixture.Settings(sourceBootstrap: upstreamBootstrap);
        settings["Switchback:Clusters:source:Tls:Enabled"] = "true";
        settings["Switchback:Clusters:source:Tls:CaPath"] = fixture.CertificatePath;
        settings["Switchback:Clusters:source:Sasl:Mechanism"] = SaslMechanisms.ScramSha512;
        settings["Switchback:Clusters:source:Sasl:Username"] = "relay";
        settings["Switchback:Clusters:source:Sasl:Password"] = password;
        return settings;
    }

    [Fact]
    public async Task UpstreamTlsAndScram_ProxyRelaysThroughASecuredCluster_AndItsAdminClientConnectsToo()
    {
        var upstreamLogs = new LogCapture();
        await using var upstream = await SecurityFixture.StartAsync(SecuredUpstreamSettings(), upstreamLogs);
        var relayLogs = new LogCapture();
        await using var relay = await SecurityFixture.StartAsync(RelaySettings(upstream.BootstrapServers, UpstreamPassword), relayLogs);

        var marker = Guid.NewGuid().ToString("N");
        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = relay.BootstrapServers, MessageTimeoutMs = 15_000 }).Build())
        {
            var result = await producer.ProduceAsync(new TopicPartition(SecurityFixture.OrdersTopic, 0), new Message<string, string> { Key = marker, Value = marker });
            Assert.Equal(PersistenceStatus.Persisted, result.Status);
        }
        using (var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = relay.BootstrapServers,
            GroupId = $"orders-{marker}",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 50,
        }).Build())
        {
            consumer.Assign(new TopicPartitionOffset(SecurityFixture.OrdersTopic, 0, Offset.Beginning));
            var deadline = DateTime.UtcNow.AddSeconds(20);
            var found = false;
            while (!found && DateTime.UtcNow < deadline)
            {
                found = consumer.Consume(TimeSpan.FromMilliseconds(200)) is { IsPartitionEOF: false } r && r.Message.Key == marker;
            }
            Assert.True(found);
        }
        Assert.Contains(upstreamLogs.Lines, l => l.Contains("authenticated as User:relay with SCRAM-SHA-512", StringComparison.Ordinal));

        // The admin client (used by readiness gates) speaks SASL_SSL to the same cluster.
        using var admin = new ClusterAdmin(relay.State.Config.Cluster("source"));
        var offsets = await admin.EndOffsetsAsync([new TopicPartition(SecurityFixture.OrdersTopic, 0)], TimeSpan.FromSeconds(10));
        Assert.True(offsets[new TopicPartition(SecurityFixture.OrdersTopic, 0)] >= 1);

        Assert.DoesNotContain(upstreamLogs.Lines.Concat(relayLogs.Lines), l => l.Contains(UpstreamPassword, StringComparison.Ordinal));
    }

    [Fact]
    public async Task UpstreamWrongPassword_ClusterIsUnreachable_WithAReasonThatNamesNoSecret()
    {
        var upstreamLogs = new LogCapture();
        await using var upstream = await SecurityFixture.StartAsync(SecuredUpstreamSettings(), upstreamLogs);
        var relayLogs = new LogCapture();
        await using var relay = await SecurityFixture.StartAsync(RelaySettings(upstream.BootstrapServers, "wrong-Password-4"), relayLogs);

        var cluster = relay.State.Cluster("source");
        var error = await Assert.ThrowsAnyAsync<Exception>(async () => await cluster.RefreshAsync());
        Assert.Contains("SASL SCRAM-SHA-512 authentication", error.Message, StringComparison.Ordinal);
        await ListenerSecurityTests.WaitForLogAsync(upstreamLogs, "authentication failed for user relay");
        Assert.DoesNotContain(upstreamLogs.Lines.Concat(relayLogs.Lines), l => l.Contains("wrong-Password-4", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UpstreamTls_UntrustedCertificate_IsRefused()
    {
        var upstreamLogs = new LogCapture();
        await using var upstream = await SecurityFixture.StartAsync(SecuredUpstreamSettings(), upstreamLogs);
        var settings = RelaySettings(upstream.BootstrapServers, UpstreamPassword);
        settings.Remove("Switchback:Clusters:source:Tls:CaPath");
        await using var relay = await SecurityFixture.StartAsync(settings, new LogCapture());
        var error = await Assert.ThrowsAnyAsync<Exception>(async () => await relay.State.Cluster("source").RefreshAsync());
        Assert.Contains("TLS handshake", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminTls_ServesHttpsWithTheToken_AndNeverLogsIt()
    {
        const string token = "admin-Token-5";
        var settings = fixture.Settings();
        settings["Switchback:Admin:Tls:CertificatePath"] = fixture.CertificatePath;
        settings["Switchback:Admin:Tls:KeyPath"] = fixture.KeyPath;
        settings["Switchback:Admin:Token"] = token;
        var logs = new LogCapture();
        await using var host = await SecurityFixture.StartAsync(settings, logs);
        Assert.Equal("https", host.AdminUri.Scheme);

        var expected = X509Certificate2.CreateFromPem(File.ReadAllText(fixture.CertificatePath));
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) => certificate?.Thumbprint == expected.Thumbprint,
        };
        using var http = new HttpClient(handler) { BaseAddress = host.AdminUri };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("v1/families")).StatusCode);
        http.DefaultRequestHeaders.Authorization = new("Bearer", token);
        var families = await http.GetAsync("v1/families");
        Assert.Equal(HttpStatusCode.OK, families.StatusCode);
        Assert.DoesNotContain(token, await families.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(logs.Lines, l => l.Contains(token, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Switchback:Listener:Tls:CertificatePath", "cert", "Switchback:Listener:Tls:KeyPath")]
    [InlineData("Switchback:Listener:Sasl:Mechanisms:0", "GSSAPI", "Switchback:Listener:Sasl:Mechanisms:0")]
    [InlineData("Switchback:Listener:Sasl:ScramCredentials:carol:SCRAM-SHA-256", "salt=c2VjcmV0LXZhbHVl", "Switchback:Listener:Sasl:ScramCredentials:carol:SCRAM-SHA-256")]
    [InlineData("Switchback:Clusters:source:Sasl:Mechanism", "PLAIN", "Switchback:Clusters:source:Sasl:Username")]
    [InlineData("Switchback:Clusters:source:Tls:CaPath", "/nonexistent.pem", "Switchback:Clusters:source:Tls:Enabled")]
    [InlineData("Switchback:Families:0:AllowedPrincipals:0", "alice", "Switchback:Families:0:AllowedPrincipals:0")]
    [InlineData("Switchback:Listener:Sasl:Userz:alice", "x", "Switchback:Listener:Sasl:Userz")]
    public void InvalidSecuritySettings_StopStartUp_NamingTheKey_AndNotTheValue(string key, string value, string expectedKey)
    {
        var settings = fixture.Settings();
        settings[key] = value;
        if (key.Contains(":Sasl:", StringComparison.Ordinal) && key.StartsWith("Switchback:Listener", StringComparison.Ordinal) && !key.Contains("Mechanisms", StringComparison.Ordinal))
        {
            settings["Switchback:Listener:Sasl:Mechanisms:0"] = SaslMechanisms.ScramSha256;
        }
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var error = Assert.Throws<ConfigException>(() => ConfigValidator.Load(configuration));
        Assert.Equal(expectedKey, error.Key);
        if (key.Contains("ScramCredentials", StringComparison.Ordinal))
        {
            Assert.DoesNotContain(value, error.Message, StringComparison.Ordinal);
        }
    }
}
