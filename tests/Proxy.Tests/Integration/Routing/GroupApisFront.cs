using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Threading.Channels;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Fronts;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>One partition of an OffsetDelete a front's broker received, and the error it answered the group with.</summary>
public sealed record OffsetDeleteReceipt(string Group, string Topic, int Partition, int Broker, ErrorCode Error);

/// <summary>
/// librdkafka's mock cluster has none of the APIs that name several groups (DescribeGroups, DeleteGroups,
/// ConsumerGroupDescribe; OffsetFetch only up to v6, one group), nor ListGroups or OffsetDelete, and no real broker
/// runs here (no Docker). This
/// front stands before every broker of one mock cluster (each broker advertises the front's port for it), relays
/// all traffic as bytes, and answers those APIs itself the way that broker would: only for the groups the mock
/// makes it coordinator of (NOT_COORDINATOR otherwise, asked with the mock's own FindCoordinator), with the members
/// the mock's coordinator admitted (its JoinGroup, SyncGroup, LeaveGroup and ConsumerGroupHeartbeat answers, seen on
/// the way), and OffsetFetch v8 from the offsets the mock holds (asked per group with v6). ListGroups lists the groups
/// seen that the broker coordinates; OffsetDelete is recorded and answered without touching the mock's offsets. It
/// answers the topic-admin and config APIs the mock lacks as well (see GroupApisFront.TopicAdmin.cs), and writes the
/// offsets of committed transactions to their groups, which the mock never does (see GroupApisFront.Transactions.cs).
/// </summary>
public sealed partial class GroupApisFront(MockKafkaCluster cluster) : KafkaFront(cluster)
{
    private const ErrorCode NonEmptyGroup = (ErrorCode)68;
    private const ErrorCode GroupIdNotFound = (ErrorCode)69;

    private readonly MockKafkaCluster _cluster = cluster;
    private readonly ConcurrentDictionary<string, GroupState> _groups = new(StringComparer.Ordinal);

    /// <summary>Groups this cluster deleted, in the order it deleted them.</summary>
    public ConcurrentQueue<string> Deleted { get; } = new();

    /// <summary>Group requests (api key, group) this cluster's coordinators answered, for asserting where requests went.</summary>
    public ConcurrentQueue<(ApiKey ApiKey, string Group, int Broker)> Answered { get; } = new();

    /// <summary>Every partition of an OffsetDelete this cluster's brokers received, with the error the group was answered.</summary>
    public ConcurrentQueue<OffsetDeleteReceipt> OffsetDeletes { get; } = new();

    private volatile RequestHold? _hold;

    /// <summary>
    /// From now on, requests of <paramref name="apiKey"/> wait in the front before they reach the mock (later requests
    /// on their connection wait behind them), as at a broker that has read them and is slow to carry them out: they
    /// still reach the mock when their client hangs up meanwhile, as a broker still carries out what it has read.
    /// </summary>
    public RequestHold HoldRequests(ApiKey apiKey) => _hold = new RequestHold(apiKey);

    /// <summary>Requests of one API held in a <see cref="GroupApisFront"/> until <see cref="Release"/>.</summary>
    public sealed class RequestHold(ApiKey apiKey)
    {
        private readonly TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ApiKey ApiKey { get; } = apiKey;

        /// <summary>Completes when the first request is held.</summary>
        public Task Arrived => _arrived.Task;

        /// <summary>Lets the held requests, and any later ones, through.</summary>
        public void Release() => _released.TrySetResult();

        internal Task WaitAsync()
        {
            _arrived.TrySetResult();
            return _released.Task;
        }
    }

    /// <summary>Refuses new connections and drops open ones, as a cluster that went away.</summary>
    public void Stop() => StopServing();

    private sealed class GroupState
    {
        public string ProtocolType { get; set; } = "";
        public string Protocol { get; set; } = "";
        public string State { get; set; } = "Empty";
        public bool Kip848 { get; set; }
        public int Epoch { get; set; }
        public int Generation { get; set; } = -1;
        public Dictionary<string, Member> Members { get; } = new(StringComparer.Ordinal);
    }

