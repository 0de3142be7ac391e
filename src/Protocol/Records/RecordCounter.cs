using System.Buffers.Binary;

namespace Switchback.Protocol.Records;

/// <summary>Counts the records of a produce partition's batches from their headers, without reading the records.</summary>
public static class RecordCounter
{
    /// <summary>
    /// Records in magic-2 batches (their header's count); a legacy message counts as one, even a compressed wrapper.
    /// A truncated tail is not counted: the broker will refuse it anyway.
    /// </summary>
    public static long Count(ReadOnlySpan<byte> records)
    {
        long count = 0;
        while (records.Length >= RecordBatchLayout.LogOverhead)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(records[RecordBatchLayout.BatchLength..]);
            if (length < 0 || length > records.Length - RecordBatchLayout.LogOverhead)
            {
                break;
            }
            var magic = records.Length > RecordBatchLayout.Magic ? records[RecordBatchLayout.Magic] : (byte)0;
            count += magic == RecordBatchLayout.CurrentMagic && length + RecordBatchLayout.LogOverhead >= RecordBatchLayout.HeaderSize
                ? Math.Max(0, BinaryPrimitives.ReadInt32BigEndian(records[RecordBatchLayout.RecordCount..]))
                : 1;
            records = records[(RecordBatchLayout.LogOverhead + length)..];
        }
        return count;
    }
}
