namespace Switchback.Protocol.Routing;

/// <summary>
/// Allocation-free reader of the routing keys of a Produce request body (v0-11): transactional id, acks, timeout,
/// then topics and their partitions with the position of each records field so a caller can rewrite batches in
/// place. Records are never decoded.
/// </summary>
/// <example>
/// <code>
/// var produce = new ProduceRequestRouting(body, version);
/// while (produce.TryReadTopic(out var topic))
///     while (produce.TryReadPartition(out var partition)) { ... }
/// </code>
/// </example>
public ref struct ProduceRequestRouting
{
    /// <summary>Highest Produce version this reader understands.</summary>
    public const short MaxVersion = 11;

    /// <summary>First flexible (compact encodings, tagged fields) Produce version.</summary>
    public const short FirstFlexibleVersion = 9;

    private KafkaReader _reader;
    private readonly bool _flexible;
    private int _topicsLeft;
    private int _partitionsLeft;
    private bool _inTopic;
    private int _topicNameOffset;
    private int _topicNameLength;

    /// <param name="body">The request body after the request header.</param>
    /// <param name="apiVersion">The Produce version from the request header.</param>
    public ProduceRequestRouting(ReadOnlySpan<byte> body, short apiVersion)
    {
        if ((ushort)apiVersion > MaxVersion)
        {
            KafkaProtocolException.Throw($"Unsupported Produce version {apiVersion}.");
        }
        _reader = new KafkaReader(body);
        _flexible = apiVersion >= FirstFlexibleVersion;
        ApiVersion = apiVersion;
        if (apiVersion >= 3)
        {
            TransactionalId = _reader.ReadStringSpan(_flexible, out var isNull);
            HasTransactionalId = !isNull;
        }
        Acks = _reader.ReadInt16();
        TimeoutMs = _reader.ReadInt32();
        TopicCount = Math.Max(0, _reader.ReadArrayLength(_flexible));
        _topicsLeft = TopicCount;
        _partitionsLeft = 0;
        _inTopic = false;
        _topicNameOffset = 0;
        _topicNameLength = 0;
    }

    /// <summary>
    /// Goes on reading <paramref name="body"/> where <paramref name="resumeAt"/> was taken (<see cref="Cursor"/>), so a
    /// caller can walk a request across awaits, where a ref struct cannot live. A default cursor starts at the beginning.
    /// </summary>
    public ProduceRequestRouting(ReadOnlySpan<byte> body, short apiVersion, ProduceRoutingCursor resumeAt)
        : this(body, apiVersion)
    {
        if (!resumeAt.IsStarted)
        {
            return;
        }
        if (resumeAt.Position < _reader.Position || resumeAt.Position > body.Length)
        {
            KafkaProtocolException.Throw("Produce routing cursor outside the request body.");
        }
        _reader.Skip(resumeAt.Position - _reader.Position);
        _topicsLeft = resumeAt.TopicsLeft;
        _partitionsLeft = resumeAt.PartitionsLeft;
        _inTopic = resumeAt.InTopic;
        _topicNameOffset = resumeAt.TopicNameOffset;
        _topicNameLength = resumeAt.TopicNameLength;
    }

    public short ApiVersion { get; }

    /// <summary>UTF-8 transactional id; empty when absent (see <see cref="HasTransactionalId"/>).</summary>
    public ReadOnlySpan<byte> TransactionalId { get; }

    /// <summary>False for v0-2 and for a null transactional id.</summary>
    public bool HasTransactionalId { get; }

    public short Acks { get; }
    public int TimeoutMs { get; }
    public int TopicCount { get; }

    /// <summary>Offset within the body of the next unread byte.</summary>
    public readonly int Position => _reader.Position;

    /// <summary>Where the reader stands, to resume from with the same body later.</summary>
    public readonly ProduceRoutingCursor Cursor =>
        new(_reader.Position, _topicsLeft, _partitionsLeft, _inTopic, _topicNameOffset, _topicNameLength);

    /// <summary>Offset and length within the body of the name of the topic last read (kept across a resume).</summary>
    public readonly Range CurrentTopicName => new(_topicNameOffset, _topicNameOffset + _topicNameLength);

    /// <summary>Moves to the next topic, skipping any unread partitions of the current one.</summary>
    public bool TryReadTopic(out ProduceTopicRouting topic)
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
                // Past the last topic: consume the request-level tagged fields exactly once.
                _topicsLeft = -1;
                if (_flexible)
                {
                    TaggedFieldSkipper.Skip(ref _reader);
                }
            }
            return false;
        }
        _topicsLeft--;
        var name = _reader.ReadStringSpan(_flexible, out var isNull);
        if (isNull)
        {
            KafkaProtocolException.Throw("Null topic name in a Produce request.");
        }
        _topicNameOffset = _reader.Position - name.Length;
        _topicNameLength = name.Length;
        _partitionsLeft = Math.Max(0, _reader.ReadArrayLength(_flexible));
        _inTopic = true;
        topic = new ProduceTopicRouting(name, _partitionsLeft);
        if (_partitionsLeft == 0)
        {
            EndTopic();
        }
        return true;
    }

    /// <summary>Moves to the next partition of the current topic.</summary>
    public bool TryReadPartition(out ProducePartitionRouting partition)
    {
        if (!_inTopic || _partitionsLeft == 0)
        {
            partition = default;
            return false;
        }
        _partitionsLeft--;
        var index = _reader.ReadInt32();
        var fieldOffset = _reader.Position;
        var records = _reader.ReadBytesSpan(_flexible, out var isNull);
        var recordsOffset = _reader.Position - records.Length;
        if (_flexible)
        {
            TaggedFieldSkipper.Skip(ref _reader);
        }
        partition = new ProducePartitionRouting(index, records, recordsOffset, isNull, fieldOffset);
        if (_partitionsLeft == 0)
        {
            EndTopic();
        }
        return true;
    }

    /// <summary>Reads whatever is left and checks that the body ends exactly where the request does.</summary>
    public void ReadToEnd()
    {
        while (TryReadTopic(out _))
        {
        }
        _reader.EnsureConsumed("Produce request");
    }

    private void EndTopic()
    {
        _inTopic = false;
        if (_flexible)
        {
            TaggedFieldSkipper.Skip(ref _reader);
        }
    }
}

