using System.Buffers.Binary;
using Switchback.Protocol.Records;

namespace Switchback.Protocol.Tests.Records;

public class RecordBatchEnumeratorTests
{
    private static List<(RecordBatchKind Kind, int Offset, int Length, sbyte Magic, long BaseOffset)> Walk(byte[] records, RecordsSource source)
    {
        var entries = new List<(RecordBatchKind, int, int, sbyte, long)>();
        foreach (var entry in new RecordBatchEnumerator(records, source))
        {
            entries.Add((entry.Kind, entry.Offset, entry.Length, entry.Magic, entry.BaseOffset));
        }
        return entries;
    }

    /// <summary>A legacy message (magic 0 or 1) with a null key and the given value; the CRC is not checked here.</summary>
    private static byte[] LegacyMessage(byte magic, long offset, byte[] value)
    {
        var size = 4 + 1 + 1 + (magic == 1 ? 8 : 0) + 4 + 4 + value.Length;
        var bytes = new byte[12 + size];
        var s = bytes.AsSpan();
        BinaryPrimitives.WriteInt64BigEndian(s, offset);
        BinaryPrimitives.WriteInt32BigEndian(s[8..], size);
        s[16] = magic;
        var p = 18 + (magic == 1 ? 8 : 0);
        BinaryPrimitives.WriteInt32BigEndian(s[p..], -1);
        BinaryPrimitives.WriteInt32BigEndian(s[(p + 4)..], value.Length);
        value.CopyTo(s[(p + 8)..]);
        return bytes;
    }

    [Fact]
    public void Walk_TwoBrokerBatches_YieldsEachAsSliceWithOffsets()
    {
        var entries = Walk(CapturedBatches.Both, RecordsSource.Produce);
        Assert.Equal(
            [(RecordBatchKind.RecordBatch, 0, 71, (sbyte)2, 0L), (RecordBatchKind.RecordBatch, 71, 76, (sbyte)2, 1L)],
            entries);
    }

    [Fact]
    public void Walk_EntryHeader_ReadsTheBatchInPlace()
    {
        var records = CapturedBatches.Both;
        var enumerator = new RecordBatchEnumerator(records, RecordsSource.Fetch);
        Assert.True(enumerator.MoveNext());
        Assert.True(enumerator.MoveNext());
        var header = enumerator.Current.Header;
        Assert.Equal(2, header.RecordCount);
        Assert.True(CrcValidation.IsValid(header));
        Assert.False(enumerator.MoveNext());
    }

    [Fact]
    public void Walk_Empty_YieldsNothing() => Assert.Empty(Walk([], RecordsSource.Produce));

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Walk_LegacyMessageSet_ReportsLegacyEntries(byte magic)
    {
        byte[] records = [.. LegacyMessage(magic, 5, "ab"u8.ToArray()), .. LegacyMessage(magic, 6, [])];
        var entries = Walk(records, RecordsSource.Produce);
        Assert.Equal(2, entries.Count);
        Assert.All(entries, e => Assert.Equal(RecordBatchKind.LegacyMessageSet, e.Kind));
        Assert.All(entries, e => Assert.Equal((sbyte)magic, e.Magic));
        Assert.Equal([5L, 6L], entries.Select(e => e.BaseOffset));
        Assert.Equal(records.Length, entries.Sum(e => e.Length));
    }

    [Fact]
    public void Header_OfLegacyEntry_Throws()
    {
        var enumerator = new RecordBatchEnumerator(LegacyMessage(1, 0, [1]), RecordsSource.Fetch);
        Assert.True(enumerator.MoveNext());
        var entry = enumerator.Current;
        Assert.Throws<KafkaProtocolException>(() => { _ = entry.Header; });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(60)]
    [InlineData(75)]
    public void Walk_FetchWithTruncatedLastBatch_ExposesPartialTail(int tailBytes)
    {
        var records = CapturedBatches.Both.AsSpan(0, 71 + tailBytes).ToArray();
        var entries = Walk(records, RecordsSource.Fetch);
        Assert.Equal(2, entries.Count);
        Assert.Equal(RecordBatchKind.RecordBatch, entries[0].Kind);
        Assert.Equal(RecordBatchKind.Partial, entries[1].Kind);
        Assert.Equal(71, entries[1].Offset);
        Assert.Equal(tailBytes, entries[1].Length);
        Assert.Equal(tailBytes > 16 ? (sbyte)2 : (sbyte)-1, entries[1].Magic);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(12)]
    [InlineData(75)]
    public void Walk_ProduceWithTruncatedLastBatch_Throws(int tailBytes)
    {
        var records = CapturedBatches.Both.AsSpan(0, 71 + tailBytes).ToArray();
        Assert.Throws<KafkaProtocolException>(() => Walk(records, RecordsSource.Produce));
    }

    [Theory]
    [InlineData(RecordsSource.Produce)]
    [InlineData(RecordsSource.Fetch)]
    public void Walk_UnknownMagic_Throws(RecordsSource source)
    {
        var records = CapturedBatches.SingleRecord;
        records[RecordBatchLayout.Magic] = 3;
        Assert.Throws<KafkaProtocolException>(() => Walk(records, source));
    }

    [Theory]
    [InlineData(RecordsSource.Produce, -1)]
    [InlineData(RecordsSource.Produce, 0)]
    [InlineData(RecordsSource.Produce, 48)]
    [InlineData(RecordsSource.Fetch, -5)]
    [InlineData(RecordsSource.Fetch, 48)]
    public void Walk_BatchLengthShorterThanHeader_Throws(RecordsSource source, int length)
    {
        var records = CapturedBatches.SingleRecord;
        BinaryPrimitives.WriteInt32BigEndian(records.AsSpan(RecordBatchLayout.BatchLength), length);
        Assert.Throws<KafkaProtocolException>(() => Walk(records, source));
    }
}
