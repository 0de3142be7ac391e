namespace Switchback.Proxy.Configuration;

/// <summary>How a family's group offsets are carried across a read switch.</summary>
public enum TranslationStrategy
{
    /// <summary>Replication keeps offsets: copy them unchanged.</summary>
    Identity,

    /// <summary>MirrorMaker 2's offset syncs (and checkpoints) map offsets between the clusters.</summary>
    MirrorMaker2,

    /// <summary>Replication keeps timestamps only: position by the timestamp of the last record consumed.</summary>
    Timestamp,
}

/// <summary>How MirrorMaker 2 names a replicated topic on the target cluster.</summary>
public enum ReplicationPolicyKind
{
    /// <summary><c>IdentityReplicationPolicy</c>: the same name on both clusters.</summary>
    Identity,

    /// <summary><c>DefaultReplicationPolicy</c>: <c>&lt;source alias&gt;.&lt;topic&gt;</c> on the target.</summary>
    Default,
}

/// <summary>A topic on a configured cluster.</summary>
public sealed record InternalTopic(string Cluster, string Topic);

/// <summary>
/// A family's offset translation. For <see cref="TranslationStrategy.MirrorMaker2"/>, replication runs from
/// <see cref="SourceCluster"/> to <see cref="TargetCluster"/>; a read switch in that direction translates forward, one
/// the other way (a rollback) with the same syncs reversed.
/// </summary>
public sealed record OffsetTranslationConfig(
    TranslationStrategy Strategy,
    string? SourceCluster = null,
    string? TargetCluster = null,
    string? SourceAlias = null,
    string? TargetAlias = null,
    ReplicationPolicyKind Policy = ReplicationPolicyKind.Identity,
    InternalTopic? OffsetSyncs = null,
    InternalTopic? Checkpoints = null)
{
    public static readonly OffsetTranslationConfig Identity = new(TranslationStrategy.Identity);

    /// <summary>MirrorMaker 2's default offset-syncs topic: <c>mm2-offset-syncs.&lt;target alias&gt;.internal</c>.</summary>
    public static string DefaultOffsetSyncsTopic(string targetAlias) => $"mm2-offset-syncs.{targetAlias}.internal";

    /// <summary>MirrorMaker 2's default checkpoints topic: <c>&lt;source alias&gt;.checkpoints.internal</c>.</summary>
    public static string DefaultCheckpointsTopic(string sourceAlias) => $"{sourceAlias}.checkpoints.internal";

    /// <summary>The name a source topic has on the target cluster.</summary>
    public string RemoteTopic(string sourceTopic) => Policy == ReplicationPolicyKind.Default ? $"{SourceAlias}.{sourceTopic}" : sourceTopic;

    /// <summary>The source topic a target topic replicates, or null when it is not a replica (a topic of the target's own).</summary>
    public string? UpstreamTopic(string targetTopic)
    {
        if (Policy == ReplicationPolicyKind.Identity)
        {
            return targetTopic;
        }
        var prefix = $"{SourceAlias}.";
        return targetTopic.StartsWith(prefix, StringComparison.Ordinal) && targetTopic.Length > prefix.Length ? targetTopic[prefix.Length..] : null;
    }
}

