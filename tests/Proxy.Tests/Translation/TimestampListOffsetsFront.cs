using Confluent.Kafka;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Fronts;
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
public sealed class TimestampListOffsetsFront(MockKafkaCluster cluster) : KafkaFront(cluster)
{
    private static readonly TimeSpan LookupTimeout = TimeSpan.FromSeconds(20);

    private readonly MockKafkaCluster _cluster = cluster;
    private int _answered;

    /// <summary>Partitions this front answered by timestamp (found or not).</summary>
    public int Answered => Volatile.Read(ref _answered);

    protected override async ValueTask<byte[]> RewriteAnswerAsync(Request request, byte[] answer)
    {
        // Version 0 answers with a list of old-style offsets, not one offset and timestamp: left to the mock.
        if (request.ApiKey != ApiKey.ListOffsets || request.Version < 1)
        {
            return answer;
        }
        var byTimestamp = FrameCodec.DecodeBody<ListOffsetsRequest>(request.Body, request.Version);
        return byTimestamp.Topics.Any(t => t.Partitions.Any(p => p.Timestamp >= 0)) ? await AnswerByTimestampAsync(byTimestamp, request, answer) : answer;
    }

    private async Task<byte[]> AnswerByTimestampAsync(ListOffsetsRequest byTimestamp, Request request, byte[] frame)
    {
        var response = Decode<ListOffsetsResponse>(frame, request);
        foreach (var topic in byTimestamp.Topics)
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
        return Encode(request, response);
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
        while (DateTime.UtcNow < deadline && !Stopping.IsCancellationRequested)
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
}
