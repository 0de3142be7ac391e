using System.Buffers.Binary;

namespace Switchback.Protocol.Routing;

/// <summary>
/// Allocation-free reader of the routing keys of a Fetch request body (v0-17): the fixed fields, then topics
/// (names before v13, topic ids from v13) and their partitions, then forgotten topics, rack id and the tagged
/// fields (cluster id, replica state) that v12+ put at the end of the body.
/// </summary>
/// <remarks>
/// <see cref="ReplicaId"/> moved into the trailing ReplicaState tagged field in v15, and <see cref="ClusterId"/>
/// is always trailing: both are final only once <see cref="IsComplete"/> (after the iteration ran out or
/// <see cref="ReadToEnd"/>).
/// </remarks>
public ref struct FetchRequestRouting
{
    /// <summary>Highest Fetch version this reader understands.</summary>
    public const short MaxVersion = 17;

    /// <summary>First flexible (compact encodings, tagged fields) Fetch version.</summary>
    public const short FirstFlexibleVersion = 12;

    /// <summary>First version that names topics by id instead of by name.</summary>
    public const short FirstTopicIdVersion = 13;

    private const int ClusterIdTag = 0;
    private const int ReplicaStateTag = 1;

    private KafkaReader _reader;
    private readonly bool _flexible;
    private int _topicsLeft;
    private int _partitionsLeft;
    private bool _inTopic;
    private int _forgottenLeft;

    /// <param name="body">The request body after the request header.</param>
    /// <param name="apiVersion">The Fetch version from the request header.</param>
    public FetchRequestRouting(ReadOnlySpan<byte> body, short apiVersion)
    {
        if ((ushort)apiVersion > MaxVersion)
        {
            KafkaProtocolException.Throw($"Unsupported Fetch version {apiVersion}.");
        }
        _reader = new KafkaReader(body);
        _flexible = apiVersion >= FirstFlexibleVersion;
        ApiVersion = apiVersion;
        ReplicaId = apiVersion <= 14 ? _reader.ReadInt32() : -1;
        ReplicaEpoch = -1;
        MaxWaitMs = _reader.ReadInt32();
        MinBytes = _reader.ReadInt32();
        MaxBytes = apiVersion >= 3 ? _reader.ReadInt32() : int.MaxValue;
        IsolationLevel = apiVersion >= 4 ? _reader.ReadInt8() : (sbyte)0;
        SessionId = apiVersion >= 7 ? _reader.ReadInt32() : 0;
        SessionEpoch = apiVersion >= 7 ? _reader.ReadInt32() : -1;
        TopicCount = Math.Max(0, _reader.ReadArrayLength(_flexible));
        _topicsLeft = TopicCount;
        _forgottenLeft = -1;
    }

    public short ApiVersion { get; }

    /// <summary>The follower's broker id, -1 for a consumer. From v15 it is read from the trailing ReplicaState.</summary>
    public int ReplicaId { get; private set; }

    /// <summary>The follower's epoch (v15+ ReplicaState), -1 otherwise.</summary>
    public long ReplicaEpoch { get; private set; }

    public int MaxWaitMs { get; }
    public int MinBytes { get; }
    public int MaxBytes { get; }

    /// <summary>0 read uncommitted, 1 read committed.</summary>
    public sbyte IsolationLevel { get; }

    public int SessionId { get; }
    public int SessionEpoch { get; }
    public int TopicCount { get; }

    /// <summary>Forgotten topics count (v7+), known once the topics were read.</summary>
    public int ForgottenTopicCount { get; private set; }

    /// <summary>UTF-8 rack id (v11+), known at the end.</summary>
    public ReadOnlySpan<byte> RackId { get; private set; }

    /// <summary>UTF-8 cluster id (v12+ tagged), known at the end; empty when absent or null.</summary>
    public ReadOnlySpan<byte> ClusterId { get; private set; }

    /// <summary>True once the whole body, including its trailing tagged fields, has been read.</summary>
    public bool IsComplete { get; private set; }

    /// <summary>Moves to the next topic, skipping any unread partitions of the current one.</summary>
    public bool TryReadTopic(out FetchTopicRouting topic)
    {
        while (_inTopic)
        {
            TryReadPartition(out _);
        }
        if (_topicsLeft <= 0)
        {
            topic = default;
            if (_topicsLeft == 0)
            {
                _topicsLeft = -1;
                StartForgottenTopics();
            }
            return false;
        }
        _topicsLeft--;
        ReadOnlySpan<byte> name = default;
        var topicId = Guid.Empty;
        if (ApiVersion < FirstTopicIdVersion)
        {
            name = _reader.ReadStringSpan(_flexible, out var isNull);
            if (isNull)
            {
                KafkaProtocolException.Throw("Null topic name in a Fetch request.");
            }
        }
        else
        {
            topicId = _reader.ReadUuid();
        }
        _partitionsLeft = Math.Max(0, _reader.ReadArrayLength(_flexible));
        _inTopic = true;
        topic = new FetchTopicRouting(name, topicId, _partitionsLeft);
        if (_partitionsLeft == 0)
        {
            EndTopic();
        }
        return true;
    }

    /// <summary>Moves to the next partition of the current topic.</summary>
    public bool TryReadPartition(out FetchPartitionRouting partition)
    {
        if (!_inTopic || _partitionsLeft == 0)
        {
            partition = default;
            return false;
        }
        _partitionsLeft--;
        var v = ApiVersion;
        var index = _reader.ReadInt32();
        var currentLeaderEpoch = v >= 9 ? _reader.ReadInt32() : -1;
        var fetchOffset = _reader.ReadInt64();
        var lastFetchedEpoch = v >= 12 ? _reader.ReadInt32() : -1;
        var logStartOffset = v >= 5 ? _reader.ReadInt64() : -1;
        var partitionMaxBytes = _reader.ReadInt32();
        if (_flexible)
        {
            // ReplicaDirectoryId (tag 0, v17+) matters only between brokers: skipped with the rest.
            TaggedFieldSkipper.Skip(ref _reader);
        }
        partition = new FetchPartitionRouting(index, currentLeaderEpoch, fetchOffset, lastFetchedEpoch, logStartOffset, partitionMaxBytes);
        if (_partitionsLeft == 0)
        {
            EndTopic();
        }
        return true;
    }

    /// <summary>Moves to the next forgotten topic (v7+); only valid once <see cref="TryReadTopic"/> returned false.</summary>
    public bool TryReadForgottenTopic(out FetchForgottenTopicRouting topic)
    {
        if (_forgottenLeft <= 0)
        {
            topic = default;
            if (_forgottenLeft == 0)
            {
                _forgottenLeft = -1;
                ReadTrailer();
            }
            return false;
        }
        _forgottenLeft--;
        ReadOnlySpan<byte> name = default;
        var topicId = Guid.Empty;
        if (ApiVersion < FirstTopicIdVersion)
        {
            name = _reader.ReadStringSpan(_flexible, out _);
        }
        else
        {
            topicId = _reader.ReadUuid();
        }
        var count = _reader.ReadArrayLength(_flexible);
        var partitions = count > 0 ? _reader.RemainingSpan[..Math.Min(_reader.Remaining, count * 4)] : default;
        _reader.Skip(Math.Max(0, count) * 4);
        if (_flexible)
        {
            TaggedFieldSkipper.Skip(ref _reader);
        }
        topic = new FetchForgottenTopicRouting(name, topicId, partitions);
        if (_forgottenLeft == 0)
        {
            _forgottenLeft = -1;
            ReadTrailer();
        }
        return true;
    }

    /// <summary>Reads whatever is left, fills the trailing fields, and checks the body ends exactly there.</summary>
    public void ReadToEnd()
    {
        while (TryReadTopic(out _))
        {
        }
        while (TryReadForgottenTopic(out _))
        {
        }
        _reader.EnsureConsumed("Fetch request");
    }

    private void EndTopic()
    {
        _inTopic = false;
        if (_flexible)
        {
            TaggedFieldSkipper.Skip(ref _reader);
        }
    }

    private void StartForgottenTopics()
    {
        if (ApiVersion >= 7)
        {
            ForgottenTopicCount = Math.Max(0, _reader.ReadArrayLength(_flexible));
            _forgottenLeft = ForgottenTopicCount;
            if (_forgottenLeft > 0)
            {
                return;
            }
        }
        _forgottenLeft = -1;
        ReadTrailer();
    }

    private void ReadTrailer()
    {
        if (IsComplete)
        {
            return;
        }
        if (ApiVersion >= 11)
        {
            RackId = _reader.ReadStringSpan(_flexible, out _);
        }
        if (_flexible)
        {
            var count = _reader.ReadTaggedFieldCount();
            for (var i = 0; i < count; i++)
            {
                var tag = _reader.ReadUnsignedVarInt();
                var field = _reader.ReadTaggedFieldBody(out _);
                if (tag == ClusterIdTag)
                {
                    ClusterId = field.ReadStringSpan(flexible: true, out _);
                }
                else if (tag == ReplicaStateTag && ApiVersion >= 15)
                {
                    ReplicaId = field.ReadInt32();
                    ReplicaEpoch = field.ReadInt64();
                    TaggedFieldSkipper.Skip(ref field);
                }
            }
        }
        IsComplete = true;
    }
}

