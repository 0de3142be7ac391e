using BenchmarkDotNet.Attributes;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Records;
using Switchback.Protocol.Routing;

namespace Switchback.Protocol.Benchmarks.HotPath;

/// <summary>
/// The per-request protocol work on the proxy's relay path for Produce and Fetch: reading a Produce request's
/// routing keys, keeping its outline, re-basing an idempotent batch (producer id, epoch, sequence, CRC), checking a
/// Produce answer can be relayed as bytes, and patching a Fetch request and a Fetch answer in place. Each has an allocation budget of 0 B per operation,
/// enforced by AllocationBudgetTests in the protocol test suite.
/// </summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private static readonly Guid UpstreamId = Guid.Parse("0b0b0b0b-1111-4222-8333-444444444444");
    private static readonly Guid ClientId = Guid.Parse("aaaaaaaa-aaaa-8aaa-8aaa-aaaaaaaaaaaa");
    private static readonly Func<Guid, Guid?> MapTopicId = static id => id == UpstreamId || id == ClientId ? ClientId : null;
    private static readonly Func<int, int> MapNode = static node => node + 100_000;

    private byte[] _produceBody = [];
    private byte[] _batch = [];
    private byte[] _produceAnswer = [];
    private byte[] _fetchAnswer = [];
    private byte[] _fetchRequest = [];
    private byte[] _outline = [];

    [GlobalSetup]
    public void Setup()
    {
        _produceBody = BenchInputs.ProduceBody(9, topics: 2, partitions: 4, batchSize: 16 * 1024);
        _batch = BenchInputs.RecordBatch(16 * 1024);
        _produceAnswer = Frame(ProduceAnswer(), 10);
        _fetchAnswer = Frame(FetchAnswer(), 16);
        _fetchRequest = Body(FetchRequest(), 16);
        _outline = new byte[_produceBody.Length];
        if (!FetchRequestPatchInPlace())
        {
            throw new InvalidOperationException("The bench Fetch request cannot be rewritten in place.");
        }
    }

    [Benchmark]
    public int ProduceRoutingKeys()
    {
        var routing = new ProduceRequestRouting(_produceBody, 9);
        var partitions = 0;
        while (routing.TryReadTopic(out _))
        {
            while (routing.TryReadPartition(out _))
            {
                partitions++;
            }
        }
        return partitions;
    }

    [Benchmark]
    public int ProduceRequestOutlineWrite() => ProduceRequestOutline.Write(_produceBody, 9, _outline);

    [Benchmark]
    public uint IdempotentBatchRebase()
    {
        var batch = new MutableRecordBatch(_batch);
        batch.ProducerId = 4242;
        batch.ProducerEpoch = 1;
        batch.BaseSequence = 17;
        return batch.RecomputeCrc();
    }

    [Benchmark]
    public bool ProduceAnswerRelayCheck() => ProduceResponseInspector.CanRelayAsIs(_produceAnswer, 10);

    [Benchmark]
    public bool FetchAnswerPatchInPlace() => FetchResponseRewriter.TryRewriteInPlace(_fetchAnswer, 16, MapTopicId, MapNode);

    [Benchmark]
    public bool FetchRequestPatchInPlace() => FetchRequestRewriter.TryRewriteInPlace(_fetchRequest, 16, new UpstreamTopicIds());

    /// <summary>Both ids map to the upstream one, so every operation finds the same request to rewrite.</summary>
    private readonly struct UpstreamTopicIds : IFetchRequestTopicIds
    {
        public bool TryMapTopicId(Guid clientId, out Guid upstreamId)
        {
            upstreamId = UpstreamId;
            return clientId == ClientId || clientId == UpstreamId;
        }
    }

    private static FetchRequest FetchRequest()
    {
        var request = new FetchRequest { ReplicaId = -1, MaxWaitMs = 500, MinBytes = 1, MaxBytes = 52_428_800, SessionId = 0, SessionEpoch = 0 };
        var topic = new FetchRequest.FetchTopic { TopicId = ClientId };
        for (var p = 0; p < 8; p++)
        {
            topic.Partitions.Add(new FetchRequest.FetchPartition { Partition = p, CurrentLeaderEpoch = 3, FetchOffset = 1000 * p, LastFetchedEpoch = 3, LogStartOffset = -1, PartitionMaxBytes = 1 << 20 });
        }
        request.Topics.Add(topic);
        return request;
    }

    private static byte[] Body(IKafkaMessage message, short version)
    {
        var body = new byte[message.Size(version)];
        var writer = new KafkaWriter(body);
        message.Write(ref writer, version);
        return body;
    }

    private static ProduceResponse ProduceAnswer()
    {
        var answer = new ProduceResponse();
        for (var t = 0; t < 2; t++)
        {
            var topic = new ProduceResponse.TopicProduceResponse { Name = $"orders.t{t}" };
            for (var p = 0; p < 4; p++)
            {
                topic.PartitionResponses.Add(new ProduceResponse.PartitionProduceResponse { Index = p, BaseOffset = 1000 * p, LogAppendTimeMs = -1 });
            }
            answer.Responses.Add(topic);
        }
        return answer;
    }

    private static FetchResponse FetchAnswer()
    {
        var answer = new FetchResponse();
        var topic = new FetchResponse.FetchableTopicResponse { TopicId = UpstreamId };
        for (var p = 0; p < 8; p++)
        {
            topic.Partitions.Add(new FetchResponse.PartitionData
            {
                PartitionIndex = p,
                HighWatermark = 5000,
                PreferredReadReplica = -1,
                Records = BenchInputs.RecordBatch(16 * 1024, seed: p),
            });
        }
        answer.Responses.Add(topic);
        return answer;
    }

    private static byte[] Frame(IKafkaMessage message, short version) =>
        KafkaFrameEncoder.EncodeResponse(new ResponseHeader { CorrelationId = 1 }, message, version)[4..];
}
