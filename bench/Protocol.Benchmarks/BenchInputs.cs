using System.Buffers;
using System.Buffers.Binary;
using Switchback.Protocol.Records;

namespace Switchback.Protocol.Benchmarks;

/// <summary>Builders for benchmark inputs: wire-format frames and record batches.</summary>
internal static class BenchInputs
{
    /// <summary>A magic-2 batch of <paramref name="totalSize"/> bytes whose records are opaque random bytes, with a valid CRC.</summary>
    public static byte[] RecordBatch(int totalSize, int seed = 1)
    {
        var batch = new byte[totalSize];
        new Random(seed).NextBytes(batch.AsSpan(RecordBatchLayout.HeaderSize));
        var s = batch.AsSpan();
        BinaryPrimitives.WriteInt64BigEndian(s[RecordBatchLayout.BaseOffset..], 0);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.BatchLength..], totalSize - RecordBatchLayout.LogOverhead);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.PartitionLeaderEpoch..], 0);
        s[RecordBatchLayout.Magic] = RecordBatchLayout.CurrentMagic;
        BinaryPrimitives.WriteInt16BigEndian(s[RecordBatchLayout.Attributes..], 0);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.LastOffsetDelta..], 99);
        BinaryPrimitives.WriteInt64BigEndian(s[RecordBatchLayout.BaseTimestamp..], 1_700_000_000_000);
        BinaryPrimitives.WriteInt64BigEndian(s[RecordBatchLayout.MaxTimestamp..], 1_700_000_000_999);
        BinaryPrimitives.WriteInt64BigEndian(s[RecordBatchLayout.ProducerId..], -1);
        BinaryPrimitives.WriteInt16BigEndian(s[RecordBatchLayout.ProducerEpoch..], -1);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.BaseSequence..], -1);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.RecordCount..], 100);
        new MutableRecordBatch(batch).RecomputeCrc();
        return batch;
    }

    /// <summary>
    /// A Produce request body (after the header) for <paramref name="version"/> with <paramref name="topics"/> x
    /// <paramref name="partitions"/> partitions, each carrying one batch of <paramref name="batchSize"/> bytes.
    /// </summary>
    public static byte[] ProduceBody(short version, int topics, int partitions, int batchSize)
    {
        var flexible = version >= 9;
        var batch = RecordBatch(batchSize);
        var names = Enumerable.Range(0, topics).Select(t => $"bench-topic-{t}").ToArray();
        var size = (version >= 3 ? KafkaSize.NullableString("bench-tx", flexible) : 0) + 2 + 4 + KafkaSize.ArrayLength(topics, flexible);
        foreach (var name in names)
        {
            size += KafkaSize.String(name, flexible) + KafkaSize.ArrayLength(partitions, flexible) + (flexible ? 1 : 0);
            size += partitions * (4 + KafkaSize.Bytes(batch.Length, flexible) + (flexible ? 1 : 0));
        }
        size += flexible ? 1 : 0;

        var body = new byte[size];
        var w = new KafkaWriter(body);
        if (version >= 3)
        {
            w.WriteNullableString("bench-tx", flexible);
        }
        w.WriteInt16(-1);
        w.WriteInt32(30_000);
        w.WriteArrayLength(topics, flexible);
        foreach (var name in names)
        {
            w.WriteString(name, flexible);
            w.WriteArrayLength(partitions, flexible);
            for (var p = 0; p < partitions; p++)
            {
                w.WriteInt32(p);
                w.WriteBytes(batch, flexible);
                WriteNoTags(ref w, flexible);
            }
            WriteNoTags(ref w, flexible);
        }
        WriteNoTags(ref w, flexible);
        return body;
    }

    private static void WriteNoTags(ref KafkaWriter w, bool flexible)
    {
        if (flexible)
        {
            w.WriteUnsignedVarInt(0);
        }
    }

    /// <summary>A size-prefixed request frame: header v1 (api key, version, correlation id, client id) plus a body.</summary>
    public static byte[] RequestFrame(ApiKey apiKey, short version, int correlationId, string clientId, short headerVersion, ReadOnlySpan<byte> body)
    {
        var header = new RequestHeader { ApiKey = apiKey, ApiVersion = version, CorrelationId = correlationId, ClientId = clientId };
        var headerSize = header.Size(headerVersion);
        var frame = new byte[4 + headerSize + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, headerSize + body.Length);
        var w = new KafkaWriter(frame.AsSpan(4));
        header.Write(ref w, headerVersion);
        w.WriteRaw(body);
        return frame;
    }

    /// <summary>Cuts <paramref name="bytes"/> into a chain of segments of <paramref name="segmentSize"/> bytes, as a socket read loop would.</summary>
    public static ReadOnlySequence<byte> Segmented(byte[] bytes, int segmentSize)
    {
        Segment? first = null;
        Segment? last = null;
        for (var offset = 0; offset < bytes.Length; offset += segmentSize)
        {
            var chunk = bytes.AsMemory(offset, Math.Min(segmentSize, bytes.Length - offset));
            var segment = new Segment(chunk, last?.RunningIndex + last?.Memory.Length ?? 0);
            if (last is null)
            {
                first = segment;
            }
            else
            {
                last.SetNext(segment);
            }
            last = segment;
        }
        return first is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public void SetNext(Segment next) => Next = next;
    }
}
