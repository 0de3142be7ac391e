using System.Collections.Frozen;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Security;

/// <summary>
/// Per-family allow lists (<c>Families:N:AllowedPrincipals</c>). Exists only when at least one family has a list,
/// so the request path pays nothing otherwise. Every API that names a topic, group or transactional id is checked,
/// and denials are the errors a broker's authorizer gives: TOPIC_AUTHORIZATION_FAILED per topic (or partition, or
/// config resource) while the allowed topics of the same request are still served; GROUP_AUTHORIZATION_FAILED for
/// FindCoordinator and the group APIs; TRANSACTIONAL_ID_AUTHORIZATION_FAILED for transactional coordinator lookups
/// and transaction APIs. Listings (Metadata for all topics, ListGroups) leave out what the principal may not see.
/// </summary>
public sealed class FamilyAuthorization
{
    private const sbyte TopicResource = 2;
    private const sbyte GroupResource = 32;
    private const string NotAuthorized = "Not authorized.";

    private readonly FrozenDictionary<string, FrozenSet<string>> _allowed;
    private readonly ProxyState _state;

    private FamilyAuthorization(FrozenDictionary<string, FrozenSet<string>> allowed, ProxyState state)
    {
        _allowed = allowed;
        _state = state;
    }

    /// <summary>The authorization for a configuration, or null when no family restricts its principals.</summary>
    public static FamilyAuthorization? Create(ProxyConfig config, ProxyState state)
    {
        var allowed = config.Families
            .Where(f => f.AllowedPrincipals is { Count: > 0 })
            .ToFrozenDictionary(f => f.Name, f => f.AllowedPrincipals!.ToFrozenSet(StringComparer.Ordinal), StringComparer.Ordinal);
        return allowed.Count == 0 ? null : new FamilyAuthorization(allowed, state);
    }

    public bool MayUseFamily(string principal, string family) =>
        !_allowed.TryGetValue(family, out var principals) || principals.Contains(principal);

    /// <summary>
    /// Whether every allow list admits the principal: the rule for what belongs to no one family, i.e. APIs the proxy
    /// relays without interpreting them (ElectLeaders, DescribeProducers, ...: it cannot check what they name) and
    /// config resources of brokers and the cluster.
    /// </summary>
    public bool AdmittedByEveryList(string principal)
    {
        foreach (var principals in _allowed.Values)
        {
            if (!principals.Contains(principal))
            {
                return false;
            }
        }
        return true;
    }

    private bool MayUseTopic(RequestContext context, string topic) => MayUseFamily(context.Session.Principal, context.Routes.ForTopic(topic).Family);
    private bool MayUseGroup(RequestContext context, string group) => MayUseFamily(context.Session.Principal, context.Routes.ForGroup(group).Family);
    private bool MayUseTransactionalId(RequestContext context, string id) => MayUseFamily(context.Session.Principal, context.Routes.ForTransactionalId(id).Family);

