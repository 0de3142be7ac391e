using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;

namespace Switchback.Proxy.Tests.Security;

/// <summary>Two mock clusters (source, target) shared by the security tests, and a self-signed certificate in PEM files.</summary>
public sealed class SecurityFixture : IDisposable
{
    public const string OrdersTopic = "orders.events";
    public const string PaymentsTopic = "payments.events";

    public SecurityFixture()
    {
        Source = MockKafkaCluster.Start(1);
        Target = MockKafkaCluster.Start(1);
        foreach (var cluster in new[] { Source, Target })
        {
            cluster.CreateTopic(OrdersTopic, 2);
            cluster.CreateTopic(PaymentsTopic, 2);
        }
        Directory = Path.Combine(Path.GetTempPath(), $"switchback-security-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(Directory);
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=switchback-test", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment | X509KeyUsageFlags.KeyCertSign, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        CertificatePath = Path.Combine(Directory, "proxy.crt");
        KeyPath = Path.Combine(Directory, "proxy.key");
        File.WriteAllText(CertificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(KeyPath, key.ExportPkcs8PrivateKeyPem());
    }

    public MockKafkaCluster Source { get; }
    public MockKafkaCluster Target { get; }
    public string Directory { get; }
    public string CertificatePath { get; }
    public string KeyPath { get; }

    /// <summary>Proxy settings with kernel-chosen ports: families orders (source) and payments (target).</summary>
    public Dictionary<string, string?> Settings(string? sourceBootstrap = null)
    {
        var settings = DemoRunner.DemoSettings(sourceBootstrap ?? Source.BootstrapServers, Target.BootstrapServers);
        settings["Switchback:Listener:Bind"] = "127.0.0.1:0";
        settings["Switchback:Admin:Bind"] = "127.0.0.1:0";
        settings["Switchback:StateDirectory"] = Path.Combine(Directory, $"state-{Guid.NewGuid():N}");
        return settings;
    }

    public static async Task<ProxyHost> StartAsync(Dictionary<string, string?> settings, LogCapture logs)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var host = ProxyHost.Create(configuration, logging =>
        {
            logging.ClearProviders();
            logging.AddProvider(logs);
            logging.SetMinimumLevel(LogLevel.Debug);
        });
        await host.StartAsync();
        return host;
    }

    public void Dispose()
    {
        Source.Dispose();
        Target.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Collects every log line of a proxy, with exceptions, so tests can assert what was (and was not) logged.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture capture, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            capture._lines.Enqueue($"{logLevel} {category}[{eventId.Id}] {formatter(state, exception)} {exception}");
    }
}
