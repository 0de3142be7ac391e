using System.Buffers.Binary;

namespace Switchback.Protocol.Records;

/// <summary>What a slice of a records field holds.</summary>
public enum RecordBatchKind : byte
{
    /// <summary>A complete magic-2 record batch.</summary>
    RecordBatch,

    /// <summary>A complete magic 0 or 1 message (legacy message set entry); relay it untouched.</summary>
    LegacyMessageSet,

    /// <summary>The truncated tail a Fetch response may end with; relay or drop it, never parse it.</summary>
    Partial,
}

/// <summary>Where the records blob came from, which decides how a truncated tail is treated.</summary>
public enum RecordsSource : byte
{
    /// <summary>Produce request data: every batch must be complete, truncation is a protocol error.</summary>
    Produce,

    /// <summary>Fetch response data: the broker may cut the last batch short at the size limit.</summary>
    Fetch,
}

/// <summary>One batch (or legacy message, or truncated tail) of a records blob, as a slice of it.</summary>
public readonly struct RecordBatchEntry
{
    internal RecordBatchEntry(RecordBatchKind kind, ReadOnlyMemory<byte> memory, int offset, sbyte magic)
    {
        Kind = kind;
        Memory = memory;
        Offset = offset;
        Magic = magic;
    }

    public RecordBatchKind Kind { get; }

    /// <summary>The bytes of this entry (no copy).</summary>
    public ReadOnlyMemory<byte> Memory { get; }

    /// <summary>Start of this entry within the records blob.</summary>
    public int Offset { get; }

    public int Length => Memory.Length;

    /// <summary>The magic byte, or -1 for a partial tail too short to hold one.</summary>
    public sbyte Magic { get; }

    /// <summary>Base offset (magic 2) or message offset (magic 0/1); needs at least 8 bytes.</summary>
    public long BaseOffset => Memory.Length >= 8 ? BinaryPrimitives.ReadInt64BigEndian(Memory.Span) : -1;

    /// <summary>Header view of a magic-2 batch; throws for any other kind.</summary>
    public RecordBatchHeader Header
    {
        get
        {
            if (Kind != RecordBatchKind.RecordBatch)
            {
                KafkaProtocolException.Throw($"A {Kind} entry has no record batch header.");
            }
            return new RecordBatchHeader(Memory.Span);
        }
    }
}

/// <summary>
/// Walks the batches of a Produce or Fetch records field by their length prefixes, without decoding records.
/// Allocation-free; use with <c>foreach</c> or <see cref="MoveNext"/>/<see cref="Current"/>.
/// </summary>
public struct RecordBatchEnumerator
{
    private readonly ReadOnlyMemory<byte> _records;
    private readonly RecordsSource _source;
    private int _position;
    private RecordBatchEntry _current;

    public RecordBatchEnumerator(ReadOnlyMemory<byte> records, RecordsSource source)
    {
        _records = records;
        _source = source;
        _position = 0;
        _current = default;
    }

    public readonly RecordBatchEntry Current => _current;

    public readonly RecordBatchEnumerator GetEnumerator() => this;

    /// <summary>
    /// Advances to the next entry. Throws <see cref="KafkaProtocolException"/> for a malformed header (impossible
    /// length, unknown magic) and, for <see cref="RecordsSource.Produce"/>, for a truncated batch.
    /// </summary>
    public bool MoveNext()
    {
        var remaining = _records.Length - _position;
        if (remaining <= 0)
        {
            return false;
        }
        var span = _records.Span[_position..];
        if (remaining < RecordBatchLayout.LogOverhead)
        {
            return TakePartial(remaining, magic: -1);
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(span[RecordBatchLayout.BatchLength..]);
        sbyte magic = remaining > RecordBatchLayout.Magic ? (sbyte)span[RecordBatchLayout.Magic] : (sbyte)-1;
        if (magic >= 0)
        {
            ValidateHeader(length, magic);
        }
        else if (length < RecordBatchLayout.MinLegacyMessageSizeV0)
        {
            KafkaProtocolException.ThrowBadLength("record batch", length, remaining - RecordBatchLayout.LogOverhead);
        }

        if (length > remaining - RecordBatchLayout.LogOverhead)
        {
            return TakePartial(remaining, magic);
        }

        var total = RecordBatchLayout.LogOverhead + length;
        var kind = magic == RecordBatchLayout.CurrentMagic ? RecordBatchKind.RecordBatch : RecordBatchKind.LegacyMessageSet;
        _current = new RecordBatchEntry(kind, _records.Slice(_position, total), _position, magic);
        _position += total;
        return true;
    }

    private bool TakePartial(int remaining, sbyte magic)
    {
        if (_source == RecordsSource.Produce)
        {
            KafkaProtocolException.ThrowTruncated(
                remaining < RecordBatchLayout.LogOverhead
                    ? RecordBatchLayout.LogOverhead
                    : RecordBatchLayout.LogOverhead + BinaryPrimitives.ReadInt32BigEndian(_records.Span[(_position + RecordBatchLayout.BatchLength)..]),
                remaining);
        }
        _current = new RecordBatchEntry(RecordBatchKind.Partial, _records[_position..], _position, magic);
        _position = _records.Length;
        return true;
    }

    private readonly void ValidateHeader(int length, sbyte magic)
    {
        var minimum = magic switch
        {
            0 => RecordBatchLayout.MinLegacyMessageSizeV0,
            1 => RecordBatchLayout.MinLegacyMessageSizeV1,
            2 => RecordBatchLayout.HeaderSize - RecordBatchLayout.LogOverhead,
            _ => -1,
        };
        if (minimum < 0)
        {
            KafkaProtocolException.Throw($"Unknown record batch magic {magic} at offset {_position}.");
        }
        if (length < minimum)
        {
            KafkaProtocolException.ThrowBadLength("record batch", length, _records.Length - _position - RecordBatchLayout.LogOverhead);
        }
    }
}
