using System.Buffers.Binary;

namespace Switchback.Protocol.Records;

/// <summary>
/// Read-only, zero-copy view of one magic-2 record batch (header fields plus the CRC-covered body). Records are
/// never decoded. Construction checks only that the header fits and the magic is 2.
/// </summary>
public readonly ref struct RecordBatchHeader
{
    private readonly ReadOnlySpan<byte> _batch;

    /// <param name="batch">The batch bytes, from its base offset to its last record (or at least the header).</param>
    public RecordBatchHeader(ReadOnlySpan<byte> batch)
    {
        if (batch.Length < RecordBatchLayout.HeaderSize)
        {
            KafkaProtocolException.ThrowTruncated(RecordBatchLayout.HeaderSize, batch.Length);
        }
        if (batch[RecordBatchLayout.Magic] != RecordBatchLayout.CurrentMagic)
        {
            KafkaProtocolException.Throw($"Record batch magic {batch[RecordBatchLayout.Magic]} is not {RecordBatchLayout.CurrentMagic}.");
        }
        _batch = batch;
    }

    /// <summary>The bytes this view was built over.</summary>
    public ReadOnlySpan<byte> Span => _batch;

    public long BaseOffset => BinaryPrimitives.ReadInt64BigEndian(_batch[RecordBatchLayout.BaseOffset..]);

    /// <summary>Bytes after the length field: partition leader epoch through the last record.</summary>
    public int BatchLength => BinaryPrimitives.ReadInt32BigEndian(_batch[RecordBatchLayout.BatchLength..]);

    /// <summary>Whole batch size on the wire, <see cref="RecordBatchLayout.LogOverhead"/> + <see cref="BatchLength"/>.</summary>
    public int TotalSize => RecordBatchLayout.LogOverhead + BatchLength;

    public int PartitionLeaderEpoch => BinaryPrimitives.ReadInt32BigEndian(_batch[RecordBatchLayout.PartitionLeaderEpoch..]);
    public byte Magic => _batch[RecordBatchLayout.Magic];
    public uint Crc => BinaryPrimitives.ReadUInt32BigEndian(_batch[RecordBatchLayout.Crc..]);
    public short Attributes => BinaryPrimitives.ReadInt16BigEndian(_batch[RecordBatchLayout.Attributes..]);
    public RecordCompression Compression => (RecordCompression)(Attributes & 0x07);
    public RecordTimestampType TimestampType => (RecordTimestampType)((Attributes >> 3) & 0x01);
    public bool IsTransactional => (Attributes & 0x10) != 0;
    public bool IsControl => (Attributes & 0x20) != 0;
    public bool HasDeleteHorizon => (Attributes & 0x40) != 0;
    public int LastOffsetDelta => BinaryPrimitives.ReadInt32BigEndian(_batch[RecordBatchLayout.LastOffsetDelta..]);
    public long LastOffset => BaseOffset + LastOffsetDelta;
    public long BaseTimestamp => BinaryPrimitives.ReadInt64BigEndian(_batch[RecordBatchLayout.BaseTimestamp..]);
    public long MaxTimestamp => BinaryPrimitives.ReadInt64BigEndian(_batch[RecordBatchLayout.MaxTimestamp..]);
    public long ProducerId => BinaryPrimitives.ReadInt64BigEndian(_batch[RecordBatchLayout.ProducerId..]);
    public short ProducerEpoch => BinaryPrimitives.ReadInt16BigEndian(_batch[RecordBatchLayout.ProducerEpoch..]);
    public int BaseSequence => BinaryPrimitives.ReadInt32BigEndian(_batch[RecordBatchLayout.BaseSequence..]);
    public int RecordCount => BinaryPrimitives.ReadInt32BigEndian(_batch[RecordBatchLayout.RecordCount..]);

    /// <summary>The (possibly compressed) records after the header, bounded by <see cref="BatchLength"/>.</summary>
    public ReadOnlySpan<byte> Records => _batch[RecordBatchLayout.HeaderSize..CrcEnd()];

    /// <summary>CRC-32C over attributes through the end of the batch, as Kafka defines the batch CRC.</summary>
    public uint ComputeCrc() => Crc32C.Compute(_batch[RecordBatchLayout.CrcStart..CrcEnd()]);

    private int CrcEnd()
    {
        var end = RecordBatchLayout.LogOverhead + (long)BatchLength;
        if (end < RecordBatchLayout.HeaderSize || end > _batch.Length)
        {
            KafkaProtocolException.ThrowBadLength("record batch", BatchLength, _batch.Length - RecordBatchLayout.LogOverhead);
        }
        return (int)end;
    }
}

/// <summary>
/// Writable view of one magic-2 record batch: rewrites the header fields a proxy owns (offsets, producer identity,
/// sequence) in place, then <see cref="RecomputeCrc"/> restores the checksum. Base offset and partition leader epoch
/// sit outside the CRC and need no recompute.
/// </summary>
public readonly ref struct MutableRecordBatch
{
    private readonly Span<byte> _batch;

    public MutableRecordBatch(Span<byte> batch)
    {
        _ = new RecordBatchHeader(batch);
        _batch = batch;
    }

    /// <summary>Read-only view of the same bytes.</summary>
    public RecordBatchHeader Header => new(_batch);

    public long BaseOffset
    {
        get => Header.BaseOffset;
        set => BinaryPrimitives.WriteInt64BigEndian(_batch[RecordBatchLayout.BaseOffset..], value);
    }

    public int PartitionLeaderEpoch
    {
        get => Header.PartitionLeaderEpoch;
        set => BinaryPrimitives.WriteInt32BigEndian(_batch[RecordBatchLayout.PartitionLeaderEpoch..], value);
    }

    /// <summary>Covered by the CRC: call <see cref="RecomputeCrc"/> after changing it.</summary>
    public long ProducerId
    {
        get => Header.ProducerId;
        set => BinaryPrimitives.WriteInt64BigEndian(_batch[RecordBatchLayout.ProducerId..], value);
    }

    /// <summary>Covered by the CRC: call <see cref="RecomputeCrc"/> after changing it.</summary>
    public short ProducerEpoch
    {
        get => Header.ProducerEpoch;
        set => BinaryPrimitives.WriteInt16BigEndian(_batch[RecordBatchLayout.ProducerEpoch..], value);
    }

    /// <summary>Covered by the CRC: call <see cref="RecomputeCrc"/> after changing it.</summary>
    public int BaseSequence
    {
        get => Header.BaseSequence;
        set => BinaryPrimitives.WriteInt32BigEndian(_batch[RecordBatchLayout.BaseSequence..], value);
    }

    /// <summary>Writes the CRC-32C of attributes..end into the CRC field and returns it.</summary>
    public uint RecomputeCrc()
    {
        var crc = Header.ComputeCrc();
        BinaryPrimitives.WriteUInt32BigEndian(_batch[RecordBatchLayout.Crc..], crc);
        return crc;
    }
}
