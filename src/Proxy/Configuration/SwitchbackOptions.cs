namespace Switchback.Proxy.Configuration;

// Bindable shapes of the "Switchback" configuration section (see CONTRACT.md). They are validated and turned into
// the immutable ProxyConfig by ConfigValidator; nothing else reads them.

public sealed class SwitchbackOptions
{
    public ListenerOptions Listener { get; set; } = new();
    public AdminOptions Admin { get; set; } = new();
    public string StateDirectory { get; set; } = "./switchback-state";
    public Dictionary<string, ClusterOptions> Clusters { get; set; } = new(StringComparer.Ordinal);
    public List<FamilyOptions> Families { get; set; } = [];
    public RouteOptions Default { get; set; } = new();
    public LimitsOptions Limits { get; set; } = new();
    public string? ClusterId { get; set; }
    /// <summary>Several instances switching as one, coordinated through a Kafka cluster; a single instance when absent.</summary>
    public FleetOptions? Fleet { get; set; }
    /// <summary>How the families' scorecards are kept up to date.</summary>
    public ScorecardOptions Scorecard { get; set; } = new();
}

public sealed class ScorecardOptions
{
    /// <summary>Seconds between background recomputations of every family's scorecard.</summary>
    public int IntervalSeconds { get; set; } = 15;
}

public sealed class FleetOptions
{
    /// <summary>The configured cluster that hosts the control topic and the fleet's group.</summary>
    public string? Cluster { get; set; }
    public string Topic { get; set; } = "__switchback";
    /// <summary>This instance's name in the fleet (default: host name and listener port).</summary>
    public string? InstanceId { get; set; }
    public int SessionTimeoutMs { get; set; } = 10_000;
    /// <summary>Longest a read of the control topic waits at the broker for new records (librdkafka's fetch.wait.max.ms).</summary>
    public int ReadWaitMs { get; set; } = 10;
}

public sealed class ListenerOptions
{
    public string Bind { get; set; } = "127.0.0.1:9092";
    public string AdvertisedHost { get; set; } = "127.0.0.1";
    /// <summary>First port of the per-broker range (default: the bootstrap port + 1; 0 lets the kernel choose).</summary>
    public int? BrokerPortStart { get; set; }
    /// <summary>Most client-visible brokers (upstream brokers of all clusters) the proxy will advertise.</summary>
    public int MaxBrokers { get; set; } = 64;
    /// <summary>TLS on the bootstrap and every per-broker port; off when absent.</summary>
    public TlsListenerOptions? Tls { get; set; }
    /// <summary>SASL authentication terminated at the proxy; off when absent.</summary>
    public SaslListenerOptions? Sasl { get; set; }
}

public sealed class TlsListenerOptions
{
    /// <summary>PEM file with the server certificate (and optionally its chain).</summary>
    public string? CertificatePath { get; set; }
    /// <summary>PEM file with the certificate's private key.</summary>
    public string? KeyPath { get; set; }
    /// <summary>PEM file of CA certificates that client certificates must chain to (mutual TLS); optional.</summary>
    public string? ClientCaPath { get; set; }
}

public sealed class SaslListenerOptions
{
    /// <summary>Mechanisms offered: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.</summary>
    public List<string> Mechanisms { get; set; } = [];
    /// <summary>User name to password.</summary>
    public Dictionary<string, string> Users { get; set; } = new(StringComparer.Ordinal);
    /// <summary>User name to mechanism to precomputed SCRAM credential (<c>salt=..,stored_key=..,server_key=..,iterations=..</c>).</summary>
    public Dictionary<string, Dictionary<string, string>> ScramCredentials { get; set; } = new(StringComparer.Ordinal);
}

public sealed class AdminOptions
{
    public string Bind { get; set; } = "127.0.0.1:9190";
    public string? Token { get; set; }
    /// <summary>A bearer token that may only read (GET); <see cref="Token"/> may also switch, roll back and close.</summary>
    public string? ReadToken { get; set; }
    /// <summary>HTTPS on the admin endpoint; plain HTTP when absent.</summary>
    public TlsListenerOptions? Tls { get; set; }
}

public sealed class ClusterOptions
{
    public string? BootstrapServers { get; set; }
    public UpstreamTlsOptions? Tls { get; set; }
    public UpstreamSaslOptions? Sasl { get; set; }
}

public sealed class UpstreamTlsOptions
{
    public bool Enabled { get; set; }
    /// <summary>PEM file of CA certificates the cluster's certificates must chain to (default: the system store).</summary>
    public string? CaPath { get; set; }
    /// <summary>Client certificate and key (PEM) for clusters that require mutual TLS.</summary>
    public string? CertificatePath { get; set; }
    public string? KeyPath { get; set; }
    /// <summary>Name checked against the brokers' certificates instead of the host they are reached at.</summary>
    public string? ServerName { get; set; }
}

