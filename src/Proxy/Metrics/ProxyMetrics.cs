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
    private readonly Counter _producedRecords;
    private readonly Counter _producedBytes;
    private readonly Counter _fetchedBytes;
    private readonly Counter _errorAnswers;
    private readonly Gauge _route;
    private readonly Gauge _reachable;
    private readonly Gauge _abortBreached;
    private readonly Counter _automaticRollbacks;
    private readonly Histogram _upstreamLatency;
    private readonly ConcurrentDictionary<string, UpstreamLatency> _upstreamBy = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Family, string Cluster), (Counter.Child Records, Counter.Child Bytes)> _producedBy = new();
    private readonly ConcurrentDictionary<(string Family, string Cluster), Counter.Child> _fetchedBy = new();
    private readonly ConcurrentDictionary<(ApiKey Api, string Family, short Error), Counter.Child> _errorsBy = new();

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
        // Label sets stay bounded: families and clusters come from the configuration, error codes from Kafka's list.
        _producedRecords = factory.CreateCounter("switchback_family_produce_records_total", "Records sent upstream in produce requests, by family and write cluster.", "family", "cluster");
        _producedBytes = factory.CreateCounter("switchback_family_produce_bytes_total", "Record batch bytes sent upstream in produce requests, by family and write cluster.", "family", "cluster");
        _fetchedBytes = factory.CreateCounter("switchback_family_fetch_bytes_total",
            "Bytes of fetch answers relayed to clients, by family and read cluster (family \"*\": one answer for topics of several families).", "family", "cluster");
        _errorAnswers = factory.CreateCounter("switchback_error_answers_total", "Partitions answered to clients with an error, by API, family and Kafka error.", "api", "family", "error");
        _route = factory.CreateGauge("switchback_family_route", "1 for the cluster a family's writes (role=write) or reads (role=read) go to, 0 for the others.", "family", "role", "cluster");
        _reachable = factory.CreateGauge("switchback_upstream_reachable", "1 while the proxy's last metadata refresh of a cluster succeeded, 0 otherwise.", "cluster");
        _abortBreached = factory.CreateGauge("switchback_abort_criteria_breached", "1 while a family's abort criterion holds (rolled back once it has held for ForSeconds), 0 otherwise.", "family", "criterion");
        _upstreamLatency = factory.CreateHistogram("switchback_upstream_request_duration_seconds",
            "Time from writing a request to an upstream broker to reading its answer, by cluster and API (a Fetch includes its wait for data).",
            new HistogramConfiguration { LabelNames = ["cluster", "api"], Buckets = Histogram.ExponentialBuckets(0.0001, 2, 18) });
        _automaticRollbacks = factory.CreateCounter("switchback_automatic_rollbacks_total", "Rollbacks the abort criteria made, by family and outcome.", "family", "outcome");
    }

    /// <summary>The last minute of produce outcomes per family, for the abort criteria.</summary>
    public ProduceOutcomes ProduceOutcomes { get; } = new();

    /// <summary>A produce request's records on their way to a family's write cluster.</summary>
    public void Produced(string family, string cluster, long records, long bytes)
    {
        if (!_producedBy.TryGetValue((family, cluster), out var children))
        {
            children = _producedBy.GetOrAdd((family, cluster), static (key, metrics) =>
                (metrics._producedRecords.WithLabels(key.Family, key.Cluster), metrics._producedBytes.WithLabels(key.Family, key.Cluster)), this);
        }
        children.Records.Inc(records);
        children.Bytes.Inc(bytes);
    }

    /// <summary>A produce answer for a family's partitions: its errors, and the latency its client saw from <paramref name="receivedAt"/>.</summary>
    public void ProduceAnswered(string family, int partitions, int errorPartitions, long receivedAt) =>
        ProduceOutcomes.Record(family, partitions, errorPartitions, System.Diagnostics.Stopwatch.GetElapsedTime(receivedAt));

    public void Fetched(string family, string cluster, long bytes)
    {
        if (!_fetchedBy.TryGetValue((family, cluster), out var child))
        {
            child = _fetchedBy.GetOrAdd((family, cluster), static (key, counter) => counter.WithLabels(key.Family, key.Cluster), _fetchedBytes);
        }
        child.Inc(bytes);
    }

    /// <summary>Partitions of a family answered with <paramref name="error"/>.</summary>
    public void ErrorAnswered(ApiKey api, string family, short error, int partitions = 1)
    {
        if (!_errorsBy.TryGetValue((api, family, error), out var child))
        {
            child = _errorsBy.GetOrAdd((api, family, error), static (key, counter) =>
                counter.WithLabels(Name(key.Api), key.Family, ErrorName(key.Error)), _errorAnswers);
        }
        child.Inc(partitions);
    }

    /// <summary>The latency recorder of one cluster's upstream connections.</summary>
    public UpstreamLatency UpstreamLatency(string cluster) =>
        _upstreamBy.GetOrAdd(cluster, static (name, histogram) => new UpstreamLatency(histogram, name), _upstreamLatency);

    /// <summary>The routes in force and each cluster's reachability, set before each scrape.</summary>
    public void PublishRoutes(IEnumerable<(string Family, string Write, string Read)> routes, IReadOnlyCollection<(string Cluster, bool Reachable)> clusters)
    {
        foreach (var (family, write, read) in routes)
        {
            foreach (var (cluster, _) in clusters)
            {
                _route.WithLabels(family, "write", cluster).Set(cluster == write ? 1 : 0);
                _route.WithLabels(family, "read", cluster).Set(cluster == read ? 1 : 0);
            }
        }
        foreach (var (cluster, reachable) in clusters)
        {
            _reachable.WithLabels(cluster).Set(reachable ? 1 : 0);
        }
    }

    public void AbortCriterion(string family, string criterion, bool breached) => _abortBreached.WithLabels(family, criterion).Set(breached ? 1 : 0);

    public void AutomaticRollback(string family, string outcome) => _automaticRollbacks.WithLabels(family, outcome).Inc();

    /// <summary>A family's abort-criteria series at zero from the start, so a rate over them starts from a known value.</summary>
    public void AbortCriteriaConfigured(string family, IEnumerable<string> criteria)
    {
        foreach (var criterion in criteria)
        {
            AbortCriterion(family, criterion, breached: false);
        }
        _automaticRollbacks.WithLabels(family, "ok").IncTo(0);
        _automaticRollbacks.WithLabels(family, "failed").IncTo(0);
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

    /// <summary>An error's protocol name (NOT_ENOUGH_REPLICAS), from the proxy's list or else Confluent.Kafka's; the number when neither knows it.</summary>
    private static string ErrorName(short code)
    {
        var name = Enum.IsDefined((ErrorCode)code) ? ((ErrorCode)code).ToString()
            : Enum.IsDefined((Confluent.Kafka.ErrorCode)code) ? ((Confluent.Kafka.ErrorCode)code).ToString()
            : null;
        return name is null ? code.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : System.Text.RegularExpressions.Regex.Replace(name, "(?<=[a-z0-9])(?=[A-Z])", "_").ToUpperInvariant();
    }

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

/// <summary>One cluster's upstream answer latency, with a histogram child per API looked up once.</summary>
public sealed class UpstreamLatency(Histogram histogram, string cluster)
{
    private readonly Histogram.Child?[] _byApi = new Histogram.Child?[128];

    public void Observe(short apiKey, long sentAt)
    {
        if ((uint)apiKey >= (uint)_byApi.Length)
        {
            return;
        }
        var child = _byApi[apiKey] ??= histogram.WithLabels(cluster, Enum.IsDefined((ApiKey)apiKey) ? ((ApiKey)apiKey).ToString() : "Unknown");
        child.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(sentAt).TotalSeconds);
    }
}
