using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;

namespace Switchback.Proxy.Benchmarks.Relay;

/// <summary>
/// Everything in this process: a librdkafka mock cluster as the upstream (native code, so its allocations are not
/// in the GC's figures), one topic on it, and the proxy in front of it on ephemeral ports.
/// </summary>
internal sealed class RelayRig : IDisposable
{
    public const string Topic = "bench.relay";
    public const int Partitions = 3;
    private const int Brokers = 3;

    private readonly string _stateDirectory;

    private RelayRig(MockKafkaCluster upstream, ProxyHost proxy, string stateDirectory)
    {
        Upstream = upstream;
        Proxy = proxy;
        _stateDirectory = stateDirectory;
    }

    public MockKafkaCluster Upstream { get; }
    public ProxyHost Proxy { get; }

    public static RelayRig Start()
    {
        var upstream = MockKafkaCluster.Start(Brokers);
        upstream.CreateTopic(Topic, Partitions);
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-relaybench-{Guid.NewGuid():N}");
        var settings = new Dictionary<string, string?>
        {
            ["Switchback:Listener:Bind"] = "127.0.0.1:0",
            ["Switchback:Listener:AdvertisedHost"] = "127.0.0.1",
            ["Switchback:Admin:Bind"] = "127.0.0.1:0",
            ["Switchback:StateDirectory"] = stateDirectory,
            ["Switchback:Clusters:upstream:BootstrapServers"] = upstream.BootstrapServers,
            ["Switchback:Families:0:Name"] = "bench",
            ["Switchback:Families:0:Topics:0"] = "bench.*",
            ["Switchback:Families:0:Write"] = "upstream",
            ["Switchback:Families:0:Read"] = "upstream",
            ["Switchback:Default:Write"] = "upstream",
            ["Switchback:Default:Read"] = "upstream",
            // The periodic metadata refresh is background work, not per request: keep it out of the measurement.
            ["Switchback:Limits:MetadataRefreshIntervalMs"] = "3600000",
        };
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var proxy = ProxyHost.Create(configuration, logging =>
        {
            logging.ClearProviders();
            logging.SetMinimumLevel(LogLevel.Warning);
        });
        try
        {
            // Off the caller's synchronization context (xunit's, when the budget test runs this in-process).
            Task.Run(() => proxy.StartAsync()).GetAwaiter().GetResult();
        }
        catch
        {
            Task.Run(() => proxy.DisposeAsync().AsTask()).GetAwaiter().GetResult();
            upstream.Dispose();
            throw;
        }
        return new RelayRig(upstream, proxy, stateDirectory);
    }

    /// <summary>The highest version of <paramref name="apiKey"/> the proxy advertises, asked with ApiVersions v0 as a client would.</summary>
    public short AdvertisedMaxVersion(ApiKey apiKey)
    {
        using var client = BlockingKafkaClient.Connect(Bootstrap);
        client.RoundTrip(RelayRequests.ApiVersions(1));
        var answer = RelayRequests.Decode<ApiVersionsResponse>(client.Response, ApiKey.ApiVersions, 0, 1);
        if (answer.ErrorCode != 0)
        {
            throw new InvalidOperationException($"ApiVersions failed with error {answer.ErrorCode}.");
        }
        return answer.ApiKeys.Find(k => k.ApiKeyValue == (short)apiKey)?.MaxVersion
            ?? throw new InvalidOperationException($"The proxy does not advertise {apiKey}.");
    }

    /// <summary>
    /// Opens a connection to the proxy's virtual broker that leads <paramref name="partition"/> of <see cref="Topic"/>,
    /// found with a Metadata request through the proxy, as a client finds it.
    /// </summary>
    public BlockingKafkaClient ConnectToLeader(int partition)
    {
        using var bootstrap = BlockingKafkaClient.Connect(Bootstrap);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        for (var correlationId = 1; ; correlationId++)
        {
            bootstrap.RoundTrip(RelayRequests.Metadata(correlationId, Topic));
            var metadata = RelayRequests.Decode<MetadataResponse>(bootstrap.Response, ApiKey.Metadata, 12, correlationId);
            var leader = metadata.Topics.Find(t => t.Name == Topic && t.ErrorCode == 0)?.Partitions.Find(p => p.PartitionIndex == partition)?.LeaderId;
            var broker = metadata.Brokers.Find(b => b.NodeId == leader);
            if (broker is not null)
            {
                return BlockingKafkaClient.Connect(new IPEndPoint(IPAddress.Parse(broker.Host), broker.Port));
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The proxy reported no leader for {Topic}/{partition} within 20 s.");
            }
            Thread.Sleep(100);
        }
    }

    private IPEndPoint Bootstrap => IPEndPoint.Parse(Proxy.BootstrapServers);

    public void Dispose()
    {
        Task.Run(() => Proxy.DisposeAsync().AsTask()).GetAwaiter().GetResult();
        Upstream.Dispose();
        if (Directory.Exists(_stateDirectory))
        {
            Directory.Delete(_stateDirectory, recursive: true);
        }
    }
}
