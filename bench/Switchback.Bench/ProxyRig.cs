using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Fleet;
using Switchback.Proxy.Hosting;

namespace Switchback.Bench;

/// <summary>
/// Two in-process mock clusters (<c>source</c>, <c>target</c>, 3 brokers each) and proxy instances in front of them,
/// each with its own state directory and ports, the family <c>orders</c> (topics <c>orders.*</c>) on source. One
/// instance runs alone, as <c>switchback run</c> without a <c>Fleet</c> section; more form a fleet whose control
/// topic is on source.
/// </summary>
public sealed class ProxyRig : IAsyncDisposable
{
    public const string Family = "orders";
    public const string Topic = "orders.events";
    public const string ControlTopic = "__switchback";
    private readonly List<string> _stateDirectories = [];
    private readonly List<ProxyHost> _instances = [];

    private ProxyRig(int partitions, bool fleet)
    {
        Source = MockKafkaCluster.Start(3);
        Target = MockKafkaCluster.Start(3);
        Source.CreateTopic(Topic, partitions);
        Target.CreateTopic(Topic, partitions);
        if (fleet)
        {
            // The mock does not offer CreateTopics: the control topic is made here, as an operator would.
            Source.CreateTopic(ControlTopic, 1);
        }
    }

    public MockKafkaCluster Source { get; }
    public MockKafkaCluster Target { get; }
    public IReadOnlyList<ProxyHost> Instances => _instances;
    public bool IsFleet => _instances.Count > 1;

    /// <summary>Starts the clusters and <paramref name="instances"/> proxies; a fleet is returned once every member sees all the others.</summary>
    /// <param name="controlReadWaitMs">The fleet's <c>Fleet:ReadWaitMs</c>; the proxy's default when null.</param>
    /// <param name="mirrorBack">The family's <c>MirrorBack</c>.</param>
    public static async Task<ProxyRig> StartAsync(int instances, int partitions, int? controlReadWaitMs = null, bool mirrorBack = false)
    {
        var rig = new ProxyRig(partitions, fleet: instances > 1);
        try
        {
            var configurations = Enumerable.Range(1, instances).Select(i => rig.Configuration(instances > 1 ? $"p{i}" : null, controlReadWaitMs, mirrorBack)).ToList();
            var hosts = configurations.Select(c => ProxyHost.Create(c, logging => logging.ClearProviders().AddConsole().SetMinimumLevel(LogLevel.Error))).ToList();
            rig._instances.AddRange(hosts);
            // Side by side: each join rebalances the group, so one after another would wait out each rebalance.
            await Task.WhenAll(hosts.Select(h => h.StartAsync()));
            if (rig.IsFleet)
            {
                await rig.WhenAllMembersLiveAsync(TimeSpan.FromSeconds(60));
            }
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
        return rig;
    }

    private async Task WhenAllMembersLiveAsync(TimeSpan limit)
    {
        var waited = Stopwatch.StartNew();
        while (!_instances.All(h => h.Services.GetRequiredService<FleetCoordinator>().Liveness.LiveInstances.Count == _instances.Count))
        {
            if (waited.Elapsed > limit)
            {
                throw new TimeoutException($"the fleet of {_instances.Count} did not form within {limit.TotalSeconds:0} s");
            }
            await Task.Delay(100);
        }
    }

    private IConfiguration Configuration(string? instanceId, int? controlReadWaitMs, bool mirrorBack)
    {
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-bench-{Environment.ProcessId}-{instanceId ?? "single"}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(stateDirectory);
        _stateDirectories.Add(stateDirectory);
        var settings = new Dictionary<string, string?>
        {
            ["Switchback:Listener:Bind"] = "127.0.0.1:0",
            ["Switchback:Listener:AdvertisedHost"] = "127.0.0.1",
            ["Switchback:Listener:BrokerPortStart"] = "0",
            ["Switchback:Admin:Bind"] = "127.0.0.1:0",
            ["Switchback:StateDirectory"] = stateDirectory,
            ["Switchback:Clusters:source:BootstrapServers"] = Source.BootstrapServers,
            ["Switchback:Clusters:target:BootstrapServers"] = Target.BootstrapServers,
            ["Switchback:Families:0:Name"] = Family,
            ["Switchback:Families:0:Topics:0"] = "orders.*",
            ["Switchback:Families:0:Groups:0"] = "orders-*",
            ["Switchback:Families:0:Write"] = "source",
            ["Switchback:Families:0:Read"] = "source",
            ["Switchback:Families:0:MirrorBack"] = mirrorBack ? "true" : null,
            ["Switchback:Default:Write"] = "source",
            ["Switchback:Default:Read"] = "source",
        };
        if (instanceId is not null)
        {
            settings["Switchback:Fleet:Cluster"] = "source";
            settings["Switchback:Fleet:Topic"] = ControlTopic;
            settings["Switchback:Fleet:InstanceId"] = instanceId;
            if (controlReadWaitMs is { } wait)
            {
                settings["Switchback:Fleet:ReadWaitMs"] = wait.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return new ConfigurationBuilder().AddInMemoryCollection(settings.Where(s => s.Value is not null)).Build();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _instances)
        {
            await host.DisposeAsync();
        }
        Source.Dispose();
        Target.Dispose();
        foreach (var directory in _stateDirectories)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
