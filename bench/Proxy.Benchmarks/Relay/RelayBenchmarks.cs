using BenchmarkDotNet.Attributes;
using Switchback.Protocol;
using Switchback.Protocol.Messages;

namespace Switchback.Proxy.Benchmarks.Relay;

/// <summary>
/// The whole relay path for one client request: client socket, <c>ClientSession</c>, <c>RequestDispatcher</c>,
/// <c>PartitionHandlers</c>, <c>UpstreamConnection</c> to a librdkafka mock broker and back. One operation is one
/// request sent and its whole answer read, on one connection, one at a time.
/// </summary>
/// <remarks>
/// Allocated bytes are the proxy's: the client allocates nothing per operation (checked in setup) and the mock
/// cluster is native code. The memory diagnoser reads the process-wide <c>GC.GetTotalAllocatedBytes</c>, so it
/// counts allocations made on every managed thread, the proxy's socket and thread-pool threads included (checked
/// with a bench whose operation wakes a dedicated thread that allocates a 10,000 B array: 9.79 KB per operation
/// reported, the array with its header; the same through the thread pool: 9.82 KB). It also counts
/// whatever else the process allocates meanwhile (timers, Kestrel's heartbeat), which a large invocation count
/// spreads below a byte per operation; the periodic metadata refresh is set to an hour for that reason.
/// </remarks>
[MemoryDiagnoser]
public class RelayBenchmarks
{
    public const int ProducePartition = 0;
    public const int FetchPartition = 1;
    public const int RecordsPerBatch = 16;
    public const int ValueBytes = 100;
    private const int FetchMaxBytes = 16 * 1024;

    private RelayRig? _rig;
    private BlockingKafkaClient? _producer;
    private BlockingKafkaClient? _consumer;
    private byte[] _produceFrame = [];
    private byte[] _fetchFrame = [];

    /// <summary>The Produce version sent: v10 (what Confluent.Kafka 2.16 sends), or less if the proxy offers less.</summary>
    public short ProduceVersion { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        _rig = RelayRig.Start();
        ProduceVersion = Math.Min(RelayRequests.PreferredProduceVersion, _rig.AdvertisedMaxVersion(ApiKey.Produce));
        // Produce appends to the mock's log on every operation; small records keep a long run bounded (the mock
        // also keeps only ~5 MiB per partition). Fetch reads another partition, so that eviction never moves offset 0.
        var batch = RelayRequests.RecordBatch(RecordsPerBatch, ValueBytes);

        _producer = _rig.ConnectToLeader(ProducePartition);
        _produceFrame = RelayRequests.Produce(ProduceVersion, 7, RelayRig.Topic, ProducePartition, batch);
        CheckProduced(_producer, _produceFrame, ProducePartition, 7);

        _consumer = _rig.ConnectToLeader(FetchPartition);
        CheckProduced(_consumer, RelayRequests.Produce(ProduceVersion, 8, RelayRig.Topic, FetchPartition, batch), FetchPartition, 8);
        _fetchFrame = RelayRequests.Fetch(9, RelayRig.Topic, FetchPartition, offset: 0, FetchMaxBytes);
        CheckFetched(_consumer, _fetchFrame, 9, batch.Length);

        CheckClientAllocatesNothing(_producer, _produceFrame);
        CheckClientAllocatesNothing(_consumer, _fetchFrame);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _producer?.Dispose();
        _consumer?.Dispose();
        _rig?.Dispose();
    }

    /// <summary>Produce (acks=1) of one 16 x 100 B batch to one partition; the answer is relayed as bytes.</summary>
    [Benchmark]
    public int RelayProduce() => _producer!.RoundTrip(_produceFrame);

    /// <summary>Fetch v12 of one partition from offset 0 (one 1.8 KB batch); the answer is patched in place.</summary>
    [Benchmark]
    public int RelayFetch() => _consumer!.RoundTrip(_fetchFrame);

    private void CheckProduced(BlockingKafkaClient client, byte[] frame, int partition, int correlationId)
    {
        client.RoundTrip(frame);
        var answer = RelayRequests.Decode<ProduceResponse>(client.Response, ApiKey.Produce, ProduceVersion, correlationId);
        var result = answer.Responses.Single(t => t.Name == RelayRig.Topic).PartitionResponses.Single(p => p.Index == partition);
        if (result.ErrorCode != 0)
        {
            throw new InvalidOperationException($"Produce to {RelayRig.Topic}/{partition} through the proxy failed with error {result.ErrorCode}.");
        }
    }

    private static void CheckFetched(BlockingKafkaClient client, byte[] frame, int correlationId, int batchBytes)
    {
        client.RoundTrip(frame);
        var answer = RelayRequests.Decode<FetchResponse>(client.Response, ApiKey.Fetch, RelayRequests.FetchVersion, correlationId);
        var result = answer.Responses.Single(t => t.Topic == RelayRig.Topic).Partitions.Single(p => p.PartitionIndex == FetchPartition);
        if (answer.ErrorCode != 0 || result.ErrorCode != 0 || result.Records is not { Length: > 0 } records || records.Length < batchBytes)
        {
            throw new InvalidOperationException(
                $"Fetch of {RelayRig.Topic}/{FetchPartition} through the proxy answered error {answer.ErrorCode}/{result.ErrorCode} with {result.Records?.Length ?? 0} record bytes.");
        }
    }

    /// <summary>The client side must not allocate, or its allocations would be charged to the proxy.</summary>
    private static void CheckClientAllocatesNothing(BlockingKafkaClient client, byte[] frame)
    {
        for (var i = 0; i < 100; i++)
        {
            client.RoundTrip(frame);
        }
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            client.RoundTrip(frame);
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (allocated != 0)
        {
            throw new InvalidOperationException($"The bench client allocated {allocated} B in 100 round trips; it must allocate nothing.");
        }
    }
}
