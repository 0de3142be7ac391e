using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.Translation;

/// <summary>
/// The offset syncs MirrorMaker 2 publishes (partition 0 of its offset-syncs topic), per source partition. Translation
/// is refused until the topic has been read to its end; each translation first catches up with what the topic holds
/// when it is asked (the switch's moment), so the newest syncs count.
/// </summary>
/// <remarks>
/// MirrorMaker 2 keeps only the newest sync per partition while it first reads the topic, because its checkpoints must
/// never go back across restarts of its store. A switch translates once, and the proxy never moves a group's offset
/// on the new cluster backwards anyway, so the older syncs read are kept (thinned as they age): they let a group that
/// is behind the newest sync translate too.
/// </remarks>
public sealed partial class OffsetSyncStore : IDisposable
{
    private readonly Dictionary<(string Topic, int Partition), PartitionSyncs> _partitions = [];
    private readonly InternalTopicFollower _follower;
    private readonly ILogger _logger;
    private long _malformed;

    public OffsetSyncStore(ClusterConfig cluster, string topic, string family, ILogger logger)
    {
        _logger = logger;
        // MirrorMaker 2 writes every sync to partition 0 and reads only that one.
        _follower = new InternalTopicFollower(cluster, topic, p => p == 0, Handle, $"offset-syncs-{family}");
    }

    public string Topic => _follower.Topic;

    public string Cluster => _follower.Cluster;

    public void Start() => _follower.Start();

    /// <summary>Records that were not offset syncs (skipped).</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <inheritdoc cref="InternalTopicFollower.CatchUpAsync"/>
    public Task CatchUpAsync(CancellationToken cancellationToken) => _follower.CatchUpAsync(cancellationToken);

    public SyncTranslation Forward(string sourceTopic, int partition, long offset) => Translate(sourceTopic, partition, s => s.Forward(offset));

    public SyncTranslation Reverse(string sourceTopic, int partition, long offset) => Translate(sourceTopic, partition, s => s.Reverse(offset));

    /// <summary>The newest sync of a source partition, if any.</summary>
    public OffsetSync? Latest(string sourceTopic, int partition)
    {
        lock (_partitions)
        {
            return _partitions.TryGetValue((sourceTopic, partition), out var syncs) ? syncs.Latest : null;
        }
    }

    private SyncTranslation Translate(string topic, int partition, Func<PartitionSyncs, SyncTranslation> translate)
    {
        if (!_follower.ReadToEndOnce)
        {
            return SyncTranslation.None($"topic '{Topic}' on cluster '{Cluster}' has not been read to its end yet");
        }
        lock (_partitions)
        {
            return _partitions.TryGetValue((topic, partition), out var syncs)
                ? translate(syncs)
                : SyncTranslation.None($"no offset sync for {topic}[{partition}] in topic '{Topic}'");
        }
    }

    private void Handle(ConsumeResult<byte[]?, byte[]?> record)
    {
        OffsetSync sync;
        try
        {
            sync = MirrorRecords.ReadOffsetSync(record.Message.Key, record.Message.Value);
        }
        catch (Exception e) when (e is MirrorRecordFormatException or ArgumentNullException or NullReferenceException)
        {
            if (Interlocked.Increment(ref _malformed) == 1)
            {
                LogMalformed(_logger, Topic, Cluster, record.Offset.Value, e.Message);
            }
            return;
        }
        lock (_partitions)
        {
            if (!_partitions.TryGetValue((sync.Topic, sync.Partition), out var syncs))
            {
                _partitions[(sync.Topic, sync.Partition)] = syncs = new PartitionSyncs();
            }
            syncs.Add(sync);
        }
    }

    public void Dispose() => _follower.Dispose();

    [LoggerMessage(EventId = 4501, Level = LogLevel.Warning, Message = "Topic {Topic} on cluster {Cluster} holds a record at offset {Offset} that is not in MirrorMaker 2's layout (skipped; later ones are counted): {Reason}")]
    private static partial void LogMalformed(ILogger logger, string topic, string cluster, long offset, string reason);
}

/// <summary>
/// The checkpoints MirrorMaker 2 publishes on the target (its checkpoint connector's translation of each group's
/// source offsets), the newest per group and partition.
/// </summary>
public sealed partial class CheckpointStore : IDisposable
{
    private readonly Dictionary<(string Group, string Topic, int Partition), Checkpoint> _latest = [];
    private readonly InternalTopicFollower _follower;
    private readonly ILogger _logger;
    private long _malformed;

    public CheckpointStore(ClusterConfig cluster, string topic, string family, ILogger logger)
    {
        _logger = logger;
        _follower = new InternalTopicFollower(cluster, topic, _ => true, Handle, $"checkpoints-{family}");
    }

    public string Topic => _follower.Topic;

    public void Start() => _follower.Start();

    /// <inheritdoc cref="InternalTopicFollower.CatchUpAsync"/>
    public Task CatchUpAsync(CancellationToken cancellationToken) => _follower.CatchUpAsync(cancellationToken);

    /// <summary>The newest checkpoint of a group's partition (the topic named as on the target), if any.</summary>
    public Checkpoint? Find(string group, string targetTopic, int partition)
    {
        lock (_latest)
        {
            return _latest.GetValueOrDefault((group, targetTopic, partition));
        }
    }

    private void Handle(ConsumeResult<byte[]?, byte[]?> record)
    {
        Checkpoint checkpoint;
        try
        {
            checkpoint = MirrorRecords.ReadCheckpoint(record.Message.Key, record.Message.Value);
        }
        catch (Exception e) when (e is MirrorRecordFormatException or ArgumentNullException or NullReferenceException)
        {
            if (Interlocked.Increment(ref _malformed) == 1)
            {
                LogMalformed(_logger, Topic, _follower.Cluster, record.Offset.Value, e.Message);
            }
            return;
        }
        lock (_latest)
        {
            _latest[(checkpoint.Group, checkpoint.Topic, checkpoint.Partition)] = checkpoint;
        }
    }

    public void Dispose() => _follower.Dispose();

    [LoggerMessage(EventId = 4502, Level = LogLevel.Warning, Message = "Topic {Topic} on cluster {Cluster} holds a record at offset {Offset} that is not a MirrorMaker 2 checkpoint (skipped; later ones are counted): {Reason}")]
    private static partial void LogMalformed(ILogger logger, string topic, string cluster, long offset, string reason);
}
