using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Tests.Switching;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// Two in-process mock clusters (<c>source</c>, <c>target</c>) and a fleet of proxy instances in one test process,
/// each with its own state directory and ports, coordinated through the control topic on <c>source</c>. The family
/// <c>orders</c> (topics <c>orders.*</c>, groups and transactional ids <c>orders-*</c>) starts on source.
/// </summary>
public sealed class FleetRig : IAsyncDisposable
{
    public const string Family = "orders";
    public const string Topic = "orders.events";
    public const string ControlTopic = "__switchback";
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(90) };
    private readonly Dictionary<string, string> _stateDirectories = new(StringComparer.Ordinal);

    private FleetRig(int partitions, int sessionTimeoutMs, bool controlBehindRelay, bool mirrorBack)
    {
        Partitions = partitions;
        MirrorBack = mirrorBack;
        SessionTimeoutMs = sessionTimeoutMs;
        Source = MockKafkaCluster.Start(3);
        Target = MockKafkaCluster.Start(3);
        foreach (var cluster in new[] { Source, Target })
        {
            cluster.CreateTopic(Topic, partitions);
        }
        if (controlBehindRelay)
        {
            // A cluster of its own for the fleet, reached only through a relay that can cut one instance off.
            Control = MockKafkaCluster.Start(1);
            Relay = new ClientCutRelay(Control);
        }
        // The mock does not offer CreateTopics: the control topic is made here, as an operator would.
        (Control ?? Source).CreateTopic(ControlTopic, 1);
    }

    /// <summary>The cluster hosting the control topic when it is not <see cref="Source"/>.</summary>
    public MockKafkaCluster? Control { get; }

    /// <summary>The relay every instance reaches <see cref="Control"/> through.</summary>
    internal ClientCutRelay? Relay { get; }

    /// <summary>The client id an instance's fleet clients (membership, control log) use, for <see cref="ClientCutRelay.Cut"/>.</summary>
    public static string FleetClientId(string instance) => $"switchback-fleet-{instance}";

    public MockKafkaCluster Source { get; }
    public MockKafkaCluster Target { get; }
    public int Partitions { get; }
    public int SessionTimeoutMs { get; }

    /// <summary>The family's <c>MirrorBack</c>: a write switch starts a mirror back to the window's origin on the instance that ran it.</summary>
    public bool MirrorBack { get; }
    public Dictionary<string, ProxyHost> Instances { get; } = new(StringComparer.Ordinal);

    public static async Task<FleetRig> StartAsync(int instances = 3, int partitions = 4, int sessionTimeoutMs = 6000, bool controlBehindRelay = false,
        bool mirrorBack = false)
    {
        var rig = new FleetRig(partitions, sessionTimeoutMs, controlBehindRelay, mirrorBack);
        try
        {
            // Started side by side: each join rebalances the group, so one after another would wait out each rebalance.
            await Task.WhenAll(Enumerable.Range(1, instances).Select(i => rig.StartInstanceAsync($"p{i}")));
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
        return rig;
    }

    public async Task<ProxyHost> StartInstanceAsync(string id)
    {
        var host = ProxyHost.Create(new ConfigurationBuilder().AddInMemoryCollection(Settings(id)).Build(), logging => logging.ClearProviders());
        await host.StartAsync();
        lock (Instances)
        {
            Instances[id] = host;
        }
        return host;
    }

    /// <summary>
    /// The settings of instance <paramref name="id"/> (its own state directory, kept across restarts; ports the kernel
    /// chooses): an instance run as a separate process gets the same ones, with its ports fixed.
    /// </summary>
    public Dictionary<string, string?> Settings(string id)
    {
        string? stateDirectory;
        lock (_stateDirectories)
        {
            if (!_stateDirectories.TryGetValue(id, out stateDirectory))
            {
                stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-fleet-{id}-{Guid.NewGuid():N}");
                Directory.CreateDirectory(stateDirectory);
                _stateDirectories[id] = stateDirectory;
            }
        }
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
            ["Switchback:Families:0:TransactionalIds:0"] = "orders-*",
            ["Switchback:Families:0:Write"] = "source",
            ["Switchback:Families:0:Read"] = "source",
            ["Switchback:Families:0:MirrorBack"] = MirrorBack ? "true" : "false",
            ["Switchback:Default:Write"] = "source",
            ["Switchback:Default:Read"] = "source",
            ["Switchback:Fleet:Cluster"] = Control is null ? "source" : "control",
            ["Switchback:Fleet:Topic"] = ControlTopic,
            ["Switchback:Fleet:InstanceId"] = id,
            ["Switchback:Fleet:SessionTimeoutMs"] = $"{SessionTimeoutMs}",
        };
        if (Relay is not null)
        {
            settings["Switchback:Clusters:control:BootstrapServers"] = Relay.BootstrapServers;
        }
        return settings;
    }

    public ProxyHost this[string id] => Instances[id];

    /// <summary>Stops an instance the orderly way (it leaves the group).</summary>
    public async Task StopInstanceAsync(string id)
    {
        ProxyHost host;
        lock (Instances)
        {
            host = Instances[id];
            Instances.Remove(id);
        }
        await host.DisposeAsync();
    }

    public Task<AdminAnswer> PostAsync(string instance, string path, object body) =>
        SendAsync(instance, HttpMethod.Post, path, JsonSerializer.Serialize(body));

    public Task<AdminAnswer> GetAsync(string instance, string path) => SendAsync(instance, HttpMethod.Get, path, null);

    public async Task<AdminAnswer> SendAsync(string instance, HttpMethod method, string path, string? body)
    {
        using var request = new HttpRequestMessage(method, new Uri(Instances[instance].AdminUri, path));
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return new AdminAnswer(response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>The family's write cluster as each instance routes it now.</summary>
    public IReadOnlyDictionary<string, string> WriteRoutes() =>
        Instances.ToDictionary(i => i.Key, i => i.Value.State.Routes.Current.Find(Family)!.Route.Write);

    public async ValueTask DisposeAsync()
    {
        foreach (var host in Instances.Values.ToList())
        {
            await host.DisposeAsync();
        }
        _http.Dispose();
        if (Relay is not null)
        {
            await Relay.DisposeAsync();
        }
        Source.Dispose();
        Target.Dispose();
        Control?.Dispose();
        foreach (var directory in _stateDirectories.Values)
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
