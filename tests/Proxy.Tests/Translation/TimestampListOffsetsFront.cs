using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Tests.Translation;

/// <summary>
/// A hand-made stand-in for broker behaviour librdkafka's mock cluster lacks: the mock answers a ListOffsets by
/// timestamp with no offset (-1, "FIXME: by timestamp" in rd_kafka_mock_handle_ListOffsets, src/rdkafka_mock_handlers.c),
/// and no real broker runs here. This front stands before every broker of one mock cluster (each broker advertises the
/// front's port for it) and relays all traffic as bytes; of a ListOffsets answer it rewrites only the partitions asked by
/// timestamp (a timestamp of 0 or more) that the mock answered without error, as a broker answers them: the earliest
/// offset whose record has a timestamp at or after the one asked, with that record's timestamp and leader epoch, or
/// offset and timestamp -1 when the partition has no such record. It learns the records by reading the partition from
/// the mock with a Confluent.Kafka consumer at each such request (record timestamps as the producer set them).
/// </summary>
public sealed class TimestampListOffsetsFront : IAsyncDisposable
{
    private static readonly TimeSpan LookupTimeout = TimeSpan.FromSeconds(20);

    private readonly MockKafkaCluster _cluster;
    private readonly List<TcpListener> _listeners = [];
    private readonly ConcurrentBag<Socket> _sockets = [];
    private readonly CancellationTokenSource _stop = new();
    private int _answered;

    public TimestampListOffsetsFront(MockKafkaCluster cluster)
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

    /// <summary>Partitions this front answered by timestamp (found or not).</summary>
    public int Answered => Volatile.Read(ref _answered);

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

    private sealed record Pending(short Version, ListOffsetsRequest? ByTimestamp);

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
                    if (pending.TryDequeue(out var request) && request.ByTimestamp is { } byTimestamp)
                    {
                        frame = await AnswerByTimestampAsync(byTimestamp, request.Version, frame);
                    }
                    await WriteFrameAsync(clientStream, frame);
                }
            });
            while (await ReadFrameAsync(clientStream, _stop.Token) is { } frame)
            {
                RequestHeader.TryPeek(frame, out var apiKey, out var version, out _);
                var body = frame.AsMemory(FrameCodec.RequestBodyOffset(frame, apiKey, version, out _));
                // A Produce with acks 0 gets no answer.
                if (apiKey != ApiKey.Produce || FrameCodec.DecodeBody<ProduceRequest>(body, version).Acks != 0)
                {
                    // Version 0 answers with a list of old-style offsets, not one offset and timestamp: left to the mock.
                    var byTimestamp = apiKey == ApiKey.ListOffsets && version >= 1 ? FrameCodec.DecodeBody<ListOffsetsRequest>(body, version) : null;
                    pending.Enqueue(new Pending(version, byTimestamp?.Topics.Any(t => t.Partitions.Any(p => p.Timestamp >= 0)) == true ? byTimestamp : null));
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

    private async Task<byte[]> AnswerByTimestampAsync(ListOffsetsRequest request, short version, byte[] frame)
    {
        var reader = new KafkaReader((ReadOnlyMemory<byte>)frame);
        var header = new ResponseHeader();
        header.Read(ref reader, KafkaApis.ResponseHeaderVersion(ApiKey.ListOffsets, version));
        var response = new ListOffsetsResponse();
        response.Read(ref reader, version);
        foreach (var topic in request.Topics)
        {
            foreach (var partition in topic.Partitions.Where(p => p.Timestamp >= 0))
            {
                // An error (not the leader, unknown partition) stays as the mock gave it.
                if (response.Topics.FirstOrDefault(t => t.Name == topic.Name)?.Partitions.FirstOrDefault(p => p.PartitionIndex == partition.PartitionIndex)
                    is not { ErrorCode: 0 } answer)
                {
                    continue;
                }
                try
                {
                    var found = await Task.Run(() => FirstAtOrAfter(topic.Name, partition.PartitionIndex, partition.Timestamp));
                    answer.Offset = found?.Offset ?? -1;
                    answer.Timestamp = found?.Timestamp ?? -1;
                    answer.LeaderEpoch = found?.LeaderEpoch ?? -1;
                }
                catch (TimeoutException)
                {
                    answer.ErrorCode = (short)Switchback.Protocol.ErrorCode.RequestTimedOut;
                }
                Interlocked.Increment(ref _answered);
            }
        }
        using var encoded = FrameCodec.EncodeResponse(ApiKey.ListOffsets, version, header.CorrelationId, response);
        return encoded.Memory.ToArray();
    }

    /// <summary>The first record, in offset order, whose timestamp is at or after <paramref name="timestamp"/>; null when there is none.</summary>
    private (long Offset, long Timestamp, int LeaderEpoch)? FirstAtOrAfter(string topic, int partition, long timestamp)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = _cluster.BootstrapServers,
            GroupId = $"timestamp-front-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            FetchWaitMaxMs = 20,
            IsolationLevel = Confluent.Kafka.IsolationLevel.ReadUncommitted,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Assign(new TopicPartitionOffset(topic, partition, Offset.Beginning));
        var deadline = DateTime.UtcNow + LookupTimeout;
        while (DateTime.UtcNow < deadline && !_stop.IsCancellationRequested)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                return null;
            }
            if (result.Message.Timestamp.UnixTimestampMs >= timestamp)
            {
                return (result.Offset.Value, result.Message.Timestamp.UnixTimestampMs, result.LeaderEpoch ?? -1);
            }
        }
        throw new TimeoutException($"{topic}[{partition}] not read to a record at or after {timestamp} within {LookupTimeout}");
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
