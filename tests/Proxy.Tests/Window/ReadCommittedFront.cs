using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
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
public sealed class ReadCommittedFront : IAsyncDisposable
{
    private const short TransactionalAttribute = 0x10;
    private const short ControlAttribute = 0x20;

    private readonly MockKafkaCluster _cluster;
    private readonly List<TcpListener> _listeners = [];
    private readonly ConcurrentBag<Socket> _sockets = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _sync = new();
    // Batches of transactions not yet ended, per producer id.
    private readonly Dictionary<long, List<BatchRange>> _open = [];
    private readonly List<BatchRange> _committed = [];
    private readonly List<BatchRange> _aborted = [];

    public ReadCommittedFront(MockKafkaCluster cluster)
    {
        _cluster = cluster;
        var addresses = new List<string>();
        foreach (var brokerId in cluster.BrokerIds)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            _listeners.Add(listener);
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            cluster.SetBrokerAdvertisedAddress(brokerId, "127.0.0.1", port);
            addresses.Add($"127.0.0.1:{port}");
            _ = AcceptLoopAsync(listener, brokerId);
        }
        BootstrapServers = string.Join(',', addresses);
    }

    public string BootstrapServers { get; }

    /// <summary>Batches withheld from a Fetch answer because their transaction was still open (or not yet known to have ended).</summary>
    public int Withheld => Volatile.Read(ref _withheld);

    /// <summary>Batches answered as aborted.</summary>
    public int AbortedAnswers => Volatile.Read(ref _abortedAnswers);

    private int _withheld;
    private int _abortedAnswers;

    public ValueTask DisposeAsync()
    {
        _stop.Cancel();
        foreach (var listener in _listeners)
        {
            listener.Stop();
        }
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }
        _stop.Dispose();
        return ValueTask.CompletedTask;
    }

    private sealed record BatchRange(long ProducerId, int Partition, long First, long Last);

    private sealed record Pending(ApiKey ApiKey, short Version, object? Request);

    private async Task AcceptLoopAsync(TcpListener listener, int brokerId)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = ServeAsync(client, brokerId);
        }
    }

    private async Task ServeAsync(Socket client, int brokerId)
    {
        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(client);
        _sockets.Add(upstream);
        // A broker answers a connection's requests in order, so answers pair with this queue's head.
        var pending = new ConcurrentQueue<Pending>();
        try
        {
            await upstream.ConnectAsync(_cluster.GetBrokerListener(brokerId), _stop.Token);
            await using var clientStream = new NetworkStream(client, ownsSocket: true);
            await using var mockStream = new NetworkStream(upstream, ownsSocket: true);
            var answers = Task.Run(async () =>
            {
                while (await ReadFrameAsync(mockStream, _stop.Token) is { } frame)
                {
                    if (pending.TryDequeue(out var request))
                    {
                        frame = Observe(request, frame);
                    }
                    await WriteFrameAsync(clientStream, frame);
                }
            });
            while (await ReadFrameAsync(clientStream, _stop.Token) is { } frame)
            {
                RequestHeader.TryPeek(frame, out var apiKey, out var version, out _);
                var body = frame.AsMemory(FrameCodec.RequestBodyOffset(frame, apiKey, version, out _));
                object? request = apiKey switch
                {
                    ApiKey.Produce => FrameCodec.DecodeBody<ProduceRequest>(body, version),
                    ApiKey.EndTxn => FrameCodec.DecodeBody<EndTxnRequest>(body, version),
                    _ => null,
                };
                if (request is not ProduceRequest { Acks: 0 })
                {
                    pending.Enqueue(new Pending(apiKey, version, request));
                }
                await WriteFrameAsync(mockStream, frame);
            }
            await answers;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            client.Dispose();
            upstream.Dispose();
        }
    }

    private byte[] Observe(Pending request, byte[] frame)
    {
        try
        {
            switch (request.ApiKey)
            {
                case ApiKey.Produce:
                    Produced((ProduceRequest)request.Request!, Decode<ProduceResponse>(frame, request));
                    break;
                case ApiKey.EndTxn:
                    Ended((EndTxnRequest)request.Request!, Decode<EndTxnResponse>(frame, request));
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

    private byte[] Fetched(Pending request, byte[] frame)
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
        if (!changed)
        {
            return frame;
        }
        var correlationId = BinaryPrimitives.ReadInt32BigEndian(frame);
        using var encoded = FrameCodec.EncodeResponse(request.ApiKey, request.Version, correlationId, response);
        return encoded.Memory.ToArray();
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

    private static T Decode<T>(byte[] frame, Pending request) where T : IKafkaMessage, new()
    {
        var reader = new KafkaReader((ReadOnlyMemory<byte>)frame);
        var header = new ResponseHeader();
        header.Read(ref reader, KafkaApis.ResponseHeaderVersion(request.ApiKey, request.Version));
        var message = new T();
        message.Read(ref reader, request.Version);
        return message;
    }

    private static async Task WriteFrameAsync(Stream stream, byte[] frame)
    {
        var sized = new byte[frame.Length + 4];
        BinaryPrimitives.WriteInt32BigEndian(sized, frame.Length);
        frame.CopyTo(sized, 4);
        await stream.WriteAsync(sized);
    }

    private static async Task<byte[]?> ReadFrameAsync(Stream stream, CancellationToken cancellationToken)
    {
        var size = new byte[4];
        try
        {
            await stream.ReadExactlyAsync(size, cancellationToken);
            var frame = new byte[BinaryPrimitives.ReadInt32BigEndian(size)];
            await stream.ReadExactlyAsync(frame, cancellationToken);
            return frame;
        }
        catch (EndOfStreamException)
        {
            return null;
        }
    }
}
