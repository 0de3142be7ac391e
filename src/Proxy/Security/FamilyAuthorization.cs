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
/// and transaction APIs. Requests routed entry by entry (partition, topic-admin and multi-group requests) are checked
/// by their routers, a denied entry being one more per-entry error; this class checks the others, and listings
/// (Metadata for all topics, ListGroups) leave out what the principal may not see.
/// </summary>
public sealed class FamilyAuthorization
{
    private const string NotAuthorized = "Not authorized.";

    private readonly FrozenDictionary<string, FrozenSet<string>> _allowed;

    private FamilyAuthorization(FrozenDictionary<string, FrozenSet<string>> allowed) => _allowed = allowed;

    /// <summary>The authorization for a configuration, or null when no family restricts its principals.</summary>
    public static FamilyAuthorization? Create(ProxyConfig config)
    {
        var allowed = config.Families
            .Where(f => f.AllowedPrincipals is { Count: > 0 })
            .ToFrozenDictionary(f => f.Name, f => f.AllowedPrincipals!.ToFrozenSet(StringComparer.Ordinal), StringComparer.Ordinal);
        return allowed.Count == 0 ? null : new FamilyAuthorization(allowed);
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
                : Answer(context, new FindCoordinatorResponse { ErrorCode = (short)error, ErrorMessage = NotAuthorized, NodeId = -1, Host = "", Port = -1 });
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
            response.Coordinators.Add(new FindCoordinatorResponse.Coordinator { Key = key, ErrorCode = (short)error, ErrorMessage = NotAuthorized, NodeId = -1, Host = "", Port = -1 });
        }
        return Task.FromResult(context.Respond(response));
    }

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

    /// <summary>
    /// A group request whose <paramref name="entriesOf"/> list names topics: entries of a family the principal may not
    /// use are answered here with <paramref name="deny"/>'s TOPIC_AUTHORIZATION_FAILED answer, and the rest of the
    /// request goes on narrowed to the allowed entries; the answers are merged into one response.
    /// </summary>
    private async ValueTask<Task<PooledFrame>?> ByTopicAsync<TRequest, TEntry, TResponse, TAnswer>(RequestContext context,
        Func<RequestContext, ValueTask<Task<PooledFrame>?>> next, Func<TRequest, List<TEntry>?> entriesOf, Func<TEntry, string> topicOf,
        Func<TEntry, ErrorCode, TAnswer> deny, Func<TResponse, List<TAnswer>> answersOf)
        where TRequest : IKafkaMessage, new()
        where TResponse : IKafkaMessage, new()
    {
        var request = context.Decode<TRequest>();
        var entries = entriesOf(request);
        bool Denied(TEntry entry) => !MayUseTopic(context, topicOf(entry));
        if (entries is null || !entries.Exists(Denied))
        {
            return await next(context).ConfigureAwait(false);
        }
        var denied = entries.Where(Denied).Select(e => deny(e, ErrorCode.TopicAuthorizationFailed)).ToList();
        entries.RemoveAll(Denied);
        if (entries.Count > 0)
        {
            var inner = await WithBodyAsync(context, request, next).ConfigureAwait(false);
            return inner is null ? null : MergeAsync(context, inner, denied, answersOf);
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
