using System.Net;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Security;

namespace Switchback.Proxy.Configuration;

/// <summary>The validated, immutable configuration the proxy runs with.</summary>
public sealed record ProxyConfig(
    IPEndPoint ListenerEndPoint,
    ListenerConfig Listener,
    string AdvertisedHost,
    int AdvertisedPort,
    IPEndPoint AdminEndPoint,
    string? AdminToken,
    string StateDirectory,
    IReadOnlyList<ClusterConfig> Clusters,
    IReadOnlyList<FamilyConfig> Families,
    ClusterRoute DefaultRoute,
    LimitsConfig Limits,
    string ClusterId,
    ListenerSecurity? Security = null,
    ServerTlsConfig? AdminTls = null,
    FleetConfig? Fleet = null,
    string? AdminReadToken = null,
    TimeSpan? ScorecardInterval = null)
{
    /// <summary>How often every family's scorecard is recomputed in the background.</summary>
    public TimeSpan ScorecardRefresh => ScorecardInterval ?? TimeSpan.FromSeconds(15);

    /// <summary>TLS and SASL of the client listener; <see cref="ListenerSecurity.None"/> when neither is configured.</summary>
    public ListenerSecurity ListenerSecurity => Security ?? ListenerSecurity.None;

    /// <summary>
    /// Whether clients are kept away from a topic: the fleet's control topic is the proxy's own, and a client writing
    /// to it through the proxy (which reaches it with the proxy's identity) could forge or delete the fleet's log.
    /// </summary>
    public bool IsReservedTopic(string topic) => Fleet is { } fleet && topic == fleet.Topic;

    /// <summary>Whether clients are kept away from a group: the fleet's own groups (a client joining one could pose as an instance).</summary>
    public bool IsReservedGroup(string group) => Fleet is { } fleet && (group == fleet.GroupId || group == fleet.ReaderGroupId);

    public ClusterConfig Cluster(string name)
    {
        foreach (var cluster in Clusters)
        {
            if (cluster.Name == name)
            {
                return cluster;
            }
        }
        throw new KeyNotFoundException($"Unknown cluster '{name}'.");
    }
}

/// <summary>
/// Fleet mode: instances coordinate switches through <see cref="Topic"/> on <see cref="Cluster"/> and a group named
/// after it; an instance that cannot renew its membership within <see cref="SessionTimeout"/> stops routing writes.
/// Its reader of the topic waits at most <see cref="ReadWait"/> at the broker per fetch.
/// </summary>
public sealed record FleetConfig(string Cluster, string Topic, string InstanceId, TimeSpan SessionTimeout, TimeSpan ReadWait)
{
    /// <summary>The group whose membership is the list of live instances.</summary>
    public string GroupId => $"{Topic}-fleet";

    /// <summary>The group id the control topic's reader names (it never joins or commits).</summary>
    public string ReaderGroupId => $"{Topic}-reader";
}

/// <summary>An upstream Kafka cluster. <see cref="Ordinal"/> (its position in configuration) scopes its node ids.</summary>
public sealed record ClusterConfig(string Name, int Ordinal, IReadOnlyList<DnsEndPoint> BootstrapServers, UpstreamSecurity? Security = null)
{
    public UpstreamSecurity UpstreamSecurity => Security ?? UpstreamSecurity.None;
}

/// <summary>A topic family as configured: its patterns and its initial route.</summary>
public sealed record FamilyConfig(
    string Name,
    IReadOnlyList<NamePattern> Topics,
    IReadOnlyList<NamePattern> Groups,
    IReadOnlyList<NamePattern> TransactionalIds,
    ClusterRoute InitialRoute,
    IReadOnlyList<string>? AllowedPrincipals = null,
    bool MirrorBack = false,
    AbortCriteria? AbortWhen = null,
    string? Owner = null,
    LagLimits? Gates = null,
    OffsetTranslationConfig? OffsetTranslation = null)
{
    /// <summary>How a read switch translates the family's group offsets; identity when not configured.</summary>
    public OffsetTranslationConfig Translation => OffsetTranslation ?? OffsetTranslationConfig.Identity;
    /// <summary>The data-parity gate's limits; by default the cluster taking over must have every record.</summary>
    public LagLimits LagLimits => Gates ?? LagLimits.None;
}

/// <summary>
/// How far the cluster taking over may lag, per partition, for the data-parity gate to pass: in records and/or in age of
/// the oldest missing record. Null means no limit of that kind.
/// </summary>
public sealed record LagLimits(long? MaxRecords, long? MaxMs)
{
    /// <summary>Every record must be there.</summary>
    public static LagLimits None { get; } = new(0, null);
}

/// <summary>
/// When a family rolls itself back: any criterion set holding without a break for <see cref="For"/> while its rollback
/// window is open. Unset criteria are not evaluated.
/// </summary>
public sealed record AbortCriteria(double? ProduceErrorRatePercent, double? ProduceLatencyP99Ms, long? StrayWrites, TimeSpan For);

/// <summary>
/// Per-broker listening ports: <see cref="BrokerPortStart"/> upwards, or kernel-chosen when 0;
/// <see cref="BrokerPortStartDefaulted"/> when it was not configured but derived from the bootstrap port.
/// </summary>
public sealed record ListenerConfig(int BrokerPortStart, int MaxBrokers, bool BrokerPortStartDefaulted = false);

public sealed record LimitsConfig(
    int MaxFrameBytes,
    int MaxInFlightPerConnection,
    TimeSpan UpstreamRequestTimeout,
    TimeSpan UpstreamConnectTimeout,
    TimeSpan MetadataRefreshInterval,
    int MaxConnections,
    TimeSpan IdleTimeout);
