using System.Text;
using Switchback.Protocol.Records;
using Switchback.Protocol.Routing;
using Switchback.Protocol.Tests.Records;

namespace Switchback.Protocol.Tests.Routing;

public class ProduceRequestRoutingTests
{
    private sealed record Topic(string Name, (int Index, byte[]? Records)[] Partitions);

    /// <summary>A Produce request body laid out as the protocol guide's BNF for <paramref name="version"/>.</summary>
    private static byte[] Encode(short version, string? transactionalId, short acks, int timeoutMs, Topic[] topics)
    {
        var flexible = version >= 9;
        var w = new WireBuilder();
        if (version >= 3)
        {
            w.String(transactionalId, flexible);
        }
        w.Int16(acks).Int32(timeoutMs).ArrayLength(topics.Length, flexible);
        foreach (var topic in topics)
        {
            w.String(topic.Name, flexible).ArrayLength(topic.Partitions.Length, flexible);
            foreach (var (index, records) in topic.Partitions)
            {
                w.Int32(index).Bytes(records, flexible).NoTags(flexible);
            }
            w.NoTags(flexible);
        }
        return w.NoTags(flexible).ToArray();
    }

    private static List<(string Topic, int Index, int Offset, int Length, bool Null)> ReadAll(byte[] body, short version, out string? transactionalId, out short acks, out int timeout)
    {
        var reader = new ProduceRequestRouting(body, version);
        transactionalId = reader.HasTransactionalId ? Encoding.UTF8.GetString(reader.TransactionalId) : null;
        acks = reader.Acks;
        timeout = reader.TimeoutMs;
        var seen = new List<(string, int, int, int, bool)>();
        while (reader.TryReadTopic(out var topic))
        {
            var name = Encoding.UTF8.GetString(topic.Name);
            while (reader.TryReadPartition(out var partition))
            {
                seen.Add((name, partition.Index, partition.RecordsOffset, partition.RecordsLength, partition.RecordsAreNull));
            }
        }
        Assert.Equal(body.Length, reader.Position);
        return seen;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(10)]
    [InlineData(11)]
    public void Read_SeveralTopicsAndPartitions_LocatesEveryRecordsField(short version)
    {
        var batch = CapturedBatches.SingleRecord;
        var other = CapturedBatches.TwoRecords;
        var body = Encode(version, "tx-1", -1, 30_000,
        [
            new Topic("orders", [(0, batch), (3, other)]),
            new Topic("payments", [(7, other)]),
            new Topic("empty", []),
        ]);

        var seen = ReadAll(body, version, out var txId, out var acks, out var timeout);

        Assert.Equal(version >= 3 ? "tx-1" : null, txId);
        Assert.Equal(-1, acks);
        Assert.Equal(30_000, timeout);
        Assert.Equal(["orders/0", "orders/3", "payments/7"], seen.Select(s => $"{s.Topic}/{s.Index}"));
        Assert.Equal([batch.Length, other.Length, other.Length], seen.Select(s => s.Length));
        Assert.Equal(batch, body.AsSpan(seen[0].Offset, seen[0].Length).ToArray());
        Assert.Equal(other, body.AsSpan(seen[2].Offset, seen[2].Length).ToArray());
    }

    [Fact]
    public void Read_RecordsOffset_LetsCallerRewriteBatchInPlace()
    {
        var body = Encode(9, null, 1, 1000, [new Topic("t", [(0, CapturedBatches.Both)])]);
        var reader = new ProduceRequestRouting(body, 9);
        Assert.True(reader.TryReadTopic(out _));
        Assert.True(reader.TryReadPartition(out var partition));
        var records = body.AsMemory(partition.RecordsOffset, partition.RecordsLength);

        foreach (var entry in new RecordBatchEnumerator(records, RecordsSource.Produce))
        {
            var batch = new MutableRecordBatch(body.AsSpan(partition.RecordsOffset + entry.Offset, entry.Length));
            batch.ProducerId = 77;
            batch.RecomputeCrc();
        }

        var rewritten = new RecordBatchEnumerator(body.AsMemory(partition.RecordsOffset, partition.RecordsLength), RecordsSource.Produce);
        var count = 0;
        foreach (var entry in rewritten)
        {
            Assert.Equal(77, entry.Header.ProducerId);
            Assert.True(CrcValidation.IsValid(entry.Header));
            count++;
        }
        Assert.Equal(2, count);
    }

