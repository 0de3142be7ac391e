using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Records;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Tests.Faults;

/// <summary>One stored record batch: what a consumer does not show, the producer id, epoch and sequence it was written under.</summary>
public sealed record StoredBatch(int Partition, long BaseOffset, long LastOffset, long ProducerId, short ProducerEpoch, int BaseSequence);

/// <summary>Reads the record batch headers of a topic straight from a mock cluster, with plain Fetch requests to each broker.</summary>
public static class StoredBatches
{
    private const short FetchVersion = 4;

    public static async Task<List<StoredBatch>> ReadAsync(MockKafkaCluster cluster, string topic, int partitions)
    {
        var batches = new List<StoredBatch>();
        var found = new HashSet<int>();
        foreach (var address in cluster.BootstrapServers.Split(','))
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPEndPoint.Parse(address));
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            for (var partition = 0; partition < partitions; partition++)
            {
                if (found.Contains(partition))
                {
                    continue;
                }
                long offset = 0;
                while (true)
                {
                    var answer = (await FetchAsync(stream, topic, partition, offset)).Responses.Single().Partitions.Single();
                    if (answer.ErrorCode != 0)
                    {
                        break; // not this broker's partition
                    }
                    found.Add(partition);
                    var before = batches.Count;
                    if (answer.Records is { } records)
                    {
                        foreach (var entry in new RecordBatchEnumerator(records, RecordsSource.Fetch))
                        {
                            if (entry.Kind != RecordBatchKind.RecordBatch)
                            {
                                continue;
                            }
                            var header = entry.Header;
                            batches.Add(new StoredBatch(partition, header.BaseOffset, header.LastOffset, header.ProducerId, header.ProducerEpoch, header.BaseSequence));
                            offset = header.LastOffset + 1;
                        }
                    }
                    if (batches.Count == before || offset >= answer.HighWatermark)
                    {
                        break;
                    }
                }
            }
        }
        if (found.Count != partitions)
        {
            throw new InvalidOperationException($"Found leaders for {found.Count} of {partitions} partitions of {topic}.");
        }
        return batches;
    }

    private static int s_correlationId;

    private static async Task<FetchResponse> FetchAsync(Stream stream, string topic, int partition, long offset)
    {
        var request = new FetchRequest { MaxWaitMs = 0, MinBytes = 0, MaxBytes = 4 << 20 };
        request.Topics.Add(new FetchRequest.FetchTopic
        {
            Topic = topic,
            Partitions = { new FetchRequest.FetchPartition { Partition = partition, FetchOffset = offset, PartitionMaxBytes = 4 << 20 } },
        });
        var correlationId = Interlocked.Increment(ref s_correlationId);
        using (var frame = FrameCodec.EncodeRequest(ApiKey.Fetch, FetchVersion, correlationId, "stored-batches", request))
        {
            var sized = new byte[frame.Length + 4];
            BinaryPrimitives.WriteInt32BigEndian(sized, frame.Length);
            frame.Span.CopyTo(sized.AsSpan(4));
            await stream.WriteAsync(sized);
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var size = new byte[4];
        await stream.ReadExactlyAsync(size, timeout.Token);
        var body = new byte[BinaryPrimitives.ReadInt32BigEndian(size)];
        await stream.ReadExactlyAsync(body, timeout.Token);
        // Decoded from this array (after the v0 response header, the correlation id), not from a pooled frame: the
        // answer's records are slices of the bytes it was decoded from, and a pooled buffer goes back to the pool
        // here, where the proxies running in this process rent and overwrite it before the caller reads the batches.
        return FrameCodec.DecodeBody<FetchResponse>(body.AsMemory(4), FetchVersion);
    }
}
