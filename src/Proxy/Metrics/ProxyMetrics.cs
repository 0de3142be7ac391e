using System.Collections.Concurrent;
using Prometheus;
using Switchback.Protocol;

namespace Switchback.Proxy.Metrics;

/// <summary>The proxy's Prometheus metrics (served at <c>/metrics</c> on the admin endpoint).</summary>
public sealed class ProxyMetrics
{
    private static readonly string[] ApiNames = BuildApiNames();

    private readonly Counter _requests;
    private readonly Histogram _latency;
    private readonly Counter _routed;
    private readonly Counter _bytesIn;
    private readonly Counter _bytesOut;
    private readonly Gauge _inFlight;
    private readonly Gauge _connections;
    private readonly Counter _switches;
    private readonly Histogram _switchPause;
    // Labelled children, looked up once: WithLabels allocates its label array and searches on every call. Filled on
    // first use (a child appears on /metrics once its API is seen, as before); a race only looks up the same child twice.
    private readonly Counter.Child?[] _requestsByApi = new Counter.Child?[ApiNames.Length + 1];
    private readonly Histogram.Child?[] _latencyByApi = new Histogram.Child?[ApiNames.Length + 1];
    private readonly ConcurrentDictionary<(ApiKey Api, string Family, string Cluster), Counter.Child> _routedBy = new();

    public ProxyMetrics(CollectorRegistry? registry = null)
    {
        var factory = Prometheus.Metrics.WithCustomRegistry(registry ?? Prometheus.Metrics.DefaultRegistry);
        _requests = factory.CreateCounter("switchback_requests_total", "Client requests handled, by API.", "api");
        _latency = factory.CreateHistogram("switchback_request_duration_seconds", "Time from receiving a client request to its response being queued, by API.",
            new HistogramConfiguration { LabelNames = ["api"], Buckets = Histogram.ExponentialBuckets(0.0001, 2, 18) });
        _routed = factory.CreateCounter("switchback_routed_partitions_total", "Partitions routed upstream, by API, family and cluster.", "api", "family", "cluster");
        _bytesIn = factory.CreateCounter("switchback_client_bytes_received_total", "Bytes of request frames received from clients.");
        _bytesOut = factory.CreateCounter("switchback_client_bytes_sent_total", "Bytes of response frames sent to clients.");
        _inFlight = factory.CreateGauge("switchback_requests_in_flight", "Client requests received and not yet answered.");
        _connections = factory.CreateGauge("switchback_client_connections", "Open client connections.");
        _switches = factory.CreateCounter("switchback_switches_total", "Switches and rollbacks, by family, action and outcome.", "family", "action", "outcome");
        _switchPause = factory.CreateHistogram("switchback_switch_pause_seconds", "How long a switch held the family's requests.",
            new HistogramConfiguration { LabelNames = ["family"], Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });
    }

    public void RequestReceived(int bytes)
    {
        _bytesIn.Inc(bytes + 4);
        _inFlight.Inc();
    }

    public void RequestAnswered(ApiKey apiKey, TimeSpan elapsed, int responseBytes)
    {
        var slot = Slot(apiKey);
        (_requestsByApi[slot] ??= _requests.WithLabels(ApiName(slot))).Inc();
        (_latencyByApi[slot] ??= _latency.WithLabels(ApiName(slot))).Observe(elapsed.TotalSeconds);
        _bytesOut.Inc(responseBytes + 4);
        _inFlight.Dec();
    }

    public void RequestDropped() => _inFlight.Dec();

    public void Routed(ApiKey apiKey, string family, string cluster, int partitions)
    {
        if (!_routedBy.TryGetValue((apiKey, family, cluster), out var child))
        {
            child = _routedBy.GetOrAdd((apiKey, family, cluster), static (key, routed) => routed.WithLabels(Name(key.Api), key.Family, key.Cluster), _routed);
        }
        child.Inc(partitions);
    }

    /// <summary>Client connections open now (the <c>switchback_client_connections</c> gauge).</summary>
    public int OpenConnections => (int)_connections.Value;

    public void ConnectionOpened() => _connections.Inc();
    public void ConnectionClosed() => _connections.Dec();

    public void SwitchCompleted(string family, string action, TimeSpan pause)
    {
        _switches.WithLabels(family, action, "ok").Inc();
        _switchPause.WithLabels(family).Observe(pause.TotalSeconds);
    }

    public void SwitchFailed(string family, string action) => _switches.WithLabels(family, action, "failed").Inc();

    private static string Name(ApiKey apiKey) => ApiName(Slot(apiKey));

    // One slot per known API key, and a last one shared by every key beyond them ("Unknown").
    private static int Slot(ApiKey apiKey) => (ushort)apiKey < ApiNames.Length ? (ushort)apiKey : ApiNames.Length;

    private static string ApiName(int slot) => slot < ApiNames.Length ? ApiNames[slot] : "Unknown";

    private static string[] BuildApiNames()
    {
        var names = new string[100];
        for (var i = 0; i < names.Length; i++)
        {
            names[i] = Enum.IsDefined((ApiKey)i) ? ((ApiKey)i).ToString() : "Unknown";
        }
        return names;
    }
}
