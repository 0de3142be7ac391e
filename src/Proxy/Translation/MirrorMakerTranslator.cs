using Confluent.Kafka;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.Translation;

/// <summary>
/// Translates through MirrorMaker 2's offset syncs: forward (source cluster to target cluster) with the newest sync at
/// or below the group's offset, downstream + 0 on an exact match and + 1 otherwise; backward (a rollback to the
/// source) with the same syncs reversed. Forward, a checkpoint of the group is taken instead when it gives a later
/// offset for the same or an earlier source offset (it is MirrorMaker 2's own translation, made when a finer sync was
/// at hand; every such translation is at or before the group's true position, so the later of the two re-reads least).
/// </summary>
public sealed class MirrorMakerTranslator(OffsetTranslationConfig config, OffsetSyncStore syncs, CheckpointStore? checkpoints) : IOffsetTranslator
{
    private static readonly TimeSpan CatchUpTimeout = TimeSpan.FromSeconds(15);

    public string Strategy => "mirrormaker2";

    public OffsetTranslationConfig Config => config;

    public OffsetSyncStore Syncs => syncs;

    /// <summary>Whether a read switch from <paramref name="from"/> to <paramref name="to"/> follows the replication (true), goes against it (false), or neither (null).</summary>
    public bool? IsForward(string from, string to) =>
        (from, to) == (config.SourceCluster, config.TargetCluster) ? true
        : (from, to) == (config.TargetCluster, config.SourceCluster) ? false
        : null;

    public async Task<IReadOnlyList<TranslatedOffset>> TranslateAsync(string group, IReadOnlyDictionary<TopicPartition, long> committed, string from, string to,
        CancellationToken cancellationToken)
    {
        var forward = IsForward(from, to);
        if (forward is null)
        {
            var why = $"MirrorMaker 2 replicates '{config.SourceCluster}' to '{config.TargetCluster}'; nothing maps '{from}' to '{to}'";
            return [.. committed.Select(c => Unmapped(c, why))];
        }
        var syncsRead = await CatchUpAsync(syncs.CatchUpAsync, syncs.Topic, cancellationToken).ConfigureAwait(false);
        var checkpointsRead = forward == true && checkpoints is not null ? await CatchUpAsync(checkpoints.CatchUpAsync, checkpoints.Topic, cancellationToken).ConfigureAwait(false) : "none";
        var result = new List<TranslatedOffset>(committed.Count);
        foreach (var (partition, offset) in committed)
        {
            result.Add(forward == true
                ? Forward(group, partition.Topic, partition.Partition.Value, offset, syncsRead, checkpointsRead)
                : Reverse(partition.Topic, partition.Partition.Value, offset, syncsRead));
        }
        return result;
    }

    private TranslatedOffset Forward(string group, string topic, int partition, long offset, string? syncsRead, string? checkpointsRead)
    {
        var remote = config.RemoteTopic(topic);
        var translated = new TranslatedOffset(topic, partition, offset, remote, null, TranslationMethod.Untranslated);
        var viaSync = syncsRead is null ? syncs.Forward(topic, partition, offset) : SyncTranslation.None(syncsRead);
        var checkpoint = checkpointsRead is null ? checkpoints?.Find(group, remote, partition) : null;
        if (checkpoint is not null && checkpoint.Upstream <= offset && checkpoint.Downstream >= 0 && checkpoint.Downstream > (viaSync.Offset ?? -1))
        {
            return translated with
            {
                NewOffset = checkpoint.Downstream,
                Method = TranslationMethod.Checkpoint,
                Note = $"checkpoint of source offset {checkpoint.Upstream}{(viaSync.Offset is { } s ? $"; the syncs gave {s}" : "")}",
            };
        }
        return viaSync.Offset is { } viaOffset
            ? translated with { NewOffset = viaOffset, Method = TranslationMethod.Sync, Note = $"sync {viaSync.Sync!.Value.Upstream}->{viaSync.Sync.Value.Downstream}" }
            : translated.Untranslated(viaSync.Why!);
    }

    private TranslatedOffset Reverse(string topic, int partition, long offset, string? syncsRead)
    {
        var translated = new TranslatedOffset(topic, partition, offset, topic, null, TranslationMethod.Untranslated);
        if (config.UpstreamTopic(topic) is not { } upstream)
        {
            return translated.Untranslated($"'{topic}' is not a replica of a '{config.SourceCluster}' topic under the {config.Policy.ToString().ToLowerInvariant()} replication policy");
        }
        translated = translated with { NewTopic = upstream };
        var viaSync = syncsRead is null ? syncs.Reverse(upstream, partition, offset) : SyncTranslation.None(syncsRead);
        return viaSync.Offset is { } viaOffset
            ? translated with { NewOffset = viaOffset, Method = TranslationMethod.Sync, Note = $"sync {viaSync.Sync!.Value.Upstream}->{viaSync.Sync.Value.Downstream}, reversed" }
            : translated.Untranslated(viaSync.Why!);
    }

    private static TranslatedOffset Unmapped(KeyValuePair<TopicPartition, long> committed, string why) =>
        new(committed.Key.Topic, committed.Key.Partition.Value, committed.Value, committed.Key.Topic, null, TranslationMethod.Untranslated, why);

    /// <summary>Catches a store up; null when done, otherwise why not (the translation then says so per partition).</summary>
    private static async Task<string?> CatchUpAsync(Func<CancellationToken, Task> catchUp, string topic, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CatchUpTimeout);
        try
        {
            await catchUp(timeout.Token).ConfigureAwait(false);
            return null;
        }
        catch (InternalTopicUnavailableException e)
        {
            return e.Message;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"topic '{topic}' was not read to its end within {CatchUpTimeout.TotalSeconds:0} s";
        }
    }
}