    /// <summary>Checks a request; denied parts are answered here, the rest goes to <paramref name="next"/>.</summary>
    public ValueTask<Task<PooledFrame>?> DispatchAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        switch (context.ApiKey)
        {
            case ApiKey.Metadata:
                return MetadataAsync(context, next);
            case ApiKey.Produce:
                return ProduceAsync(context, next);
            case ApiKey.Fetch:
                return FetchAsync(context, next);
            case ApiKey.FindCoordinator:
                return FindCoordinatorAsync(context, next);
            case ApiKey.ListGroups:
                return ListGroupsAsync(context, next);
            case ApiKey.JoinGroup or ApiKey.SyncGroup or ApiKey.Heartbeat or ApiKey.LeaveGroup or ApiKey.ConsumerGroupHeartbeat:
                return GroupOf(context) is { } group && !MayUseGroup(context, group)
                    ? Answer(context, ErrorResponses.ForRequest(context, ErrorCode.GroupAuthorizationFailed))
                    : next(context);
            case ApiKey.OffsetCommit:
                return !MayUseGroup(context, context.Decode<OffsetCommitRequest>().GroupId)
                    ? Answer(context, ErrorResponses.ForRequest(context, ErrorCode.GroupAuthorizationFailed))
                    : ByTopicAsync(context, next, static (OffsetCommitRequest r) => r.Topics, static t => t.Name,
                        static (t, error) => new OffsetCommitResponse.OffsetCommitResponseTopic
                        {
                            Name = t.Name,
                            Partitions = [.. t.Partitions.Select(p => new OffsetCommitResponse.OffsetCommitResponsePartition { PartitionIndex = p.PartitionIndex, ErrorCode = (short)error })],
                        },
                        static (OffsetCommitResponse r) => r.Topics);
            case ApiKey.OffsetFetch when context.Version < 8:
                return !MayUseGroup(context, context.Decode<OffsetFetchRequest>().GroupId)
                    ? Answer(context, ErrorResponses.ForRequest(context, ErrorCode.GroupAuthorizationFailed))
                    : OffsetFetchAsync(context, next);
            case ApiKey.OffsetDelete:
                return !MayUseGroup(context, context.Decode<OffsetDeleteRequest>().GroupId)
                    ? Answer(context, new OffsetDeleteResponse { ErrorCode = (short)ErrorCode.GroupAuthorizationFailed })
                    : ByTopicAsync(context, next, static (OffsetDeleteRequest r) => r.Topics, static t => t.Name,
                        static (t, error) => new OffsetDeleteResponse.OffsetDeleteResponseTopic
                        {
                            Name = t.Name,
                            Partitions = [.. t.Partitions.Select(p => new OffsetDeleteResponse.OffsetDeleteResponsePartition { PartitionIndex = p.PartitionIndex, ErrorCode = (short)error })],
                        },
                        static (OffsetDeleteResponse r) => r.Topics);
            case ApiKey.InitProducerId or ApiKey.EndTxn:
                return TransactionalIdOf(context) is { } id && !MayUseTransactionalId(context, id)
                    ? Answer(context, ErrorResponses.WithoutRequest(context.ApiKey, ErrorCode.TransactionalIdAuthorizationFailed))
                    : next(context);
            case ApiKey.AddOffsetsToTxn:
                {
                    var request = context.Decode<AddOffsetsToTxnRequest>();
                    var error = TransactionOffsetsRefusal(context, request.TransactionalId, request.GroupId);
                    return error == ErrorCode.None ? next(context) : Answer(context, new AddOffsetsToTxnResponse { ErrorCode = (short)error });
                }
            case ApiKey.AddPartitionsToTxn:
                return AddPartitionsToTxn(context, next);
            case ApiKey.TxnOffsetCommit:
                {
                    var request = context.Decode<TxnOffsetCommitRequest>();
                    var error = TransactionOffsetsRefusal(context, request.TransactionalId, request.GroupId);
                    if (error != ErrorCode.None)
                    {
                        return Answer(context, new TxnOffsetCommitResponse { Topics = [.. request.Topics.Select(t => TxnOffsetCommitDenied(t, error))] });
                    }
                    return ByTopicAsync(context, next, static (TxnOffsetCommitRequest r) => r.Topics, static t => t.Name, TxnOffsetCommitDenied,
                        static (TxnOffsetCommitResponse r) => r.Topics);
                }
            case ApiKey.ListOffsets:
                return ByTopicAsync(context, next, static (ListOffsetsRequest r) => r.Topics, static t => t.Name,
                    static (t, error) => new ListOffsetsResponse.ListOffsetsTopicResponse
                    {
                        Name = t.Name,
                        Partitions = [.. t.Partitions.Select(p => new ListOffsetsResponse.ListOffsetsPartitionResponse { PartitionIndex = p.PartitionIndex, ErrorCode = (short)error, Timestamp = -1, Offset = -1, LeaderEpoch = -1 })],
                    },
                    static (ListOffsetsResponse r) => r.Topics);
            case ApiKey.OffsetForLeaderEpoch:
                return ByTopicAsync(context, next, static (OffsetForLeaderEpochRequest r) => r.Topics, static t => t.Topic,
                    static (t, error) => new OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult
                    {
                        Topic = t.Topic,
                        Partitions = [.. t.Partitions.Select(p => new OffsetForLeaderEpochResponse.EpochEndOffset { Partition = p.Partition, ErrorCode = (short)error, LeaderEpoch = -1, EndOffset = -1 })],
                    },
                    static (OffsetForLeaderEpochResponse r) => r.Topics);
            case ApiKey.DeleteRecords:
                return ByTopicAsync(context, next, static (DeleteRecordsRequest r) => r.Topics, static t => t.Name,
                    static (t, error) => new DeleteRecordsResponse.DeleteRecordsTopicResult
                    {
                        Name = t.Name,
                        Partitions = [.. t.Partitions.Select(p => new DeleteRecordsResponse.DeleteRecordsPartitionResult { PartitionIndex = p.PartitionIndex, ErrorCode = (short)error, LowWatermark = -1 })],
                    },
                    static (DeleteRecordsResponse r) => r.Topics);
            case ApiKey.CreateTopics:
                return ByTopicAsync(context, next, static (CreateTopicsRequest r) => r.Topics, static t => t.Name,
                    static (t, error) => new CreateTopicsResponse.CreatableTopicResult { Name = t.Name, ErrorCode = (short)error, ErrorMessage = NotAuthorized, NumPartitions = -1, ReplicationFactor = -1 },
                    static (CreateTopicsResponse r) => r.Topics);
            case ApiKey.CreatePartitions:
                return ByTopicAsync(context, next, static (CreatePartitionsRequest r) => r.Topics, static t => t.Name,
                    static (t, error) => new CreatePartitionsResponse.CreatePartitionsTopicResult { Name = t.Name, ErrorCode = (short)error, ErrorMessage = NotAuthorized },
                    static (CreatePartitionsResponse r) => r.Results);
            case ApiKey.DeleteTopics when context.Version < 6:
                return ByTopicAsync(context, next, static (DeleteTopicsRequest r) => r.TopicNames, static name => name,
                    static (name, error) => new DeleteTopicsResponse.DeletableTopicResult { Name = name, ErrorCode = (short)error, ErrorMessage = NotAuthorized },
                    static (DeleteTopicsResponse r) => r.Responses);
            case ApiKey.DeleteTopics:
                return ByTopicAsync(context, next, static (DeleteTopicsRequest r) => r.Topics, t => t.Name ?? _state.TopicIds.NameOf(t.TopicId, _state.KnownTopicNames()),
                    static (t, error) => new DeleteTopicsResponse.DeletableTopicResult { Name = t.Name, TopicId = t.TopicId, ErrorCode = (short)error, ErrorMessage = NotAuthorized },
                    static (DeleteTopicsResponse r) => r.Responses);
            case ApiKey.DescribeConfigs:
                return ByConfigResourceAsync(context, next, static (DescribeConfigsRequest r) => r.Resources, static r => (r.ResourceType, r.ResourceName),
                    static (r, error) => new DescribeConfigsResponse.DescribeConfigsResult { ResourceType = r.ResourceType, ResourceName = r.ResourceName, ErrorCode = (short)error, ErrorMessage = NotAuthorized },
                    static (DescribeConfigsResponse r) => r.Results);
            case ApiKey.AlterConfigs:
                return ByConfigResourceAsync(context, next, static (AlterConfigsRequest r) => r.Resources, static r => (r.ResourceType, r.ResourceName),
                    static (r, error) => new AlterConfigsResponse.AlterConfigsResourceResponse { ResourceType = r.ResourceType, ResourceName = r.ResourceName, ErrorCode = (short)error, ErrorMessage = NotAuthorized },
                    static (AlterConfigsResponse r) => r.Responses);
            case ApiKey.IncrementalAlterConfigs:
                return ByConfigResourceAsync(context, next, static (IncrementalAlterConfigsRequest r) => r.Resources, static r => (r.ResourceType, r.ResourceName),
                    static (r, error) => new IncrementalAlterConfigsResponse.AlterConfigsResourceResponse { ResourceType = r.ResourceType, ResourceName = r.ResourceName, ErrorCode = (short)error, ErrorMessage = NotAuthorized },
                    static (IncrementalAlterConfigsResponse r) => r.Responses);
            default:
                return next(context);
        }
    }

    private static ValueTask<Task<PooledFrame>?> Answer(RequestContext context, IKafkaMessage? response) =>
        ValueTask.FromResult<Task<PooledFrame>?>(Task.FromResult(context.Respond(response
            ?? throw new KafkaProtocolException($"No error answer for {context.ApiKey} v{context.Version}."))));

    private static string? GroupOf(RequestContext context) => context.ApiKey switch
    {
        ApiKey.JoinGroup => context.Decode<JoinGroupRequest>().GroupId,
        ApiKey.SyncGroup => context.Decode<SyncGroupRequest>().GroupId,
        ApiKey.Heartbeat => context.Decode<HeartbeatRequest>().GroupId,
        ApiKey.LeaveGroup => context.Decode<LeaveGroupRequest>().GroupId,
        ApiKey.ConsumerGroupHeartbeat => context.Decode<ConsumerGroupHeartbeatRequest>().GroupId,
        _ => null,
    };

    private static string? TransactionalIdOf(RequestContext context) => context.ApiKey switch
    {
        ApiKey.InitProducerId => context.Decode<InitProducerIdRequest>().TransactionalId,
        ApiKey.EndTxn => context.Decode<EndTxnRequest>().TransactionalId,
        _ => null,
    };

    private async ValueTask<Task<PooledFrame>?> MetadataAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        var request = context.Decode<MetadataRequest>();
        var allTopics = request.Topics is null || (context.Version == 0 && request.Topics.Count == 0);
        var inner = await next(context).ConfigureAwait(false);
        if (inner is null)
        {
            return null;
        }
        using var frame = await inner.ConfigureAwait(false);
        var response = FrameCodec.DecodeResponse<MetadataResponse>(frame, ApiKey.Metadata, context.Version);
        var principal = context.Session.Principal;
        for (var i = response.Topics.Count - 1; i >= 0; i--)
        {
            var topic = response.Topics[i];
            if (topic.Name is null || MayUseFamily(principal, context.Routes.ForTopic(topic.Name).Family))
            {
                continue;
            }
            if (allTopics)
            {
                // A broker leaves topics the principal may not describe out of an all-topics answer.
                response.Topics.RemoveAt(i);
            }
            else
            {
                response.Topics[i] = new MetadataResponse.MetadataResponseTopic
                {
                    ErrorCode = (short)ErrorCode.TopicAuthorizationFailed,
                    Name = topic.Name,
                    TopicId = Guid.Empty,
                    IsInternal = topic.IsInternal,
                };
            }
        }
        return Task.FromResult(context.Respond(response));
    }

    private ValueTask<Task<PooledFrame>?> FindCoordinatorAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        var request = context.Decode<FindCoordinatorRequest>();
        var (error, allowed) = request.KeyType switch
        {
            0 => (ErrorCode.GroupAuthorizationFailed, (Func<string, bool>)(key => MayUseGroup(context, key))),
            1 => (ErrorCode.TransactionalIdAuthorizationFailed, key => MayUseTransactionalId(context, key)),
            _ => (ErrorCode.None, static _ => true),
        };
        if (context.Version < 4)
        {
            return allowed(request.Key)
                ? next(context)
                : Answer(context, new FindCoordinatorResponse { ErrorCode = (short)error, ErrorMessage = "Not authorized.", NodeId = -1, Host = "", Port = -1 });
        }
        if (request.CoordinatorKeys.TrueForAll(k => allowed(k)))
        {
            return next(context);
        }
        return MergeAsync(context, next, request, allowed, error);
    }

    private async ValueTask<Task<PooledFrame>?> MergeAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next,
        FindCoordinatorRequest request, Func<string, bool> allowed, ErrorCode error)
    {
        var denied = request.CoordinatorKeys.Where(k => !allowed(k)).ToList();
        request.CoordinatorKeys.RemoveAll(k => !allowed(k));
        var response = new FindCoordinatorResponse();
        if (request.CoordinatorKeys.Count > 0)
        {
            var inner = await WithBodyAsync(context, request, next).ConfigureAwait(false);
            using var frame = await inner!.ConfigureAwait(false);
            response = FrameCodec.DecodeResponse<FindCoordinatorResponse>(frame, ApiKey.FindCoordinator, context.Version);
        }
        foreach (var key in denied)
        {
            response.Coordinators.Add(new FindCoordinatorResponse.Coordinator { Key = key, ErrorCode = (short)error, ErrorMessage = "Not authorized.", NodeId = -1, Host = "", Port = -1 });
        }
        return Task.FromResult(context.Respond(response));
    }

    private ValueTask<Task<PooledFrame>?> ProduceAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next) =>
        ByTopicAsync(context, next, static (ProduceRequest r) => r.TopicData, static t => t.Name,
            static (t, error) => new ProduceResponse.TopicProduceResponse
            {
                Name = t.Name,
                PartitionResponses = [.. t.PartitionData.Select(p => new ProduceResponse.PartitionProduceResponse { Index = p.Index, ErrorCode = (short)error, BaseOffset = -1 })],
            },
            static (ProduceResponse r) => r.Responses,
            // acks=0: the broker answers nothing, denied or not.
            answersNothing: static r => r.Acks == 0);

    private ValueTask<Task<PooledFrame>?> FetchAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next) =>
        ByTopicAsync(context, next, static (FetchRequest r) => r.Topics,
            t => context.Version >= 13 ? _state.TopicIds.NameOf(t.TopicId, _state.KnownTopicNames()) : t.Topic,
            static (t, error) => new FetchResponse.FetchableTopicResponse
            {
                Topic = t.Topic,
                TopicId = t.TopicId,
                Partitions = [.. t.Partitions.Select(p => new FetchResponse.PartitionData { PartitionIndex = p.Partition, ErrorCode = (short)error, HighWatermark = -1 })],
            },
            static (FetchResponse r) => r.Responses);

    private ValueTask<Task<PooledFrame>?> OffsetFetchAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        if (context.Decode<OffsetFetchRequest>().Topics is not null)
        {
            return ByTopicAsync(context, next, static (OffsetFetchRequest r) => r.Topics, static t => t.Name,
                static (t, error) => new OffsetFetchResponse.OffsetFetchResponseTopic
                {
                    Name = t.Name,
                    Partitions = [.. t.PartitionIndexes.Select(p => new OffsetFetchResponse.OffsetFetchResponsePartition { PartitionIndex = p, CommittedOffset = -1, ErrorCode = (short)error })],
                },
                static (OffsetFetchResponse r) => r.Topics);
        }
        // All of the group's offsets: the answer leaves out topics the principal may not see.
        return FilteredAsync<OffsetFetchResponse>(context, next, (response, principal) =>
            response.Topics.RemoveAll(t => !MayUseFamily(principal, context.Routes.ForTopic(t.Name).Family)));
    }

    private ValueTask<Task<PooledFrame>?> ListGroupsAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next) =>
        FilteredAsync<ListGroupsResponse>(context, next, (response, principal) =>
            response.Groups.RemoveAll(g => !MayUseFamily(principal, context.Routes.ForGroup(g.GroupId).Family)));

    /// <summary>
    /// AddPartitionsToTxn: clients send v0-3 (one transaction), checked as a broker does: the transactional id first,
    /// then each topic (denied ones TOPIC_AUTHORIZATION_FAILED, the rest OPERATION_NOT_ATTEMPTED; nothing is added).
    /// v4+ is the brokers' own batched form, which needs cluster rights: refused whole when any part is denied.
    /// </summary>
    private ValueTask<Task<PooledFrame>?> AddPartitionsToTxn(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        var request = context.Decode<AddPartitionsToTxnRequest>();
        if (context.Version >= 4)
        {
            var allowed = request.Transactions.TrueForAll(t => MayUseTransactionalId(context, t.TransactionalId) && t.Topics.TrueForAll(topic => MayUseTopic(context, topic.Name)));
            return allowed ? next(context) : Answer(context, new AddPartitionsToTxnResponse { ErrorCode = (short)ErrorCode.ClusterAuthorizationFailed });
        }
        var idAllowed = MayUseTransactionalId(context, request.V3AndBelowTransactionalId);
        if (idAllowed && request.V3AndBelowTopics.TrueForAll(t => MayUseTopic(context, t.Name)))
        {
            return next(context);
        }
        var response = new AddPartitionsToTxnResponse();
        foreach (var topic in request.V3AndBelowTopics)
        {
            var error = !idAllowed ? ErrorCode.TransactionalIdAuthorizationFailed
                : MayUseTopic(context, topic.Name) ? ErrorCode.OperationNotAttempted
                : ErrorCode.TopicAuthorizationFailed;
            response.ResultsByTopicV3AndBelow.Add(new AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult
            {
                Name = topic.Name,
                ResultsByPartition = [.. topic.Partitions.Select(p => new AddPartitionsToTxnResponse.AddPartitionsToTxnPartitionResult { PartitionIndex = p, PartitionErrorCode = (short)error })],
            });
        }
        return Answer(context, response);
    }

    /// <summary>Offsets committed in a transaction: the transactional id is checked first, then the group, as a broker does.</summary>
    private ErrorCode TransactionOffsetsRefusal(RequestContext context, string transactionalId, string group) =>
        !MayUseTransactionalId(context, transactionalId) ? ErrorCode.TransactionalIdAuthorizationFailed
        : !MayUseGroup(context, group) ? ErrorCode.GroupAuthorizationFailed
        : ErrorCode.None;

    private static TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic TxnOffsetCommitDenied(TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic topic, ErrorCode error) => new()
    {
        Name = topic.Name,
        Partitions = [.. topic.Partitions.Select(p => new TxnOffsetCommitResponse.TxnOffsetCommitResponsePartition { PartitionIndex = p.PartitionIndex, ErrorCode = (short)error })],
    };

    /// <summary>Entries naming topics (null: the entry names none, and goes on); a denied family's answer TOPIC_AUTHORIZATION_FAILED.</summary>
    private ValueTask<Task<PooledFrame>?> ByTopicAsync<TRequest, TEntry, TResponse, TAnswer>(RequestContext context,
        Func<RequestContext, ValueTask<Task<PooledFrame>?>> next, Func<TRequest, List<TEntry>?> entriesOf, Func<TEntry, string?> topicOf,
        Func<TEntry, ErrorCode, TAnswer> deny, Func<TResponse, List<TAnswer>> answersOf, Func<TRequest, bool>? answersNothing = null)
        where TRequest : IKafkaMessage, new()
        where TResponse : IKafkaMessage, new() =>
        ByEntryAsync(context, next, entriesOf,
            entry => topicOf(entry) is { } topic && !MayUseTopic(context, topic) ? ErrorCode.TopicAuthorizationFailed : ErrorCode.None,
            deny, answersOf, answersNothing);

    /// <summary>
    /// Config resources: a topic by its family (TOPIC_AUTHORIZATION_FAILED), a group by its family
    /// (GROUP_AUTHORIZATION_FAILED), anything else (brokers, broker loggers, cluster defaults, client metrics) only for
    /// a principal every allow list admits (CLUSTER_AUTHORIZATION_FAILED), as those are not any one family's.
    /// </summary>
    private ValueTask<Task<PooledFrame>?> ByConfigResourceAsync<TRequest, TEntry, TResponse, TAnswer>(RequestContext context,
        Func<RequestContext, ValueTask<Task<PooledFrame>?>> next, Func<TRequest, List<TEntry>?> entriesOf, Func<TEntry, (sbyte Type, string Name)> resourceOf,
        Func<TEntry, ErrorCode, TAnswer> deny, Func<TResponse, List<TAnswer>> answersOf)
        where TRequest : IKafkaMessage, new()
        where TResponse : IKafkaMessage, new() =>
        ByEntryAsync(context, next, entriesOf, entry => resourceOf(entry) switch
        {
            (TopicResource, var topic) => MayUseTopic(context, topic) ? ErrorCode.None : ErrorCode.TopicAuthorizationFailed,
            (GroupResource, var group) => MayUseGroup(context, group) ? ErrorCode.None : ErrorCode.GroupAuthorizationFailed,
            _ => AdmittedByEveryList(context.Session.Principal) ? ErrorCode.None : ErrorCode.ClusterAuthorizationFailed,
        }, deny, answersOf);

    /// <summary>
    /// A request whose <paramref name="entriesOf"/> list names topics, groups or other resources: entries
    /// <paramref name="refusal"/> refuses (an error other than NONE) are answered here with <paramref name="deny"/>'s
    /// answer carrying that error, and the rest of the request goes on narrowed to the allowed entries. The answers
    /// are merged into one response (entries are matched by name, as brokers answer them).
    /// </summary>
    private async ValueTask<Task<PooledFrame>?> ByEntryAsync<TRequest, TEntry, TResponse, TAnswer>(RequestContext context,
        Func<RequestContext, ValueTask<Task<PooledFrame>?>> next, Func<TRequest, List<TEntry>?> entriesOf, Func<TEntry, ErrorCode> refusal,
        Func<TEntry, ErrorCode, TAnswer> deny, Func<TResponse, List<TAnswer>> answersOf, Func<TRequest, bool>? answersNothing = null)
        where TRequest : IKafkaMessage, new()
        where TResponse : IKafkaMessage, new()
    {
        var request = context.Decode<TRequest>();
        var entries = entriesOf(request);
        bool Denied(TEntry entry) => refusal(entry) != ErrorCode.None;
        if (entries is null || !entries.Exists(Denied))
        {
            return await next(context).ConfigureAwait(false);
        }
        var denied = new List<TAnswer>();
        foreach (var entry in entries)
        {
            if (refusal(entry) is var error && error != ErrorCode.None)
            {
                denied.Add(deny(entry, error));
            }
        }
        entries.RemoveAll(Denied);
        if (entries.Count > 0)
        {
            var inner = await WithBodyAsync(context, request, next).ConfigureAwait(false);
            return inner is null ? null : MergeAsync(context, inner, denied, answersOf);
        }
        if (answersNothing?.Invoke(request) == true)
        {
            return null;
        }
        var response = new TResponse();
        answersOf(response).AddRange(denied);
        return Task.FromResult(context.Respond(response));
    }

    private static async Task<PooledFrame> MergeAsync<TResponse, TAnswer>(RequestContext context, Task<PooledFrame> inner, List<TAnswer> denied,
        Func<TResponse, List<TAnswer>> answersOf) where TResponse : IKafkaMessage, new()
    {
        using var frame = await inner.ConfigureAwait(false);
        var response = FrameCodec.DecodeResponse<TResponse>(frame, context.ApiKey, context.Version);
        answersOf(response).AddRange(denied);
        return context.Respond(response);
    }

    /// <summary>A listing answered by the cluster, then narrowed by <paramref name="filter"/> to what the principal may see.</summary>
    private static async ValueTask<Task<PooledFrame>?> FilteredAsync<TResponse>(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next,
        Action<TResponse, string> filter) where TResponse : IKafkaMessage, new()
    {
        var inner = await next(context).ConfigureAwait(false);
        return inner is null ? null : FilterAsync(context, inner, filter);
    }

    private static async Task<PooledFrame> FilterAsync<TResponse>(RequestContext context, Task<PooledFrame> inner, Action<TResponse, string> filter)
        where TResponse : IKafkaMessage, new()
    {
        using var frame = await inner.ConfigureAwait(false);
        var response = FrameCodec.DecodeResponse<TResponse>(frame, context.ApiKey, context.Version);
        filter(response, context.Session.Principal);
        return context.Respond(response);
    }

    /// <summary>Routes the request with a narrowed body (same header), the new frame living as long as the call that sends it.</summary>
    private static async ValueTask<Task<PooledFrame>?> WithBodyAsync(RequestContext context, IKafkaMessage body, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        using var frame = FrameCodec.EncodeRequest(context.ApiKey, context.Version, context.CorrelationId, context.Header.ClientId, body);
        var bodyOffset = FrameCodec.RequestBodyOffset(frame.Memory, context.ApiKey, context.Version, out var header);
        return await next(new RequestContext(context.Session, frame, header, bodyOffset, context.Routes)).ConfigureAwait(false);
    }
}
