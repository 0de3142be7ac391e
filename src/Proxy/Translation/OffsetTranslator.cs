using Confluent.Kafka;

namespace Switchback.Proxy.Translation;

/// <summary>How a group's offset on the new read cluster was obtained.</summary>
public static class TranslationMethod
{
    public const string Identity = "identity";
    public const string Sync = "sync";
    public const string Checkpoint = "checkpoint";
    public const string Timestamp = "timestamp";

    /// <summary>No translation: the partition is not written (see the note).</summary>
    public const string Untranslated = "untranslated";

    /// <summary>The group's offset on the new cluster was already further: left as it was (never moved backwards).</summary>
    public const string Kept = "kept";
}

/// <summary>
/// One committed offset of a group on the old read cluster, and what it becomes on the new one: the topic there (a
/// replication policy may rename it), the offset (null when untranslated), how it was obtained and, where useful, why.
/// </summary>
public sealed record TranslatedOffset(string Topic, int Partition, long OldOffset, string NewTopic, long? NewOffset, string Method, string? Note = null)
{
    public TopicPartition NewPartition => new(NewTopic, Partition);

    public TranslatedOffset Untranslated(string why) => this with { NewOffset = null, Method = TranslationMethod.Untranslated, Note = why };
}

/// <summary>Translates a group's committed offsets from one read cluster to another.</summary>
public interface IOffsetTranslator
{
    /// <summary>The strategy's name, as configured.</summary>
    string Strategy { get; }

    /// <summary>
    /// Each of <paramref name="committed"/> (offsets on <paramref name="from"/>) as it is to be written on
    /// <paramref name="to"/>; a partition that cannot be translated comes back <see cref="TranslationMethod.Untranslated"/>
    /// with the reason. Throws only on cancellation.
    /// </summary>
    Task<IReadOnlyList<TranslatedOffset>> TranslateAsync(string group, IReadOnlyDictionary<TopicPartition, long> committed, string from, string to,
        CancellationToken cancellationToken);
}

/// <summary>Replication keeps offsets: each offset is written unchanged (Switchback's behaviour before translation).</summary>
public sealed class IdentityTranslator : IOffsetTranslator
{
    public static readonly IdentityTranslator Instance = new();

    public string Strategy => "identity";

    public Task<IReadOnlyList<TranslatedOffset>> TranslateAsync(string group, IReadOnlyDictionary<TopicPartition, long> committed, string from, string to,
        CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<TranslatedOffset>>([.. committed.Select(c =>
            new TranslatedOffset(c.Key.Topic, c.Key.Partition.Value, c.Value, c.Key.Topic, c.Value, TranslationMethod.Identity))]);
}
