using Switchback.Protocol;
using Switchback.Protocol.Messages;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// The answer a broker would give when a group or transaction coordinator cannot be reached: the request's error
/// field(s) set to a retriable code (COORDINATOR_NOT_AVAILABLE), so the client finds the coordinator again and
/// retries, while the connection (and every other family on it) stays up.
/// </summary>
public static class ErrorResponses
{
    /// <summary>An error answer built from the response shape alone (no need for the request body), or null.</summary>
    public static IKafkaMessage? WithoutRequest(ApiKey apiKey, ErrorCode error) => apiKey switch
    {
        ApiKey.JoinGroup => new JoinGroupResponse { ErrorCode = (short)error, GenerationId = -1, ProtocolName = "", Leader = "", MemberId = "" },
        ApiKey.SyncGroup => new SyncGroupResponse { ErrorCode = (short)error },
        ApiKey.Heartbeat => new HeartbeatResponse { ErrorCode = (short)error },
        ApiKey.LeaveGroup => new LeaveGroupResponse { ErrorCode = (short)error },
        ApiKey.ConsumerGroupHeartbeat => new ConsumerGroupHeartbeatResponse { ErrorCode = (short)error, ErrorMessage = "coordinator unreachable", MemberEpoch = -1 },
        ApiKey.InitProducerId => new InitProducerIdResponse { ErrorCode = (short)error, ProducerId = -1, ProducerEpoch = -1 },
        ApiKey.AddOffsetsToTxn => new AddOffsetsToTxnResponse { ErrorCode = (short)error },
        ApiKey.EndTxn => new EndTxnResponse { ErrorCode = (short)error },
        _ => null,
    };

    /// <summary>An error answer that echoes the request's topics and partitions (offset commit and fetch), or the shape-only one.</summary>
    public static IKafkaMessage? ForRequest(RequestContext context, ErrorCode error)
    {
        switch (context.ApiKey)
        {
            case ApiKey.OffsetCommit:
                {
                    var request = context.Decode<OffsetCommitRequest>();
                    var response = new OffsetCommitResponse();
                    foreach (var topic in request.Topics)
                    {
                        var answered = new OffsetCommitResponse.OffsetCommitResponseTopic { Name = topic.Name };
                        foreach (var partition in topic.Partitions)
                        {
                            answered.Partitions.Add(new OffsetCommitResponse.OffsetCommitResponsePartition { PartitionIndex = partition.PartitionIndex, ErrorCode = (short)error });
                        }
                        response.Topics.Add(answered);
                    }
                    return response;
                }
            case ApiKey.OffsetFetch when context.Version < 8:
                {
                    var request = context.Decode<OffsetFetchRequest>();
                    var response = new OffsetFetchResponse { ErrorCode = (short)error };
                    foreach (var topic in request.Topics ?? [])
                    {
                        var answered = new OffsetFetchResponse.OffsetFetchResponseTopic { Name = topic.Name };
                        foreach (var partition in topic.PartitionIndexes)
                        {
                            answered.Partitions.Add(new OffsetFetchResponse.OffsetFetchResponsePartition { PartitionIndex = partition, CommittedOffset = -1, ErrorCode = (short)error });
                        }
                        response.Topics.Add(answered);
                    }
                    return response;
                }
            default:
                return WithoutRequest(context.ApiKey, error);
        }
    }
}