    [Fact]
    public void Read_V3BytesFromProtocolGuide_MatchFieldByField()
    {
        // Produce v3: transactional_id (nullable STRING) acks timeout_ms [name [index records]].
        var batch = CapturedBatches.SingleRecord;
        byte[] body =
        [
            0xFF, 0xFF,             // transactional_id = null
            0xFF, 0xFF,             // acks = -1
            0x00, 0x00, 0x75, 0x30, // timeout_ms = 30000
            0x00, 0x00, 0x00, 0x01, // 1 topic
            0x00, 0x01, (byte)'t',  // name = "t"
            0x00, 0x00, 0x00, 0x01, // 1 partition
            0x00, 0x00, 0x00, 0x05, // index = 5
            0x00, 0x00, 0x00, 0x47, // records: 71 bytes
            .. batch,
        ];
        Assert.Equal(Encode(3, null, -1, 30_000, [new Topic("t", [(5, batch)])]), body);

        var seen = ReadAll(body, 3, out var txId, out var acks, out var timeout);

        Assert.Null(txId);
        Assert.Equal((-1, 30_000), (acks, timeout));
        Assert.Equal([("t", 5, 27, 71, false)], seen);
    }

    [Fact]
    public void Read_V9CompactBytesFromProtocolGuide_MatchFieldByField()
    {
        // Produce v9 (flexible): compact strings/arrays/records, a tagged-field section after each struct.
        var batch = CapturedBatches.SingleRecord;
        byte[] body =
        [
            0x03, (byte)'t', (byte)'x', // transactional_id = "tx" (length + 1)
            0x00, 0x01,                 // acks = 1
            0x00, 0x00, 0x03, 0xE8,     // timeout_ms = 1000
            0x02,                       // 1 topic (count + 1)
            0x02, (byte)'t',            // name = "t"
            0x02,                       // 1 partition
            0x00, 0x00, 0x00, 0x02,     // index = 2
            0x48,                       // records: 71 bytes (+ 1)
            .. batch,
            0x00,                       // partition tagged fields
            0x00,                       // topic tagged fields
            0x00,                       // request tagged fields
        ];
        Assert.Equal(Encode(9, "tx", 1, 1000, [new Topic("t", [(2, batch)])]), body);

        var seen = ReadAll(body, 9, out var txId, out _, out _);

        Assert.Equal("tx", txId);
        Assert.Equal([("t", 2, 18, 71, false)], seen);
    }

    [Fact]
    public void Read_FlexibleWithUnknownTaggedFields_SkipsThem()
    {
        var w = new WireBuilder().String(null, true).Int16(1).Int32(5).ArrayLength(1, true)
            .String("t", true).ArrayLength(1, true)
            .Int32(4).Bytes(CapturedBatches.SingleRecord, true).UVarInt(1).Tag(9, [1, 2, 3])
            .UVarInt(2).Tag(1, []).Tag(30, [0xAA])
            .UVarInt(1).Tag(0, [0x42]);
        var body = w.ToArray();
        var seen = ReadAll(body, 10, out _, out _, out _);
        Assert.Equal([("t", 4)], seen.Select(s => (s.Topic, s.Index)));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(11)]
    public void Read_NullRecords_ReportedAsNull(short version)
    {
        var body = Encode(version, null, 0, 0, [new Topic("t", [(1, null)])]);
        var seen = ReadAll(body, version, out _, out _, out _);
        Assert.True(seen.Single().Null);
    }

