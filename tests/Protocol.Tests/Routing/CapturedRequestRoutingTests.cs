using Switchback.Protocol.Records;
using Switchback.Protocol.Routing;
using Switchback.Protocol.Tests.Captures;
using Switchback.Protocol.Tests.Records;

namespace Switchback.Protocol.Tests.Routing;

/// <summary>The routing readers over Produce and Fetch requests sent by four real client implementations.</summary>
public class CapturedRequestRoutingTests
{
    public static TheoryData<string> Clients => [.. CaptureFile.Clients];

    private static IEnumerable<CapturedFrame> Requests(string client, ApiKey apiKey) =>
        CaptureFile.Load(client).Where(f => f.Direction == CaptureDirection.Request && f.ApiKey == (short)apiKey);

    /// <summary>The body after the request header (v2 for flexible versions, v1 otherwise).</summary>
    private static ReadOnlyMemory<byte> Body(CapturedFrame frame, short firstFlexibleVersion)
    {
        var reader = new KafkaReader(frame.Bytes.AsMemory());
        var header = default(RequestHeader);
        header.Read(ref reader, frame.ApiVersion >= firstFlexibleVersion ? (short)2 : (short)1);
        return frame.Bytes.AsMemory(reader.Position);
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public void ProduceRouting_ClientRequests_FindEveryBatchAndItsClientWrittenCrcIsValid(string client)
    {
        var batches = 0;
        foreach (var frame in Requests(client, ApiKey.Produce))
        {
            var body = Body(frame, ProduceRequestRouting.FirstFlexibleVersion);
            var reader = new ProduceRequestRouting(body.Span, frame.ApiVersion);
            Assert.InRange(reader.Acks, (short)-1, (short)1);
            while (reader.TryReadTopic(out var topic))
            {
                Assert.False(topic.Name.IsEmpty);
                while (reader.TryReadPartition(out var partition))
                {
                    var records = body.Slice(partition.RecordsOffset, partition.RecordsLength);
                    Assert.True(records.Span.SequenceEqual(partition.Records));
                    foreach (var entry in new RecordBatchEnumerator(records, RecordsSource.Produce))
                    {
                        Assert.NotEqual(RecordBatchKind.Partial, entry.Kind);
                        if (entry.Kind == RecordBatchKind.RecordBatch)
                        {
                            Assert.True(CrcValidation.IsValid(entry.Header), $"{frame}: CRC mismatch");
                            Assert.Equal(Crc32CReference.Compute(entry.Memory.Span[RecordBatchLayout.CrcStart..]), entry.Header.Crc);
                            batches++;
                        }
                    }
                }
            }
            reader.ReadToEnd();
            Assert.Equal(body.Length, reader.Position);
        }
        Assert.True(batches > 0, $"{client}: no magic-2 batch captured");
    }

    [Fact]
    public void Rewrite_ClientBatches_KeepsThemValidAfterRecomputeCrc()
    {
        var rewritten = 0;
        foreach (var frame in Requests("confluent", ApiKey.Produce))
        {
            var bytes = frame.Bytes.ToArray();
            var bodyStart = frame.Bytes.Length - Body(frame, ProduceRequestRouting.FirstFlexibleVersion).Length;
            var reader = new ProduceRequestRouting(bytes.AsSpan(bodyStart), frame.ApiVersion);
            while (reader.TryReadTopic(out _))
            {
                while (reader.TryReadPartition(out var partition))
                {
                    var start = bodyStart + partition.RecordsOffset;
                    foreach (var entry in new RecordBatchEnumerator(bytes.AsMemory(start, partition.RecordsLength), RecordsSource.Produce))
                    {
                        var batch = new MutableRecordBatch(bytes.AsSpan(start + entry.Offset, entry.Length));
                        batch.ProducerId = 4242;
                        batch.ProducerEpoch = 9;
                        batch.RecomputeCrc();
                        Assert.True(CrcValidation.IsValid(batch.Header));
                        Assert.Equal(Crc32CReference.Compute(entry.Memory.Span[RecordBatchLayout.CrcStart..]), batch.Header.Crc);
                        rewritten++;
                    }
                }
            }
        }
        Assert.True(rewritten > 0);
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public void FetchRouting_ClientRequests_ReadExactlyToTheEnd(string client)
    {
        var partitions = 0;
        foreach (var frame in Requests(client, ApiKey.Fetch))
        {
            var body = Body(frame, FetchRequestRouting.FirstFlexibleVersion);
            var reader = new FetchRequestRouting(body.Span, frame.ApiVersion);
            Assert.Equal(-1, reader.ReplicaId);
            while (reader.TryReadTopic(out var topic))
            {
                Assert.True(frame.ApiVersion >= FetchRequestRouting.FirstTopicIdVersion ? topic.TopicId != Guid.Empty : !topic.Name.IsEmpty);
                while (reader.TryReadPartition(out var partition))
                {
                    Assert.True(partition.FetchOffset >= 0);
                    partitions++;
                }
            }
            reader.ReadToEnd();
            Assert.True(reader.IsComplete);
            Assert.Equal(-1, reader.ReplicaId);
        }
        Assert.True(partitions > 0, $"{client}: no Fetch partition captured");
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public void FetchRouting_ClientRequests_AgreeWithTheGeneratedFetchRequestCodec(string client)
    {
        foreach (var frame in Requests(client, ApiKey.Fetch))
        {
            var body = Body(frame, FetchRequestRouting.FirstFlexibleVersion);
            var decodeReader = new KafkaReader(body);
            var decoded = new Switchback.Protocol.Messages.FetchRequest();
            decoded.Read(ref decodeReader, frame.ApiVersion);
            var expected = decoded.Topics
                .SelectMany(t => t.Partitions.Select(p => $"{t.Topic}|{t.TopicId}|{p.Partition}|{p.FetchOffset}|{p.PartitionMaxBytes}"))
                .ToList();

            var reader = new FetchRequestRouting(body.Span, frame.ApiVersion);
            var actual = new List<string>();
            while (reader.TryReadTopic(out var topic))
            {
                var name = System.Text.Encoding.UTF8.GetString(topic.Name);
                var id = topic.TopicId;
                while (reader.TryReadPartition(out var p))
                {
                    actual.Add($"{name}|{id}|{p.Index}|{p.FetchOffset}|{p.PartitionMaxBytes}");
                }
            }
            reader.ReadToEnd();

            Assert.Equal(expected, actual);
            Assert.Equal((decoded.MaxWaitMs, decoded.MinBytes, decoded.MaxBytes, decoded.IsolationLevel, decoded.SessionId, decoded.SessionEpoch),
                (reader.MaxWaitMs, reader.MinBytes, reader.MaxBytes, reader.IsolationLevel, reader.SessionId, reader.SessionEpoch));
            Assert.Equal(decoded.ClusterId ?? "", System.Text.Encoding.UTF8.GetString(reader.ClusterId));
            Assert.Equal(decoded.RackId ?? "", System.Text.Encoding.UTF8.GetString(reader.RackId));
            Assert.Equal(decoded.ForgottenTopicsData?.Count ?? 0, reader.ForgottenTopicCount);
        }
    }
}
