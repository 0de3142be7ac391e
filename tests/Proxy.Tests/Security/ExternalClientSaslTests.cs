using Switchback.Proxy.Security;
using Switchback.Proxy.Tests.Integration;
using Xunit;

namespace Switchback.Proxy.Tests.Security;

/// <summary>
/// SASL with clients nobody on this team wrote: kcat (librdkafka 2.0, which needs SaslHandshake v0 advertised and
/// echoes its SCRAM nonce twice) and kafka-python (SaslHandshake v0, then raw unframed tokens).
/// </summary>
public sealed class ExternalClientSaslTests(SecurityFixture fixture) : IClassFixture<SecurityFixture>
{
    private const string Password = "ext-Secret-7";

    private Dictionary<string, string?> Settings()
    {
        var settings = fixture.Settings();
        settings["Switchback:Listener:Sasl:Mechanisms:0"] = SaslMechanisms.Plain;
        settings["Switchback:Listener:Sasl:Mechanisms:1"] = SaslMechanisms.ScramSha256;
        settings["Switchback:Listener:Sasl:Mechanisms:2"] = SaslMechanisms.ScramSha512;
        settings["Switchback:Listener:Sasl:Users:carol"] = Password;
        return settings;
    }

    [Theory]
    [InlineData(SaslMechanisms.ScramSha256)]
    [InlineData(SaslMechanisms.ScramSha512)]
    [InlineData(SaslMechanisms.Plain)]
    public async Task Kcat_ProducesAndConsumesWithSasl_AndAWrongPasswordFails(string mechanism)
    {
        var kcat = await ExternalClients.EnsureKcatAsync();
        var logs = new LogCapture();
        await using var host = await SecurityFixture.StartAsync(Settings(), logs);
        string[] Sasl(string password) => ["-b", host.BootstrapServers, "-X", "security.protocol=SASL_PLAINTEXT", "-X", $"sasl.mechanism={mechanism}",
            "-X", "sasl.username=carol", "-X", $"sasl.password={password}"];
        var marker = $"kcat-{Guid.NewGuid():N}";
        var produce = await ExternalClients.RunAsync(kcat, [.. Sasl(Password), "-P", "-t", SecurityFixture.PaymentsTopic, "-p", "0"], stdin: marker + "\n", timeout: TimeSpan.FromSeconds(30));
        Assert.True(produce.ExitCode == 0, produce.Errors);
        var consume = await ExternalClients.RunAsync(kcat, [.. Sasl(Password), "-C", "-t", SecurityFixture.PaymentsTopic, "-p", "0", "-o", "beginning", "-e"], timeout: TimeSpan.FromSeconds(30));
        Assert.Contains(marker, consume.Output, StringComparison.Ordinal);
        Assert.Contains(logs.Lines, l => l.Contains($"authenticated as User:carol with {mechanism}", StringComparison.Ordinal));

        var refused = await ExternalClients.RunAsync(kcat, [.. Sasl("wrong-Ext-8"), "-L", "-m", "5"], timeout: TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("Authentication failed", refused.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain(logs.Lines, l => l.Contains(Password, StringComparison.Ordinal) || l.Contains("wrong-Ext-8", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Kcat_SaslSslScram_ProducesAndLists()
    {
        var kcat = await ExternalClients.EnsureKcatAsync();
        var settings = Settings();
        settings["Switchback:Listener:Tls:CertificatePath"] = fixture.CertificatePath;
        settings["Switchback:Listener:Tls:KeyPath"] = fixture.KeyPath;
        await using var host = await SecurityFixture.StartAsync(settings, new LogCapture());
        string[] common = ["-b", host.BootstrapServers, "-X", "security.protocol=SASL_SSL", "-X", $"ssl.ca.location={fixture.CertificatePath}",
            "-X", "sasl.mechanism=SCRAM-SHA-512", "-X", "sasl.username=carol", "-X", $"sasl.password={Password}"];
        var produce = await ExternalClients.RunAsync(kcat, [.. common, "-P", "-t", SecurityFixture.PaymentsTopic], stdin: "over-tls\n", timeout: TimeSpan.FromSeconds(30));
        Assert.True(produce.ExitCode == 0, produce.Errors);
        var list = await ExternalClients.RunAsync(kcat, [.. common, "-L"], timeout: TimeSpan.FromSeconds(30));
        Assert.Contains(SecurityFixture.PaymentsTopic, list.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(SaslMechanisms.Plain)]
    [InlineData(SaslMechanisms.ScramSha512)]
    public async Task KafkaPython_ProducesWithRawTokensAfterHandshakeV0(string mechanism)
    {
        await ExternalClients.EnsureKafkaPythonAsync();
        var logs = new LogCapture();
        await using var host = await SecurityFixture.StartAsync(Settings(), logs);
        var script = $$"""
            from kafka import KafkaProducer
            p = KafkaProducer(bootstrap_servers="{{host.BootstrapServers}}", security_protocol="SASL_PLAINTEXT", sasl_mechanism="{{mechanism}}",
                              sasl_plain_username="carol", sasl_plain_password="{{Password}}", api_version_auto_timeout_ms=10000)
            m = p.send("{{SecurityFixture.PaymentsTopic}}", b"python").get(timeout=20)
            print("offset", m.offset)
            p.close()
            """;
        var run = await ExternalClients.RunAsync(ExternalClients.SystemPython, ["-c", script], timeout: TimeSpan.FromSeconds(60));
        Assert.True(run.ExitCode == 0, run.Errors);
        Assert.Contains("offset", run.Output, StringComparison.Ordinal);
        Assert.Contains(logs.Lines, l => l.Contains($"authenticated as User:carol with {mechanism}", StringComparison.Ordinal));
    }
}