    [Fact]
    public void TryReadTopic_SkipsUnreadPartitions()
    {
        var body = Encode(11, null, 1, 1, [new Topic("a", [(0, [1]), (1, [2])]), new Topic("b", [(9, [3])])]);
        var reader = new ProduceRequestRouting(body, 11);
        Assert.True(reader.TryReadTopic(out _));
        Assert.True(reader.TryReadTopic(out var second));
        Assert.Equal("b"u8, second.Name);
        Assert.True(reader.TryReadPartition(out var p));
        Assert.Equal(9, p.Index);
        reader.ReadToEnd();
        Assert.Equal(body.Length, reader.Position);
    }

    [Fact]
    public void Read_TruncatedBody_ThrowsProtocolException()
    {
        var body = Encode(9, "tx", 1, 1, [new Topic("t", [(0, CapturedBatches.SingleRecord)])]);
        for (var cut = 0; cut < body.Length; cut++)
        {
            var truncated = body.AsSpan(0, cut).ToArray();
            Assert.Throws<KafkaProtocolException>(() => ReadAll(truncated, 9, out _, out _, out _));
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(9)]
    [InlineData(11)]
    public void Resume_FromEveryCursor_ReadsTheSameRest(short version)
    {
        var body = Encode(version, "tx", 1, 1, [new Topic("orders", [(0, [1, 2]), (1, null), (2, [3])]), new Topic("payments", [(7, [4])])]);
        var expected = ReadAll(body, version, out _, out _, out _);
        var cursor = default(ProduceRoutingCursor);
        var seen = new List<(string Topic, int Index, int Offset, int Length, bool Null)>();
        while (true)
        {
            // A fresh reader per partition, as a caller that awaits between partitions has.
            var reader = new ProduceRequestRouting(body, version, cursor);
            if (!reader.TryReadPartition(out var partition))
            {
                if (!reader.TryReadTopic(out _))
                {
                    reader.ReadToEnd();
                    Assert.Equal(body.Length, reader.Position);
                    break;
                }
                cursor = reader.Cursor;
                continue;
            }
            var name = Encoding.UTF8.GetString(body.AsSpan()[reader.CurrentTopicName]);
            seen.Add((name, partition.Index, partition.RecordsOffset, partition.RecordsLength, partition.RecordsAreNull));
            cursor = reader.Cursor;
        }
        Assert.Equal(expected, seen);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(11)]
    public void Outline_KeepsTopicsAndPartitions_WithNullRecords(short version)
    {
        var body = Encode(version, version >= 3 ? "tx" : null, -1, 30_000,
            [new Topic("orders", [(0, CapturedBatches.SingleRecord), (1, null), (2, [])]), new Topic("payments", [(7, CapturedBatches.SingleRecord)])]);
        var length = ProduceRequestOutline.Measure(body, version);
        var outline = new byte[length + 8];
        Assert.Equal(length, ProduceRequestOutline.Write(body, version, outline));

        var expected = Encode(version, version >= 3 ? "tx" : null, -1, 30_000,
            [new Topic("orders", [(0, null), (1, null), (2, null)]), new Topic("payments", [(7, null)])]);
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(outline.AsSpan(0, length)));
    }

    [Fact]
    public void Outline_TruncatedBody_ThrowsProtocolException()
    {
        var body = Encode(9, "tx", 1, 1, [new Topic("t", [(0, CapturedBatches.SingleRecord)])]);
        Assert.Throws<KafkaProtocolException>(() => ProduceRequestOutline.Measure(body.AsSpan(0, body.Length - 1).ToArray(), 9));
    }

    [Fact]
    public void Constructor_UnsupportedVersion_Throws() =>
        Assert.Throws<KafkaProtocolException>(() => new ProduceRequestRouting([], 12));
}