/// <summary>One topic of a Fetch request: name (v0-12, UTF-8) or topic id (v13+), and its partition count.</summary>
public readonly ref struct FetchTopicRouting
{
    internal FetchTopicRouting(ReadOnlySpan<byte> name, Guid topicId, int partitionCount)
    {
        Name = name;
        TopicId = topicId;
        PartitionCount = partitionCount;
    }

    /// <summary>UTF-8 topic name; empty from v13.</summary>
    public ReadOnlySpan<byte> Name { get; }

    /// <summary>Topic id from v13; <see cref="Guid.Empty"/> before.</summary>
    public Guid TopicId { get; }

    public int PartitionCount { get; }
}

/// <summary>One partition of a Fetch request; fields absent in the version hold Kafka's defaults (-1).</summary>
public readonly record struct FetchPartitionRouting(
    int Index,
    int CurrentLeaderEpoch,
    long FetchOffset,
    int LastFetchedEpoch,
    long LogStartOffset,
    int PartitionMaxBytes);

/// <summary>One forgotten topic of an incremental Fetch request (v7+).</summary>
public readonly ref struct FetchForgottenTopicRouting
{
    private readonly ReadOnlySpan<byte> _partitions;

    internal FetchForgottenTopicRouting(ReadOnlySpan<byte> name, Guid topicId, ReadOnlySpan<byte> partitions)
    {
        Name = name;
        TopicId = topicId;
        _partitions = partitions;
    }

    /// <summary>UTF-8 topic name (v7-12); empty from v13.</summary>
    public ReadOnlySpan<byte> Name { get; }

    /// <summary>Topic id from v13; <see cref="Guid.Empty"/> before.</summary>
    public Guid TopicId { get; }

    public int PartitionCount => _partitions.Length / 4;

    public int GetPartition(int i) => BinaryPrimitives.ReadInt32BigEndian(_partitions.Slice(i * 4, 4));
}