/// <summary>Validates <c>Families[].OffsetTranslation</c> into an <see cref="OffsetTranslationConfig"/>.</summary>
internal static class OffsetTranslationParser
{
    public static OffsetTranslationConfig? Parse(string key, OffsetTranslationOptions? options, string? familyRead, IReadOnlyList<string> clusters)
    {
        if (options is null)
        {
            return null;
        }
        var strategy = options.Strategy?.Trim().ToLowerInvariant() switch
        {
            null or "" or "identity" => TranslationStrategy.Identity,
            "mirrormaker2" => TranslationStrategy.MirrorMaker2,
            "timestamp" => TranslationStrategy.Timestamp,
            _ => throw new ConfigException($"{key}:Strategy", $"'{options.Strategy}' is not a strategy (identity, mirrormaker2, timestamp)."),
        };
        if (strategy != TranslationStrategy.MirrorMaker2)
        {
            foreach (var (name, value) in new[] { ("SourceCluster", options.SourceCluster), ("TargetCluster", options.TargetCluster), ("SourceAlias", options.SourceAlias),
                ("TargetAlias", options.TargetAlias), ("ReplicationPolicy", options.ReplicationPolicy), ("OffsetSyncs:Cluster", options.OffsetSyncs.Cluster),
                ("OffsetSyncs:Topic", options.OffsetSyncs.Topic), ("Checkpoints:Cluster", options.Checkpoints.Cluster), ("Checkpoints:Topic", options.Checkpoints.Topic) })
            {
                if (value is not null)
                {
                    throw new ConfigException($"{key}:{name}", $"applies to the mirrormaker2 strategy only (this family's is {strategy.ToString().ToLowerInvariant()}).");
                }
            }
            return new OffsetTranslationConfig(strategy);
        }

        var source = Cluster($"{key}:SourceCluster", options.SourceCluster ?? familyRead, clusters);
        var target = options.TargetCluster ?? (clusters.Count == 2 ? clusters.Single(c => c != source) : null)
            ?? throw new ConfigException($"{key}:TargetCluster", $"is required when more than two clusters are configured (configured: {string.Join(", ", clusters)}).");
        Cluster($"{key}:TargetCluster", target, clusters);
        if (target == source)
        {
            throw new ConfigException($"{key}:TargetCluster", $"must differ from the source cluster ('{source}').");
        }
        var sourceAlias = Alias($"{key}:SourceAlias", options.SourceAlias ?? source);
        var targetAlias = Alias($"{key}:TargetAlias", options.TargetAlias ?? target);
        var policy = options.ReplicationPolicy?.Trim().ToLowerInvariant() switch
        {
            null or "" or "identity" => ReplicationPolicyKind.Identity,
            "default" => ReplicationPolicyKind.Default,
            _ => throw new ConfigException($"{key}:ReplicationPolicy", $"'{options.ReplicationPolicy}' is not a replication policy (identity, default)."),
        };
        var syncs = new InternalTopic(
            Cluster($"{key}:OffsetSyncs:Cluster", options.OffsetSyncs.Cluster ?? source, clusters),
            TopicName($"{key}:OffsetSyncs:Topic", options.OffsetSyncs.Topic ?? OffsetTranslationConfig.DefaultOffsetSyncsTopic(targetAlias)));
        var checkpoints = new InternalTopic(
            Cluster($"{key}:Checkpoints:Cluster", options.Checkpoints.Cluster ?? target, clusters),
            TopicName($"{key}:Checkpoints:Topic", options.Checkpoints.Topic ?? OffsetTranslationConfig.DefaultCheckpointsTopic(sourceAlias)));
        return new OffsetTranslationConfig(strategy, source, target, sourceAlias, targetAlias, policy, syncs, checkpoints);
    }

    private static string Cluster(string key, string? name, IReadOnlyList<string> clusters) =>
        name is not null && clusters.Contains(name)
            ? name
            : throw new ConfigException(key, $"'{name}' is not a configured cluster (configured: {string.Join(", ", clusters)}).");

    // MirrorMaker 2 aliases name topics, and its default separator is '.': an alias containing one would be ambiguous.
    private static string Alias(string key, string alias) =>
        alias.Length > 0 && alias.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-')
            ? alias
            : throw new ConfigException(key, $"'{alias}' is not a MirrorMaker 2 cluster alias (letters, digits, '_', '-').");

    private static string TopicName(string key, string topic) =>
        topic.Length is > 0 and <= 249 && topic.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')
            ? topic
            : throw new ConfigException(key, $"'{topic}' is not a valid topic name (letters, digits, '.', '_', '-').");
}
