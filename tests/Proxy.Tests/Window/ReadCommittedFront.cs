using System.Buffers.Binary;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Fronts;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Tests.Window;

/// <summary>
/// librdkafka's mock cluster keeps no transaction state for readers: its Fetch answers give the high watermark as the
/// last stable offset and never list aborted transactions (rd_kafka_mock_handle_Fetch in src/rdkafka_mock_handlers.c),
/// so a read_committed consumer sees open and aborted transactions' records alike (PEERS.md). This front stands before
/// every broker of one mock cluster (each broker advertises the front's port for it), relays all traffic as bytes, and
/// gives Fetch answers what a broker gives a read_committed consumer, for the records of transactions it saw go
/// through it: it learns each transactional batch's offsets from the Produce answers and each transaction's outcome
/// from EndTxn, then, per partition of a Fetch answer (the mock answers one batch per partition), passes a committed
/// batch, lists an aborted one's producer among the aborted transactions (so the consumer skips it), and withholds one
/// whose transaction is still open (last stable offset set to the batch, no records), as a broker's last stable offset
/// would. A hand-made stand-in for broker behaviour, not the behaviour of a real broker observed here; offsets stay as
/// the mock assigns them (its EndTxn appends a control record to each partition, which takes an offset, as a broker's
/// marker does). Partitions are told apart by number only: use one topic.
/// </summary>
public sealed class ReadCommittedFront(MockKafkaCluster cluster) : KafkaFront(cluster)
{
    private const short TransactionalAttribute = 0x10;
    private const short ControlAttribute = 0x20;

    private readonly Lock _sync = new();
    // Batches of transactions not yet ended, per producer id.
    private readonly Dictionary<long, List<BatchRange>> _open = [];
    private readonly List<BatchRange> _committed = [];
    private readonly List<BatchRange> _aborted = [];

    /// <summary>Batches withheld from a Fetch answer because their transaction was still open (or not yet known to have ended).</summary>
    public int Withheld => Volatile.Read(ref _withheld);

    /// <summary>Batches answered as aborted.</summary>
    public int AbortedAnswers => Volatile.Read(ref _abortedAnswers);

    private int _withheld;
    private int _abortedAnswers;

    private sealed record BatchRange(long ProducerId, int Partition, long First, long Last);

    protected override ValueTask<byte[]> RewriteAnswerAsync(Request request, byte[] answer) => ValueTask.FromResult(Observe(request, answer));

    private byte[] Observe(Request request, byte[] frame)
    {
        try
        {
            switch (request.ApiKey)
            {
                case ApiKey.Produce:
                    Produced(FrameCodec.DecodeBody<ProduceRequest>(request.Body, request.Version), Decode<ProduceResponse>(frame, request));
                    break;
                case ApiKey.EndTxn:
                    Ended(FrameCodec.DecodeBody<EndTxnRequest>(request.Body, request.Version), Decode<EndTxnResponse>(frame, request));
                    break;
                case ApiKey.Fetch:
                    return Fetched(request, frame);
            }
        }
        catch (KafkaProtocolException)
        {
            // Relayed as is.
        }
        return frame;
    }

    private void Produced(ProduceRequest request, ProduceResponse response)
    {
        foreach (var topic in request.TopicData)
        {
            foreach (var partition in topic.PartitionData)
            {
                if (partition.Records is not { } records || !TryReadBatch(records.Span, out var batch) || (batch.Attributes & TransactionalAttribute) == 0)
                {
                    continue;
                }
                var answer = response.Responses.FirstOrDefault(t => t.Name == topic.Name)?.PartitionResponses.FirstOrDefault(p => p.Index == partition.Index);
                if (answer is not { ErrorCode: 0 })
                {
                    continue;
                }
                lock (_sync)
                {
                    if (!_open.TryGetValue(batch.ProducerId, out var ranges))
                    {
                        _open[batch.ProducerId] = ranges = [];
                    }
                    ranges.Add(new BatchRange(batch.ProducerId, partition.Index, answer.BaseOffset, answer.BaseOffset + batch.LastOffsetDelta));
                }
            }
        }
    }

    private void Ended(EndTxnRequest request, EndTxnResponse response)
    {
        if (response.ErrorCode != 0)
        {
            return;
        }
        lock (_sync)
        {
            if (_open.Remove(request.ProducerId, out var ranges))
            {
                (request.Committed ? _committed : _aborted).AddRange(ranges);
            }
        }
    }

    private byte[] Fetched(Request request, byte[] frame)
    {
        var response = Decode<FetchResponse>(frame, request);
        var changed = false;
        foreach (var topic in response.Responses)
        {
            foreach (var partition in topic.Partitions)
            {
                if (partition.Records is not { Length: > 0 } records || !TryReadBatch(records.Span, out var batch)
                    || (batch.Attributes & (TransactionalAttribute | ControlAttribute)) != TransactionalAttribute)
                {
                    continue;
                }
                bool Covers(BatchRange r) => r.ProducerId == batch.ProducerId && r.Partition == partition.PartitionIndex && r.First <= batch.BaseOffset && batch.BaseOffset <= r.Last;
                lock (_sync)
                {
                    if (_committed.Any(Covers))
                    {
                        continue;
                    }
                    changed = true;
                    if (_aborted.Any(Covers))
                    {
                        partition.AbortedTransactions = [new FetchResponse.AbortedTransaction { ProducerId = batch.ProducerId, FirstOffset = batch.BaseOffset }];
                        Interlocked.Increment(ref _abortedAnswers);
                    }
                    else
                    {
                        partition.Records = null;
                        partition.LastStableOffset = batch.BaseOffset;
                        Interlocked.Increment(ref _withheld);
                    }
                }
            }
        }
        return changed ? Encode(request, response) : frame;
    }

    private readonly record struct BatchHeader(long BaseOffset, short Attributes, int LastOffsetDelta, long ProducerId);

    // Record batch v2: baseOffset int64 @0, length int32 @8, leader epoch @12, magic @16, crc @17, attributes int16 @21,
    // lastOffsetDelta int32 @23, timestamps @27 and @35, producerId int64 @43.
    private static bool TryReadBatch(ReadOnlySpan<byte> records, out BatchHeader batch)
    {
        batch = default;
        if (records.Length < 61 || records[16] != 2)
        {
            return false;
        }
        batch = new BatchHeader(
            BinaryPrimitives.ReadInt64BigEndian(records),
            BinaryPrimitives.ReadInt16BigEndian(records[21..]),
            BinaryPrimitives.ReadInt32BigEndian(records[23..]),
            BinaryPrimitives.ReadInt64BigEndian(records[43..]));
        return true;
    }
}
