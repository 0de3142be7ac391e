namespace Switchback.Protocol.Records;

/// <summary>Checks the stored CRC of a magic-2 record batch against its contents.</summary>
public static class CrcValidation
{
    /// <summary>True when the CRC field equals the CRC-32C of attributes..end.</summary>
    public static bool IsValid(RecordBatchHeader batch) => batch.Crc == batch.ComputeCrc();

    /// <summary>True when <paramref name="batch"/> is a complete magic-2 batch whose CRC matches.</summary>
    public static bool IsValid(ReadOnlySpan<byte> batch) => IsValid(new RecordBatchHeader(batch));
}