    private sealed class Member(string memberId, string clientId)
    {
        public string MemberId { get; } = memberId;
        public string ClientId { get; set; } = clientId;
        public byte[] Metadata { get; set; } = [];
        public byte[] Assignment { get; set; } = [];
        public int Epoch { get; set; }
        public List<string> Topics { get; set; } = [];
    }

    /// <summary>Relays as <see cref="KafkaFront"/> does, but answers the APIs the mock lacks itself (in request order with the mock's answers) and holds requests while asked to.</summary>
    protected override async Task RelayAsync(Connection connection)
    {
        var ordered = Channel.CreateUnbounded<Task<byte[]>>();
        var awaiting = new ConcurrentQueue<(TaskCompletionSource<byte[]> Answer, Request Request)>();
        try
        {
            await connection.Upstream.ConnectAsync(connection.UpstreamEndPoint, Stopping);
            await using var clientStream = new NetworkStream(connection.Client, ownsSocket: true);
            await using var mockStream = new NetworkStream(connection.Upstream, ownsSocket: true);
            var writer = Task.Run(async () =>
            {
                // Answers leave in request order, whether the mock or this front gave them.
                await foreach (var answer in ordered.Reader.ReadAllAsync())
                {
                    await WriteFrameAsync(clientStream, await answer);
                }
            });
            var mockReader = Task.Run(async () =>
            {
                while (await ReadFrameAsync(mockStream, Stopping) is { } frame)
                {
                    if (awaiting.TryDequeue(out var next))
                    {
                        next.Answer.TrySetResult(await RewriteAnswerAsync(next.Request, frame));
                    }
                }
                while (awaiting.TryDequeue(out var orphan))
                {
                    orphan.Answer.TrySetException(new IOException("mock broker closed"));
                }
            });
            while (await ReadFrameAsync(clientStream, Stopping) is { } frame)
            {
                var request = Request.Parse(frame);
                if (request.ApiKey is ApiKey.DescribeGroups or ApiKey.DeleteGroups or ApiKey.ConsumerGroupDescribe
                    or ApiKey.ListGroups or ApiKey.OffsetDelete || (request.ApiKey == ApiKey.OffsetFetch && request.Version >= 8) || IsTopicAdmin(request.ApiKey))
                {
                    ordered.Writer.TryWrite(AnswerAsync(request, connection.BrokerId));
                    continue;
                }
                if (request.ApiKey == ApiKey.TxnOffsetCommit && RefusedTxnOffsetCommit(request) is { } refused)
                {
                    ordered.Writer.TryWrite(Task.FromResult(refused));
                    continue;
                }
                if (request.ExpectsAnswer)
                {
                    var answer = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
                    awaiting.Enqueue((answer, request));
                    ordered.Writer.TryWrite(answer.Task);
                }
                if (_hold is { } hold && hold.ApiKey == request.ApiKey)
                {
                    await hold.WaitAsync().WaitAsync(Stopping);
                }
                await WriteFrameAsync(mockStream, frame);
            }
            ordered.Writer.TryComplete();
            await Task.WhenAny(writer, mockReader);
        }
        finally
        {
            ordered.Writer.TryComplete();
        }
    }

    /// <summary>
    /// The mock's answer, as relayed; group answers update what this front knows of the group. A committed EndTxn is
    /// held until the transaction's offsets are written, as a broker's are before its consumers can fetch them.
    /// </summary>
    protected override async ValueTask<byte[]> RewriteAnswerAsync(Request request, byte[] frame) =>
        request.ApiKey == ApiKey.EndTxn ? await TransactionEndedAsync(request, frame) : Observe(request, frame);

    private byte[] Observe(Request request, byte[] frame)
    {
        try
        {
            switch (request.ApiKey)
            {
                case ApiKey.ApiVersions:
                    return WithFrontApis(request, frame);
                case ApiKey.JoinGroup:
                    Joined(request, Decode<JoinGroupResponse>(frame, request));
                    break;
                case ApiKey.SyncGroup:
                    Synced(request, Decode<SyncGroupResponse>(frame, request));
                    break;
                case ApiKey.LeaveGroup:
                    Left(request, Decode<LeaveGroupResponse>(frame, request));
                    break;
                case ApiKey.ConsumerGroupHeartbeat:
                    Heartbeat(request, Decode<ConsumerGroupHeartbeatResponse>(frame, request));
                    break;
                case ApiKey.TxnOffsetCommit:
                    OffsetsSentToTransaction(request, Decode<TxnOffsetCommitResponse>(frame, request));
                    break;
                case ApiKey.InitProducerId:
                    ProducerInitialized(request, Decode<InitProducerIdResponse>(frame, request));
                    break;
            }
        }
        catch (KafkaProtocolException)
        {
            // Relayed as is (e.g. the mock's malformed ApiVersions v3+ reply, which clients retry with v0).
        }
        return frame;
    }

