using System.Collections.Frozen;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Security;

/// <summary>
/// Per-family allow lists (<c>Families:N:AllowedPrincipals</c>). Exists only when at least one family has a list,
/// so the request path pays nothing otherwise. Denials are the errors a broker's authorizer gives:
/// TOPIC_AUTHORIZATION_FAILED per topic in Metadata, Produce and Fetch (the allowed topics of the same request are
/// still served), GROUP_AUTHORIZATION_FAILED for FindCoordinator and the group APIs, and
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED for transactional coordinator lookups and transaction APIs.
/// </summary>
public sealed class FamilyAuthorization
{
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
            case ApiKey.JoinGroup or ApiKey.SyncGroup or ApiKey.Heartbeat or ApiKey.LeaveGroup or ApiKey.OffsetCommit
                or ApiKey.ConsumerGroupHeartbeat:
            case ApiKey.OffsetFetch when context.Version < 8:
                return GroupOf(context) is { } group && !MayUseGroup(context, group)
                    ? Answer(context, ErrorResponses.ForRequest(context, ErrorCode.GroupAuthorizationFailed))
                    : next(context);
            case ApiKey.InitProducerId or ApiKey.AddOffsetsToTxn or ApiKey.EndTxn:
                return TransactionalIdOf(context) is { } id && !MayUseTransactionalId(context, id)
                    ? Answer(context, ErrorResponses.WithoutRequest(context.ApiKey, ErrorCode.TransactionalIdAuthorizationFailed))
                    : next(context);
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
        ApiKey.OffsetCommit => context.Decode<OffsetCommitRequest>().GroupId,
        ApiKey.OffsetFetch => context.Decode<OffsetFetchRequest>().GroupId,
        ApiKey.ConsumerGroupHeartbeat => context.Decode<ConsumerGroupHeartbeatRequest>().GroupId,
        _ => null,
    };

    private static string? TransactionalIdOf(RequestContext context) => context.ApiKey switch
    {
        ApiKey.InitProducerId => context.Decode<InitProducerIdRequest>().TransactionalId,
        ApiKey.AddOffsetsToTxn => context.Decode<AddOffsetsToTxnRequest>().TransactionalId,
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

    private async ValueTask<Task<PooledFrame>?> ProduceAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        var request = context.Decode<ProduceRequest>();
        var denied = request.TopicData.Where(t => !MayUseTopic(context, t.Name)).ToList();
        if (denied.Count == 0)
        {
            return await next(context).ConfigureAwait(false);
        }
        var answers = new List<ProduceResponse.TopicProduceResponse>();
        foreach (var topic in denied)
        {
            var answer = new ProduceResponse.TopicProduceResponse { Name = topic.Name };
            foreach (var partition in topic.PartitionData)
            {
                answer.PartitionResponses.Add(new ProduceResponse.PartitionProduceResponse
                {
                    Index = partition.Index,
                    ErrorCode = (short)ErrorCode.TopicAuthorizationFailed,
                    BaseOffset = -1,
                });
            }
            answers.Add(answer);
        }
        request.TopicData.RemoveAll(denied.Contains);
        var response = new ProduceResponse();
        if (request.TopicData.Count > 0)
        {
            var inner = await WithBodyAsync(context, request, next).ConfigureAwait(false);
            if (inner is null)
            {
                return null;
            }
            return MergeProduceAsync(context, inner, answers);
        }
        if (request.Acks == 0)
        {
            return null;
        }
        response.Responses.AddRange(answers);
        return Task.FromResult(context.Respond(response));
    }

    private static async Task<PooledFrame> MergeProduceAsync(RequestContext context, Task<PooledFrame> inner, List<ProduceResponse.TopicProduceResponse> denied)
    {
        using var frame = await inner.ConfigureAwait(false);
        var response = FrameCodec.DecodeResponse<ProduceResponse>(frame, ApiKey.Produce, context.Version);
        response.Responses.AddRange(denied);
        return context.Respond(response);
    }

    private async ValueTask<Task<PooledFrame>?> FetchAsync(RequestContext context, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        var request = context.Decode<FetchRequest>();
        var usesIds = context.Version >= 13;
        var denied = new List<FetchRequest.FetchTopic>();
        foreach (var topic in request.Topics)
        {
            var name = usesIds ? _state.TopicIds.NameOf(topic.TopicId, KnownTopicNames()) : topic.Topic;
            if (name is not null && !MayUseTopic(context, name))
            {
                denied.Add(topic);
            }
        }
        if (denied.Count == 0)
        {
            return await next(context).ConfigureAwait(false);
        }
        var answers = new List<FetchResponse.FetchableTopicResponse>();
        foreach (var topic in denied)
        {
            var answer = new FetchResponse.FetchableTopicResponse { Topic = topic.Topic, TopicId = topic.TopicId };
            foreach (var partition in topic.Partitions)
            {
                answer.Partitions.Add(new FetchResponse.PartitionData
                {
                    PartitionIndex = partition.Partition,
                    ErrorCode = (short)ErrorCode.TopicAuthorizationFailed,
                    HighWatermark = -1,
                });
            }
            answers.Add(answer);
        }
        request.Topics.RemoveAll(denied.Contains);
        if (request.Topics.Count > 0)
        {
            var inner = await WithBodyAsync(context, request, next).ConfigureAwait(false);
            return inner is null ? null : MergeFetchAsync(context, inner, answers);
        }
        var response = new FetchResponse { SessionId = 0 };
        response.Responses.AddRange(answers);
        return Task.FromResult(context.Respond(response));
    }

    private static async Task<PooledFrame> MergeFetchAsync(RequestContext context, Task<PooledFrame> inner, List<FetchResponse.FetchableTopicResponse> denied)
    {
        using var frame = await inner.ConfigureAwait(false);
        var response = FrameCodec.DecodeResponse<FetchResponse>(frame, ApiKey.Fetch, context.Version);
        response.Responses.AddRange(denied);
        return context.Respond(response);
    }

    private IEnumerable<string> KnownTopicNames()
    {
        foreach (var cluster in _state.Clusters)
        {
            if (cluster.View is { } view)
            {
                foreach (var name in view.Topics.Keys)
                {
                    yield return name;
                }
            }
        }
    }

    /// <summary>Routes the request with a narrowed body (same header), the new frame living as long as the call that sends it.</summary>
    private static async ValueTask<Task<PooledFrame>?> WithBodyAsync(RequestContext context, IKafkaMessage body, Func<RequestContext, ValueTask<Task<PooledFrame>?>> next)
    {
        using var frame = FrameCodec.EncodeRequest(context.ApiKey, context.Version, context.CorrelationId, context.Header.ClientId, body);
        var bodyOffset = FrameCodec.RequestBodyOffset(frame.Memory, context.ApiKey, context.Version, out var header);
        return await next(new RequestContext(context.Session, frame, header, bodyOffset, context.Routes)).ConfigureAwait(false);
    }
}
