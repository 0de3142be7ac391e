namespace Switchback.Protocol.Records;

/// <summary>Byte offsets of the fixed magic-2 record batch header (all integers big-endian).</summary>
public static class RecordBatchLayout
{
    public const int BaseOffset = 0;
    public const int BatchLength = 8;
    public const int PartitionLeaderEpoch = 12;
    public const int Magic = 16;
    public const int Crc = 17;
    public const int Attributes = 21;
    public const int LastOffsetDelta = 23;
    public const int BaseTimestamp = 27;
    public const int MaxTimestamp = 35;
    public const int ProducerId = 43;
    public const int ProducerEpoch = 51;
    public const int BaseSequence = 53;
    public const int RecordCount = 57;

    /// <summary>Size of the header up to and including the record count; records follow.</summary>
    public const int HeaderSize = 61;

    /// <summary>Base offset and length prefix, which the length does not count (Kafka's LOG_OVERHEAD).</summary>
    public const int LogOverhead = 12;

    /// <summary>Where the CRC-covered region starts: attributes through the end of the batch.</summary>
    public const int CrcStart = Attributes;

    /// <summary>The magic byte of the current batch format; 0 and 1 are legacy message sets.</summary>
    public const byte CurrentMagic = 2;

    /// <summary>Smallest legal legacy message: crc, magic, attributes, key and value lengths (v0).</summary>
    internal const int MinLegacyMessageSizeV0 = 14;

    /// <summary>Magic 1 adds an 8-byte timestamp.</summary>
    internal const int MinLegacyMessageSizeV1 = 22;
}

/// <summary>Compression codec, bits 0-2 of the batch attributes.</summary>
public enum RecordCompression : byte
{
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

/// <summary>Timestamp type, bit 3 of the batch attributes.</summary>
public enum RecordTimestampType : byte
{
    CreateTime = 0,
    LogAppendTime = 1,
}