    private static byte[] WithFrontApis(Request request, byte[] frame)
    {
        var response = Decode<ApiVersionsResponse>(frame, request);
        if (response.ErrorCode != 0)
        {
            return frame;
        }
        response.ApiKeys.RemoveAll(a => a.ApiKeyValue is (short)ApiKey.DescribeGroups or (short)ApiKey.DeleteGroups or (short)ApiKey.ConsumerGroupDescribe
            or (short)ApiKey.ListGroups or (short)ApiKey.OffsetDelete);
        response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion { ApiKeyValue = (short)ApiKey.DescribeGroups, MinVersion = 0, MaxVersion = 5 });
        response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion { ApiKeyValue = (short)ApiKey.DeleteGroups, MinVersion = 0, MaxVersion = 2 });
        response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion { ApiKeyValue = (short)ApiKey.ConsumerGroupDescribe, MinVersion = 0, MaxVersion = 0 });
        response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion { ApiKeyValue = (short)ApiKey.ListGroups, MinVersion = 0, MaxVersion = 5 });
        response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion { ApiKeyValue = (short)ApiKey.OffsetDelete, MinVersion = 0, MaxVersion = 0 });
        response.ApiKeys.Single(a => a.ApiKeyValue == (short)ApiKey.OffsetFetch).MaxVersion = 8;
        AddTopicAdminApis(response);
        return Encode(request, response);
    }

    private GroupState Group(string group) => _groups.GetOrAdd(group, _ => new GroupState());

    private void Joined(Request request, JoinGroupResponse response)
    {
        if (response.ErrorCode != 0)
        {
            return;
        }
        var join = FrameCodec.DecodeBody<JoinGroupRequest>(request.Body, request.Version);
        var group = Group(join.GroupId);
        lock (group)
        {
            group.ProtocolType = join.ProtocolType;
            group.Protocol = response.ProtocolName ?? "";
            group.Generation = response.GenerationId;
            group.State = "CompletingRebalance";
            if (!group.Members.TryGetValue(response.MemberId, out var member))
            {
                group.Members[response.MemberId] = member = new Member(response.MemberId, request.ClientId ?? "");
            }
            member.ClientId = request.ClientId ?? "";
            member.Metadata = join.Protocols.FirstOrDefault(p => p.Name == response.ProtocolName)?.Metadata.ToArray() ?? [];
            if (response.Members.Count > 0)
            {
                // The leader learns the generation's members: whoever is not among them has gone.
                var current = response.Members.Select(m => m.MemberId).ToHashSet(StringComparer.Ordinal);
                foreach (var gone in group.Members.Keys.Where(id => !current.Contains(id)).ToList())
                {
                    group.Members.Remove(gone);
                }
            }
        }
    }

    private void Synced(Request request, SyncGroupResponse response)
    {
        if (response.ErrorCode != 0)
        {
            return;
        }
        var sync = FrameCodec.DecodeBody<SyncGroupRequest>(request.Body, request.Version);
        var group = Group(sync.GroupId);
        lock (group)
        {
            group.State = "Stable";
            if (group.Members.TryGetValue(sync.MemberId, out var member))
            {
                member.Assignment = response.Assignment.ToArray();
            }
        }
    }

    private void Left(Request request, LeaveGroupResponse response)
    {
        if (response.ErrorCode != 0)
        {
            return;
        }
        var leave = FrameCodec.DecodeBody<LeaveGroupRequest>(request.Body, request.Version);
        var group = Group(leave.GroupId);
        lock (group)
        {
            foreach (var memberId in request.Version < 3 ? [leave.MemberId] : leave.Members.Select(m => m.MemberId))
            {
                group.Members.Remove(memberId);
            }
            if (group.Members.Count == 0)
            {
                group.State = "Empty";
            }
        }
    }

    private void Heartbeat(Request request, ConsumerGroupHeartbeatResponse response)
    {
        if (response.ErrorCode != 0 || response.MemberId is null)
        {
            return;
        }
        var heartbeat = FrameCodec.DecodeBody<ConsumerGroupHeartbeatRequest>(request.Body, request.Version);
        var group = Group(heartbeat.GroupId);
        lock (group)
        {
            group.Kip848 = true;
            group.ProtocolType = "consumer";
            if (heartbeat.MemberEpoch < 0)
            {
                group.Members.Remove(response.MemberId);
            }
            else
            {
                if (!group.Members.TryGetValue(response.MemberId, out var member))
                {
                    group.Members[response.MemberId] = member = new Member(response.MemberId, request.ClientId ?? "");
                }
                member.Epoch = response.MemberEpoch;
                if (heartbeat.SubscribedTopicNames is { } topics)
                {
                    member.Topics = topics;
                }
                group.Epoch = Math.Max(group.Epoch, response.MemberEpoch);
            }
            group.State = group.Members.Count == 0 ? "Empty" : "Stable";
        }
    }

    private async Task<byte[]> AnswerAsync(Request request, int brokerId)
    {
        if (IsTopicAdmin(request.ApiKey))
        {
            return await AnswerTopicAdminAsync(request, brokerId);
        }
        switch (request.ApiKey)
        {
            case ApiKey.DescribeGroups:
                {
                    var describe = FrameCodec.DecodeBody<DescribeGroupsRequest>(request.Body, request.Version);
                    var response = new DescribeGroupsResponse();
                    foreach (var id in describe.Groups)
                    {
                        response.Groups.Add(await CoordinatesAsync(request, id, brokerId) ? Describe(id) : new DescribeGroupsResponse.DescribedGroup
                        {
                            GroupId = id,
                            ErrorCode = (short)ErrorCode.NotCoordinator,
                            GroupState = "",
                            ProtocolType = "",
                            ProtocolData = "",
                        });
                    }
                    return Encode(request, response);
                }
            case ApiKey.DeleteGroups:
                {
                    var delete = FrameCodec.DecodeBody<DeleteGroupsRequest>(request.Body, request.Version);
                    var response = new DeleteGroupsResponse();
                    foreach (var id in delete.GroupsNames)
                    {
                        response.Results.Add(new DeleteGroupsResponse.DeletableGroupResult
                        {
                            GroupId = id,
                            ErrorCode = (short)(await CoordinatesAsync(request, id, brokerId) ? Delete(id) : ErrorCode.NotCoordinator),
                        });
                    }
                    // A broker answers from a map: not necessarily in request order.
                    response.Results.Reverse();
                    return Encode(request, response);
                }
            case ApiKey.ConsumerGroupDescribe:
                {
                    var describe = FrameCodec.DecodeBody<ConsumerGroupDescribeRequest>(request.Body, request.Version);
                    var response = new ConsumerGroupDescribeResponse();
                    foreach (var id in describe.GroupIds)
                    {
                        response.Groups.Add(await CoordinatesAsync(request, id, brokerId) ? DescribeConsumerGroup(id) : new ConsumerGroupDescribeResponse.DescribedGroup
                        {
                            GroupId = id,
                            ErrorCode = (short)ErrorCode.NotCoordinator,
                            GroupState = "",
                            AssignorName = "",
                        });
                    }
                    return Encode(request, response);
                }
            case ApiKey.ListGroups:
                return Encode(request, await ListGroupsAsync(FrameCodec.DecodeBody<ListGroupsRequest>(request.Body, request.Version), brokerId));
            case ApiKey.OffsetDelete:
                {
                    var delete = FrameCodec.DecodeBody<OffsetDeleteRequest>(request.Body, request.Version);
                    var error = !await CoordinatesAsync(request, delete.GroupId, brokerId) ? ErrorCode.NotCoordinator
                        : _groups.ContainsKey(delete.GroupId) ? ErrorCode.None
                        : GroupIdNotFound;
                    var response = new OffsetDeleteResponse { ErrorCode = (short)error };
                    foreach (var topic in delete.Topics)
                    {
                        var answered = new OffsetDeleteResponse.OffsetDeleteResponseTopic { Name = topic.Name };
                        foreach (var partition in topic.Partitions)
                        {
                            OffsetDeletes.Enqueue(new OffsetDeleteReceipt(delete.GroupId, topic.Name, partition.PartitionIndex, brokerId, error));
                            answered.Partitions.Add(new OffsetDeleteResponse.OffsetDeleteResponsePartition { PartitionIndex = partition.PartitionIndex });
                        }
                        if (error == ErrorCode.None)
                        {
                            response.Topics.Add(answered);
                        }
                    }
                    return Encode(request, response);
                }
            default:
                {
                    var fetch = FrameCodec.DecodeBody<OffsetFetchRequest>(request.Body, request.Version);
                    var response = new OffsetFetchResponse();
                    foreach (var group in fetch.Groups)
                    {
                        response.Groups.Add(await CoordinatesAsync(request, group.GroupId, brokerId)
                            ? await FetchOffsetsAsync(group, fetch.RequireStable, brokerId)
                            : new OffsetFetchResponse.OffsetFetchResponseGroup { GroupId = group.GroupId, ErrorCode = (short)ErrorCode.NotCoordinator });
                    }
                    return Encode(request, response);
                }
        }
    }

    private async Task<bool> CoordinatesAsync(Request request, string group, int brokerId)
    {
        if (!await IsCoordinatorAsync(group, brokerId))
        {
            return false;
        }
        Answered.Enqueue((request.ApiKey, group, brokerId));
        return true;
    }

    private async Task<bool> IsCoordinatorAsync(string group, int brokerId)
    {
        var coordinator = await ExchangeAsync<FindCoordinatorResponse>(_cluster.BrokerIds[0], ApiKey.FindCoordinator, 1,
            new FindCoordinatorRequest { Key = group, KeyType = 0 });
        return coordinator.ErrorCode == 0 && coordinator.NodeId == brokerId;
    }

    /// <summary>The groups seen that this broker coordinates, narrowed by the request's state and type filters as a broker does.</summary>
    private async Task<ListGroupsResponse> ListGroupsAsync(ListGroupsRequest request, int brokerId)
    {
        var response = new ListGroupsResponse();
        foreach (var (id, group) in _groups)
        {
            if (!await IsCoordinatorAsync(id, brokerId))
            {
                continue;
            }
            ListGroupsResponse.ListedGroup listed;
            lock (group)
            {
                listed = new ListGroupsResponse.ListedGroup
                {
                    GroupId = id,
                    ProtocolType = group.ProtocolType,
                    GroupState = group.State,
                    GroupType = group.Kip848 ? "consumer" : "classic",
                };
            }
            if ((request.StatesFilter.Count == 0 || request.StatesFilter.Contains(listed.GroupState, StringComparer.OrdinalIgnoreCase))
                && (request.TypesFilter.Count == 0 || request.TypesFilter.Contains(listed.GroupType, StringComparer.OrdinalIgnoreCase)))
            {
                response.Groups.Add(listed);
            }
        }
        return response;
    }

    private DescribeGroupsResponse.DescribedGroup Describe(string id)
    {
        if (!_groups.TryGetValue(id, out var group))
        {
            return new DescribeGroupsResponse.DescribedGroup { GroupId = id, GroupState = "Dead", ProtocolType = "", ProtocolData = "" };
        }
        lock (group)
        {
            var described = new DescribeGroupsResponse.DescribedGroup
            {
                GroupId = id,
                GroupState = group.State,
                ProtocolType = group.ProtocolType,
                ProtocolData = group.Protocol,
            };
            foreach (var member in group.Members.Values)
            {
                described.Members.Add(new DescribeGroupsResponse.DescribedGroupMember
                {
                    MemberId = member.MemberId,
                    ClientId = member.ClientId,
                    ClientHost = "/127.0.0.1",
                    MemberMetadata = member.Metadata,
                    MemberAssignment = member.Assignment,
                });
            }
            return described;
        }
    }

    private ConsumerGroupDescribeResponse.DescribedGroup DescribeConsumerGroup(string id)
    {
        if (!_groups.TryGetValue(id, out var group) || !group.Kip848)
        {
            return new ConsumerGroupDescribeResponse.DescribedGroup
            {
                GroupId = id,
                ErrorCode = (short)GroupIdNotFound,
                ErrorMessage = $"Group {id} not found.",
                GroupState = "",
                AssignorName = "",
            };
        }
        lock (group)
        {
            var described = new ConsumerGroupDescribeResponse.DescribedGroup
            {
                GroupId = id,
                GroupState = group.State,
                GroupEpoch = group.Epoch,
                AssignmentEpoch = group.Epoch,
                AssignorName = "uniform",
            };
            foreach (var member in group.Members.Values)
            {
                described.Members.Add(new ConsumerGroupDescribeResponse.Member
                {
                    MemberId = member.MemberId,
                    MemberEpoch = member.Epoch,
                    ClientId = member.ClientId,
                    ClientHost = "/127.0.0.1",
                    SubscribedTopicNames = member.Topics,
                });
            }
            return described;
        }
    }

    private ErrorCode Delete(string id)
    {
        if (!_groups.TryGetValue(id, out var group))
        {
            return GroupIdNotFound;
        }
        lock (group)
        {
            if (group.Members.Count > 0)
            {
                return NonEmptyGroup;
            }
            _groups.TryRemove(id, out _);
            Deleted.Enqueue(id);
            return ErrorCode.None;
        }
    }

    /// <summary>
    /// The group's offsets as the mock holds them; asked for stable offsets, partitions that a transaction still has
    /// offsets pending for answer UNSTABLE_OFFSET_COMMIT, as a broker's do (the client asks again).
    /// </summary>
    private async Task<OffsetFetchResponse.OffsetFetchResponseGroup> FetchOffsetsAsync(OffsetFetchRequest.OffsetFetchRequestGroup group, bool requireStable, int brokerId)
    {
        var unstable = requireStable ? PendingTransactionalOffsets(group.GroupId) : [];
        var single = new OffsetFetchRequest
        {
            GroupId = group.GroupId,
            Topics = group.Topics?.ConvertAll(t => new OffsetFetchRequest.OffsetFetchRequestTopic { Name = t.Name, PartitionIndexes = t.PartitionIndexes }),
        };
        var answer = await ExchangeAsync<OffsetFetchResponse>(brokerId, ApiKey.OffsetFetch, 6, single);
        var fetched = new OffsetFetchResponse.OffsetFetchResponseGroup { GroupId = group.GroupId, ErrorCode = answer.ErrorCode };
        foreach (var topic in answer.Topics)
        {
            var topics = new OffsetFetchResponse.OffsetFetchResponseTopics { Name = topic.Name };
            foreach (var partition in topic.Partitions)
            {
                var pending = partition.ErrorCode == 0 && unstable.Contains((topic.Name, partition.PartitionIndex));
                topics.Partitions.Add(new OffsetFetchResponse.OffsetFetchResponsePartitions
                {
                    PartitionIndex = partition.PartitionIndex,
                    CommittedOffset = pending ? -1 : partition.CommittedOffset,
                    CommittedLeaderEpoch = pending ? -1 : partition.CommittedLeaderEpoch,
                    Metadata = pending ? "" : partition.Metadata,
                    ErrorCode = pending ? (short)UnstableOffsetCommit : partition.ErrorCode,
                });
            }
            fetched.Topics.Add(topics);
        }
        return fetched;
    }

    /// <summary>One request straight to a mock broker on a connection of its own.</summary>
    private async Task<T> ExchangeAsync<T>(int brokerId, ApiKey apiKey, short version, IKafkaMessage body) where T : IKafkaMessage, new()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(_cluster.GetBrokerListener(brokerId), Stopping);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using (var frame = FrameCodec.EncodeRequest(apiKey, version, 1, "group-apis-front", body))
        {
            await WriteFrameAsync(stream, frame.Memory.ToArray());
        }
        var response = await ReadFrameAsync(stream, Stopping) ?? throw new IOException($"Mock broker {brokerId} closed before answering {apiKey}.");
        return Decode<T>(response, apiKey, version);
    }
}