/// <summary>One topic of a Produce request: UTF-8 name (a slice of the body) and its partition count.</summary>
public readonly ref struct ProduceTopicRouting
{
    internal ProduceTopicRouting(ReadOnlySpan<byte> name, int partitionCount)
    {
        Name = name;
        PartitionCount = partitionCount;
    }

    public ReadOnlySpan<byte> Name { get; }
    public int PartitionCount { get; }
}

/// <summary>One partition of a Produce request with its records field located within the request body.</summary>
public readonly ref struct ProducePartitionRouting
{
    internal ProducePartitionRouting(int index, ReadOnlySpan<byte> records, int recordsOffset, bool recordsAreNull, int fieldOffset)
    {
        Index = index;
        Records = records;
        RecordsOffset = recordsOffset;
        RecordsAreNull = recordsAreNull;
        FieldOffset = fieldOffset;
    }

    public int Index { get; }

    /// <summary>The records field (record batches or a legacy message set), not copied.</summary>
    public ReadOnlySpan<byte> Records { get; }

    /// <summary>Where <see cref="Records"/> starts within the body passed to the reader.</summary>
    public int RecordsOffset { get; }

    public int RecordsLength => Records.Length;

    public bool RecordsAreNull { get; }

    /// <summary>Where the records field, its length prefix included, starts within the body.</summary>
    public int FieldOffset { get; }
}

/// <summary>A position within a Produce request body (see <see cref="ProduceRequestRouting.Cursor"/>); default is the start.</summary>
public readonly struct ProduceRoutingCursor
{
    internal ProduceRoutingCursor(int position, int topicsLeft, int partitionsLeft, bool inTopic, int topicNameOffset, int topicNameLength)
    {
        Position = position;
        TopicsLeft = topicsLeft;
        PartitionsLeft = partitionsLeft;
        InTopic = inTopic;
        TopicNameOffset = topicNameOffset;
        TopicNameLength = topicNameLength;
        IsStarted = true;
    }

    internal int Position { get; }
    internal int TopicsLeft { get; }
    internal int PartitionsLeft { get; }
    internal bool InTopic { get; }
    internal int TopicNameOffset { get; }
    internal int TopicNameLength { get; }
    internal bool IsStarted { get; }
}
