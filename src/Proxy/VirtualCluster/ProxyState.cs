using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Metrics;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>Process-wide state every client session shares: configuration, routes, upstream clusters, id maps.</summary>
public sealed class ProxyState : IAsyncDisposable
{
    private readonly Dictionary<string, UpstreamCluster> _clusters;
    // The same clusters as an array: the per-request loops below enumerate it without boxing an enumerator.
    private readonly UpstreamCluster[] _clustersByOrdinal;

    public ProxyState(ProxyConfig config, RouteTableHolder routes, ProxyMetrics metrics, ILoggerFactory loggerFactory, Fleet.ControlLog? controlLog = null)
    {
        Metrics = metrics;
        Traffic = new TrafficRegistry(config.Families.Select(f => f.Name).Append(FamilyRoute.DefaultFamilyName));
        Config = config;
        Sessions = new ClientSessions(config.Limits);
        Routes = routes;
        // Both read their state files back against the routes in force, so they come after the routes.
        var switching = loggerFactory.CreateLogger("Switchback.Switching");
        // In a fleet, producers' mappings are shared through the control log (see ProducerIdMapper, TransactionalProducers).
        Producers = new ProducerIdMapper(this, config.StateDirectory, switching, controlLog);
        Transactions = new TransactionalProducers(this, config.StateDirectory, switching, shared: controlLog);
        NodeIds = new NodeIds(config.Clusters.Count, config.Fleet);
        AdvertisedPort = config.AdvertisedPort;
        LoggerFactory = loggerFactory;
        var logger = loggerFactory.CreateLogger("Switchback.Upstream");
        _clusters = config.Clusters.ToDictionary(c => c.Name, c => new UpstreamCluster(c, config.Limits, logger, config.IsReservedTopic), StringComparer.Ordinal);
        _clustersByOrdinal = [.. config.Clusters.Select(c => _clusters[c.Name])];
        ClustersByOrdinal = _clustersByOrdinal;
        Authorization = Security.FamilyAuthorization.Create(config);
    }

    /// <summary>Per-family allow lists, or null when no family restricts its principals.</summary>
    public Security.FamilyAuthorization? Authorization { get; }

    public ProxyConfig Config { get; }

    /// <summary>Open client sessions of every listener: the connection limit and the idle heartbeat.</summary>
    public ClientSessions Sessions { get; }
    public ProxyMetrics Metrics { get; }

    /// <summary>Per-family in-flight traffic a switch coordinates with.</summary>
    public TrafficRegistry Traffic { get; }

    /// <summary>Idempotent producer ids and sequences mapped across write switches.</summary>
    public ProducerIdMapper Producers { get; }

    /// <summary>Transactional producer ids mapped across write switches.</summary>
    public TransactionalProducers Transactions { get; }

    /// <summary>Consumer group members seen on each cluster, which a read switch removes from the group it leaves.</summary>
    public GroupMembers GroupMembers { get; } = new();

    /// <summary>The broker ids clients see (this instance's range in a fleet).</summary>
    public NodeIds NodeIds { get; }

    /// <summary>The port handed to clients for every broker: the listener's, known once it is bound.</summary>
    public int AdvertisedPort { get; set; }
    public RouteTableHolder Routes { get; }
    public ILoggerFactory LoggerFactory { get; }
    public TopicIds TopicIds { get; } = new();
    public IReadOnlyList<UpstreamCluster> ClustersByOrdinal { get; }
    public IEnumerable<UpstreamCluster> Clusters => ClustersByOrdinal;

    public UpstreamCluster Cluster(string name) => _clusters[name];

    /// <summary>Every topic name in the clusters' current views (for resolving the proxy's topic ids).</summary>
    public IEnumerable<string> KnownTopicNames()
    {
        foreach (var cluster in _clustersByOrdinal)
        {
            if (cluster.View is { } view)
            {
                foreach (var name in view.Topics.Keys)
                {
                    yield return name;
                }
            }
        }
    }

    private int _bootstrapNodeId = int.MinValue;

    /// <summary>
    /// The virtual broker that shares the bootstrap address: the lowest node id known when clients first ask,
    /// fixed for the life of the process. Clients then find one of the cluster's brokers already connected (the
    /// bootstrap connection), as with a real cluster, instead of waiting to connect a first broker.
    /// </summary>
    public int? BootstrapNodeId
    {
        get
        {
            var current = Volatile.Read(ref _bootstrapNodeId);
            if (current != int.MinValue)
            {
                return current;
            }
            var lowest = int.MaxValue;
            foreach (var cluster in ClustersByOrdinal)
            {
                if (cluster.View is { Brokers.Count: > 0 } view)
                {
                    lowest = Math.Min(lowest, view.Brokers.Min(b => NodeIds.ToVirtual(view.Ordinal, b.NodeId)));
                }
            }
            if (lowest == int.MaxValue)
            {
                return null;
            }
            Interlocked.CompareExchange(ref _bootstrapNodeId, lowest, int.MinValue);
            return Volatile.Read(ref _bootstrapNodeId);
        }
    }

    /// <summary>
    /// Resolves the port of a client-visible broker (set by the listener that owns the ports); null when the broker
    /// has none because its port could not be bound: answers then leave that broker out, as a broker's answers leave
    /// out one that is down.
    /// </summary>
    public Func<int, ValueTask<int?>> BrokerPort { get; set; } = _ => ValueTask.FromResult<int?>(0);

    /// <summary>Cancelled when the proxy begins to shut down: sessions stop reading and finish what is in flight.</summary>
    public CancellationToken Stopping { get; set; }

    /// <summary>
    /// The versions the proxy advertises for an API: what it can parse, narrowed to what every known cluster
    /// supports. Null when the proxy does not offer the API.
    /// </summary>
    public (short Min, short Max)? AdvertisedVersions(ApiKey apiKey)
    {
        if (!ProxyApis.Offered.TryGetValue(apiKey, out var offered))
        {
            return null;
        }
        var (min, max) = offered;
        foreach (var cluster in _clustersByOrdinal)
        {
            if (cluster.View is not { } view)
            {
                continue;
            }
            if (!view.ApiVersions.TryGetValue((short)apiKey, out var range))
            {
                return ProxyApis.AnsweredLocally.Contains(apiKey) ? (min, max) : null;
            }
            if (!ProxyApis.AnsweredLocally.Contains(apiKey))
            {
                min = Math.Max(min, range.Min);
                max = Math.Min(max, range.Max);
            }
        }
        return min <= max ? (min, max) : null;
    }

    public async ValueTask DisposeAsync()
    {
        Sessions.Dispose();
        await Producers.DisposeAsync().ConfigureAwait(false);
        await Transactions.DisposeAsync().ConfigureAwait(false);
        foreach (var cluster in ClustersByOrdinal)
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
        }
    }
}
