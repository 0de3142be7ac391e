using System.Buffers.Binary;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Records;

namespace Switchback.Proxy.Benchmarks.Relay;

/// <summary>The request frames the relay benches send, built once with the project's own codecs, and their answers decoded.</summary>
internal static class RelayRequests
{
    public const string ClientId = "relay-bench";

    /// <summary>The Produce version Confluent.Kafka 2.16 sends (PEERS.md).</summary>
    public const short PreferredProduceVersion = 10;

    /// <summary>
    /// Fetch v12: the first flexible version, topics still named. The proxy sends it upstream re-encoded (no fetch
    /// session) and, when one broker answers, patches the answer in place (<c>FetchResponseRewriter</c>) instead of
    /// decoding and re-encoding it.
    /// </summary>
    public const short FetchVersion = 12;

    public static byte[] ApiVersions(int correlationId) =>
        Frame(ApiKey.ApiVersions, 0, correlationId, new ApiVersionsRequest());

    public static byte[] Metadata(int correlationId, string topic) =>
        Frame(ApiKey.Metadata, 12, correlationId, new MetadataRequest
        {
            Topics = [new MetadataRequest.MetadataRequestTopic { Name = topic }],
            AllowAutoTopicCreation = false,
        });

    /// <summary>Produce with acks=1 of one non-idempotent batch to one partition.</summary>
    public static byte[] Produce(short version, int correlationId, string topic, int partition, byte[] batch) =>
        Frame(ApiKey.Produce, version, correlationId, new ProduceRequest
        {
            TransactionalId = null,
            Acks = 1,
            TimeoutMs = 30_000,
            TopicData =
            [
                new ProduceRequest.TopicProduceData
                {
                    Name = topic,
                    PartitionData = [new ProduceRequest.PartitionProduceData { Index = partition, Records = batch }],
                },
            ],
        });

    /// <summary>A sessionless Fetch of one partition from <paramref name="offset"/>, answered at once (max wait 0).</summary>
    public static byte[] Fetch(int correlationId, string topic, int partition, long offset, int partitionMaxBytes) =>
        Frame(ApiKey.Fetch, FetchVersion, correlationId, new FetchRequest
        {
            ReplicaId = -1,
            MaxWaitMs = 0,
            MinBytes = 1,
            MaxBytes = partitionMaxBytes,
            IsolationLevel = 0,
            SessionId = 0,
            SessionEpoch = -1,
            Topics =
            [
                new FetchRequest.FetchTopic
                {
                    Topic = topic,
                    Partitions =
                    [
                        new FetchRequest.FetchPartition
                        {
                            Partition = partition,
                            CurrentLeaderEpoch = -1,
                            FetchOffset = offset,
                            LastFetchedEpoch = -1,
                            LogStartOffset = -1,
                            PartitionMaxBytes = partitionMaxBytes,
                        },
                    ],
                },
            ],
        });

    /// <summary>
    /// A magic-2 batch (no compression, no producer id, so not idempotent) of <paramref name="records"/> records
    /// without key, each with a value of <paramref name="valueBytes"/> bytes, with a valid CRC-32C.
    /// </summary>
    public static byte[] RecordBatch(int records, int valueBytes)
    {
        var recordSizes = new int[records];
        var total = RecordBatchLayout.HeaderSize;
        for (var i = 0; i < records; i++)
        {
            var body = 1 + KafkaSize.VarLong(i) + KafkaSize.VarInt(i) + KafkaSize.VarInt(-1) + KafkaSize.VarInt(valueBytes) + valueBytes + KafkaSize.VarInt(0);
            recordSizes[i] = body;
            total += KafkaSize.VarInt(body) + body;
        }
        var batch = new byte[total];
        var s = batch.AsSpan();
        BinaryPrimitives.WriteInt64BigEndian(s[RecordBatchLayout.BaseOffset..], 0);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.BatchLength..], total - RecordBatchLayout.LogOverhead);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.PartitionLeaderEpoch..], -1);
        s[RecordBatchLayout.Magic] = RecordBatchLayout.CurrentMagic;
        BinaryPrimitives.WriteInt16BigEndian(s[RecordBatchLayout.Attributes..], 0);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.LastOffsetDelta..], records - 1);
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        BinaryPrimitives.WriteInt64BigEndian(s[RecordBatchLayout.BaseTimestamp..], timestamp);
        BinaryPrimitives.WriteInt64BigEndian(s[RecordBatchLayout.MaxTimestamp..], timestamp + records - 1);
        BinaryPrimitives.WriteInt64BigEndian(s[RecordBatchLayout.ProducerId..], -1);
        BinaryPrimitives.WriteInt16BigEndian(s[RecordBatchLayout.ProducerEpoch..], -1);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.BaseSequence..], -1);
        BinaryPrimitives.WriteInt32BigEndian(s[RecordBatchLayout.RecordCount..], records);
        var w = new KafkaWriter(s[RecordBatchLayout.HeaderSize..]);
        var value = new byte[valueBytes];
        for (var i = 0; i < records; i++)
        {
            value.AsSpan().Fill((byte)('a' + i % 26));
            w.WriteVarInt(recordSizes[i]);
            w.WriteInt8(0); // attributes
            w.WriteVarLong(i); // timestamp delta
            w.WriteVarInt(i); // offset delta
            w.WriteVarInt(-1); // no key
            w.WriteVarInt(valueBytes);
            w.WriteRaw(value);
            w.WriteVarInt(0); // no headers
        }
        new MutableRecordBatch(batch).RecomputeCrc();
        return batch;
    }

    /// <summary>Decodes an answer held in <paramref name="frameBody"/> (correlation id first, no size prefix).</summary>
    public static T Decode<T>(ReadOnlyMemory<byte> frameBody, ApiKey apiKey, short version, int expectedCorrelationId) where T : IKafkaMessage, new()
    {
        var reader = new KafkaReader(frameBody);
        var header = new ResponseHeader();
        header.Read(ref reader, KafkaApis.ResponseHeaderVersion(apiKey, version));
        if (header.CorrelationId != expectedCorrelationId)
        {
            throw new InvalidOperationException($"{apiKey} answer carries correlation id {header.CorrelationId}, expected {expectedCorrelationId}.");
        }
        var message = new T();
        message.Read(ref reader, version);
        return message;
    }

    private static byte[] Frame(ApiKey apiKey, short version, int correlationId, IKafkaMessage body) =>
        KafkaFrameEncoder.EncodeRequest(new RequestHeader { ApiKey = apiKey, ApiVersion = version, CorrelationId = correlationId, ClientId = ClientId }, body);
}