public sealed class UpstreamSaslOptions
{
    /// <summary>PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.</summary>
    public string? Mechanism { get; set; }
    public string? Username { get; set; }
    public string? Password { get; set; }
}

public sealed class FamilyOptions
{
    public string? Name { get; set; }
    public List<string> Topics { get; set; } = [];
    public List<string> Groups { get; set; } = [];
    public List<string> TransactionalIds { get; set; } = [];
    public string? Write { get; set; }
    public string? Read { get; set; }
    /// <summary>Principals (<c>User:name</c>) allowed to use the family; empty allows everyone.</summary>
    public List<string> AllowedPrincipals { get; set; } = [];
    /// <summary>While the rollback window is open and writes have moved, copy them back to the origin's write cluster.</summary>
    public bool MirrorBack { get; set; }
    /// <summary>While the rollback window is open, roll the family back by itself when one of these holds for ForSeconds.</summary>
    public AbortWhenOptions? AbortWhen { get; set; }
    /// <summary>Who decides about the family's switch and its rollback (a person or team, free text).</summary>
    public string? Owner { get; set; }
    /// <summary>How far the cluster taking over may lag for the data-parity gate to pass.</summary>
    public FamilyGatesOptions? Gates { get; set; }
    /// <summary>How a read switch carries group offsets to a cluster whose offsets differ (identity when absent).</summary>
    public OffsetTranslationOptions? OffsetTranslation { get; set; }
}

public sealed class OffsetTranslationOptions
{
    /// <summary><c>identity</c> (offsets kept by replication), <c>mirrormaker2</c> or <c>timestamp</c>.</summary>
    public string? Strategy { get; set; }
    /// <summary>The configured cluster MirrorMaker 2 replicates from (default: the family's configured Read cluster).</summary>
    public string? SourceCluster { get; set; }
    /// <summary>The configured cluster it replicates to (default: the one other cluster, when exactly two are configured).</summary>
    public string? TargetCluster { get; set; }
    /// <summary>MirrorMaker 2's alias of the source cluster (default: SourceCluster's name).</summary>
    public string? SourceAlias { get; set; }
    /// <summary>MirrorMaker 2's alias of the target cluster (default: TargetCluster's name); it names the offset-syncs topic.</summary>
    public string? TargetAlias { get; set; }
    /// <summary><c>identity</c> (same topic names on both clusters) or <c>default</c> (<c>&lt;SourceAlias&gt;.&lt;topic&gt;</c> on the target).</summary>
    public string? ReplicationPolicy { get; set; }
    public InternalTopicOptions OffsetSyncs { get; set; } = new();
    public InternalTopicOptions Checkpoints { get; set; } = new();
}

public sealed class InternalTopicOptions
{
    /// <summary>The configured cluster that holds the topic.</summary>
    public string? Cluster { get; set; }
    public string? Topic { get; set; }
}

public sealed class AbortWhenOptions
{
    /// <summary>Percent of produced partitions answered with an error.</summary>
    public double? ProduceErrorRatePercent { get; set; }
    /// <summary>99th percentile of produce latency as the proxy's clients see it.</summary>
    public double? ProduceLatencyP99Ms { get; set; }
    /// <summary>Records written to the old write cluster by clients that bypass the proxy.</summary>
    public long? StrayWrites { get; set; }
    /// <summary>How long a criterion must hold before the family is rolled back.</summary>
    public int? ForSeconds { get; set; }
}

public sealed class FamilyGatesOptions
{
    /// <summary>Records per partition the cluster taking over may lack (default 0, or unlimited when only MaxLagMs is set).</summary>
    public long? MaxLagRecords { get; set; }
    /// <summary>Age in milliseconds of the oldest record per partition the cluster taking over may lack.</summary>
    public long? MaxLagMs { get; set; }
}

public sealed class RouteOptions
{
    public string? Write { get; set; }
    public string? Read { get; set; }
}

public sealed class LimitsOptions
{
    /// <summary>Largest request frame a client may send.</summary>
    public int MaxFrameBytes { get; set; } = 100 * 1024 * 1024;
    /// <summary>Requests a client connection may have in flight before the proxy stops reading from it.</summary>
    public int MaxInFlightPerConnection { get; set; } = 64;
    /// <summary>Time an upstream request may take beyond its own timeout before the proxy answers with an error.</summary>
    public int UpstreamRequestTimeoutMs { get; set; } = 60_000;
    public int UpstreamConnectTimeoutMs { get; set; } = 5_000;
    public int MetadataRefreshIntervalMs { get; set; } = 30_000;
    /// <summary>Client connections open at once, over the bootstrap and every per-broker port together.</summary>
    public int MaxConnections { get; set; } = 20_000;
    /// <summary>
    /// A client connection with no request for this long and none in flight is closed (Kafka's
    /// <c>connections.max.idle.ms</c> default).
    /// </summary>
    public int IdleTimeoutMs { get; set; } = 600_000;
}
