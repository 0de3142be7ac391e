using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Records;
using Switchback.Protocol.Routing;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Requests addressed to partition leaders: Produce (family write route), Fetch, ListOffsets and
/// OffsetForLeaderEpoch (read route). Each partition goes to its leader on the routed cluster; a request spanning
/// several upstream brokers is split and the answers merged back in request order. When everything goes to one
/// broker and nothing needs rewriting, the client's bytes are relayed as they are.
/// </summary>
public sealed partial class PartitionHandlers(ProxyState state)
{
    private TimeSpan Timeout => state.Config.Limits.UpstreamRequestTimeout;

    // ---------------------------------------------------------------- Produce

    /// <summary>The full path: decoded, split per leader and family, answers merged.</summary>
    private async ValueTask<Task<PooledFrame>?> ProduceDecodedAsync(RequestContext context)
    {
        var request = context.Decode<ProduceRequest>();
        // A switch may be holding this family's writes: wait at its gate, then route with the table in force.
        List<Switching.FamilyTraffic.Lane> lanes;
        try
        {
            lanes = await EnterWriteLanesAsync(context, request).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return TimedOutProduce(context, request);
        }
        return await ProduceDecodedAsync(context, request, lanes).ConfigureAwait(false);
    }

    /// <summary>The switch outlived the wait at the gate: answer as a busy broker would, the client retries.</summary>
    private Task<PooledFrame>? TimedOutProduce(RequestContext context, ProduceRequest request)
    {
        if (request.Acks == 0)
        {
            return null;
        }
        var timedOut = new Dictionary<(string, int), ErrorCode>();
        foreach (var topic in request.TopicData)
        {
            foreach (var partition in topic.PartitionData)
            {
                timedOut[(topic.Name, partition.Index)] = ErrorCode.RequestTimedOut;
            }
        }
        return MergeProduceAsync(context, request, [], timedOut);
    }

    /// <summary>Routes and sends a decoded produce whose write lanes are held; they are let go once its upstream requests settle.</summary>
    private async ValueTask<Task<PooledFrame>?> ProduceDecodedAsync(RequestContext context, ProduceRequest request, List<Switching.FamilyTraffic.Lane> lanes)
    {
        try
        {
            var response = await ProduceCoreAsync(context, request, state.Routes.Current).ConfigureAwait(false);
            if (response is null)
            {
                ExitAll(lanes);
                return null;
            }
            ExitWhenSettled(context.UpstreamSettled, lanes);
            return response;
        }
        catch
        {
            ExitAll(lanes);
            throw;
        }
    }

    private async ValueTask<List<Switching.FamilyTraffic.Lane>> EnterWriteLanesAsync(RequestContext context, ProduceRequest request)
    {
        var lanes = new List<Switching.FamilyTraffic.Lane>(1);
        try
        {
            foreach (var topic in request.TopicData)
            {
                var family = context.Routes.ForTopic(topic.Name).Family;
                var traffic = state.Traffic.For(family);
                if (lanes.Contains(traffic.Writes))
                {
                    continue;
                }
                // Records of an open transaction finish where it began; the switch waits for the transaction instead.
                var bypass = request.TransactionalId is { } id && state.Transactions.IsOpenIn(id, family);
                await traffic.Writes.EnterAsync(Timeout, context.Session.Closed, bypass).ConfigureAwait(false);
                lanes.Add(traffic.Writes);
            }
        }
        catch
        {
            ExitAll(lanes);
            throw;
        }
        return lanes;
    }

    private static void ExitAll(List<Switching.FamilyTraffic.Lane> lanes)
    {
        foreach (var lane in lanes)
        {
            lane.Exit();
        }
    }

    /// <summary>
    /// A produce leaves the drain count when its upstream requests have settled (answered, or their connection
    /// failed), not when its client stops waiting: a client that goes away does not take back a write already on
    /// its way to the old cluster, and a switch must not flip until that write has landed or failed.
    /// </summary>
    private void ExitWhenSettled(List<Task> settled, List<Switching.FamilyTraffic.Lane> lanes)
    {
        if (settled.Count == 0)
        {
            ExitAll(lanes);
            return;
        }
        _ = Task.WhenAll(settled).WaitAsync(Timeout).ContinueWith(static (t, state) =>
        {
            _ = t.Exception; // failures are the client's answer, not the lane's concern
            ExitAll((List<Switching.FamilyTraffic.Lane>)state!);
        }, lanes, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async ValueTask<Task<PooledFrame>?> ProduceCoreAsync(RequestContext context, ProduceRequest request, Routing.RouteTable routes)
    {
        var expectResponse = request.Acks != 0;
        var router = new PartitionRouter(state, context.Session.Closed);
        var calls = new Dictionary<(int, int), (UpstreamCall Call, ProduceRequest Sub)>();
        var rejected = new Dictionary<(string, int), ErrorCode>();
        foreach (var topic in request.TopicData)
        {
            var family = routes.ForTopic(topic.Name);
            var cluster = family.Route.Write;
            state.Metrics.Routed(ApiKey.Produce, family.Family, cluster, topic.PartitionData.Count);
            state.Metrics.Produced(family.Family, cluster, topic.PartitionData.Sum(p => p.Records is { } r ? RecordCounter.Count(r.Span) : 0),
                topic.PartitionData.Sum(p => (long)(p.Records?.Length ?? 0)));
            context.Session.Activity.Used(family.Family, cluster, Listening.ClientUse.Produce);
            foreach (var partition in topic.PartitionData)
            {
                var target = await router.ResolveAsync(cluster, topic.Name, partition.Index).ConfigureAwait(false);
                if (!target.IsRouted)
                {
                    rejected[(topic.Name, partition.Index)] = target.Error;
                    continue;
                }
                if (partition.Records is { } records)
                {
                    if (request.TransactionalId is null)
                    {
                        await state.Producers.MapAsync(family, topic.Name, partition.Index, records, context.Session.Closed).ConfigureAwait(false);
                    }
                    else if (await state.Transactions.MappingForAsync(request.TransactionalId, cluster, mayCreate: false, context.Session.Closed)
                        .ConfigureAwait(false) is { } mapping)
                    {
                        await state.Transactions.RewriteAsync(mapping, topic.Name, partition.Index, records, context.Session.Closed).ConfigureAwait(false);
                    }
                }
                if (!calls.TryGetValue(target.Key, out var entry))
                {
                    entry = (new UpstreamCall(target.View!, target.Leader),
                        new ProduceRequest { TransactionalId = request.TransactionalId, Acks = request.Acks, TimeoutMs = request.TimeoutMs });
                    calls[target.Key] = entry;
                }
                var subTopics = entry.Sub.TopicData;
                if (subTopics.Count == 0 || subTopics[^1].Name != topic.Name)
                {
                    subTopics.Add(new ProduceRequest.TopicProduceData { Name = topic.Name });
                }
                subTopics[^1].PartitionData.Add(partition);
            }
        }

        var relayed = rejected.Count == 0 && calls.Count == 1;
        foreach (var (call, sub) in calls.Values)
        {
            if (relayed)
            {
                await call.SendAsync(context, context.Frame.Memory, expectResponse).ConfigureAwait(false);
            }
            else
            {
                await call.SendAsync(context, sub, expectResponse).ConfigureAwait(false);
            }
        }
        if (!expectResponse)
        {
            return null;
        }
        if (relayed)
        {
            return RelayOrMergeProduceAsync(context, request, calls.Values.First().Call);
        }
        return MergeProduceAsync(context, request, [.. calls.Values], rejected);
    }

    /// <summary>One upstream broker took the whole request: relay its answer as is unless it carries leader hints.</summary>
    private async Task<PooledFrame> RelayOrMergeProduceAsync(RequestContext context, ProduceRequest request, UpstreamCall call)
    {
        var frame = await call.FrameAsync(context, Timeout).ConfigureAwait(false);
        if (frame is not null && ProduceResponseInspector.CanRelayAsIs(frame.Span, context.Version)
            && (context.Version >= 9 || request.TopicData.Select(t => context.Routes.ForTopic(t.Name)).Distinct().Count() == 1))
        {
            // Clean from v9 (the inspection found no error); before, one family's answer is counted from its bytes.
            RecordRelayedProduce(context.Routes.ForTopic(request.TopicData[0].Name).Family, frame, context.Version,
                request.TopicData.Sum(t => t.PartitionData.Count), knownClean: context.Version >= 9, context.ReceivedAt);
            call.Detach();
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(frame.Span, context.CorrelationId);
            return frame;
        }
        return await MergeProduceAsync(context, request, [(call, request)], []).ConfigureAwait(false);
    }

    private async Task<PooledFrame> MergeProduceAsync(RequestContext context, ProduceRequest request, List<(UpstreamCall Call, ProduceRequest Sub)> calls,
        Dictionary<(string, int), ErrorCode> rejected)
    {
        try
        {
            var results = new Dictionary<(string, int), ProduceResponse.PartitionProduceResponse>();
            var merged = new ProduceResponse();
            foreach (var (call, sub) in calls)
            {
                var response = await call.ResponseAsync<ProduceResponse>(context, Timeout).ConfigureAwait(false);
                if (response is null)
                {
                    if (call.Pending is not null)
                    {
                        // Sent but not answered: the broker may have written it, which REQUEST_TIMED_OUT says (as a broker
                        // does when acks=all times out). NOT_LEADER_OR_FOLLOWER would tell an idempotent producer it was
                        // not written, and librdkafka then re-sends it under a bumped epoch: the records are stored twice.
                        foreach (var topic in sub.TopicData)
                        {
                            foreach (var partition in topic.PartitionData)
                            {
                                rejected.TryAdd((topic.Name, partition.Index), ErrorCode.RequestTimedOut);
                            }
                        }
                    }
                    continue;
                }
                merged.ThrottleTimeMs = Math.Max(merged.ThrottleTimeMs, response.ThrottleTimeMs);
                var leadershipChanged = false;
                foreach (var topic in response.Responses)
                {
                    foreach (var partition in topic.PartitionResponses)
                    {
                        if (partition.CurrentLeader is { } leader)
                        {
                            leader.LeaderId = NodeIds.ToVirtual(call.View.Ordinal, leader.LeaderId);
                            leader.LeaderEpoch = -1; // epochs are per cluster (see Metadata)
                        }
                        leadershipChanged |= PartitionRouter.IsLeadershipError(partition.ErrorCode);
                        results[(topic.Name, partition.Index)] = partition;
                    }
                }
                await UpstreamCall.AddNodeEndpointsAsync(state, call.View, response.NodeEndpoints, merged.NodeEndpoints).ConfigureAwait(false);
                if (leadershipChanged)
                {
                    PartitionRouter.LeadershipChanged(state, call.View);
                }
            }
            foreach (var topic in request.TopicData)
            {
                var topicResponse = new ProduceResponse.TopicProduceResponse { Name = topic.Name };
                foreach (var partition in topic.PartitionData)
                {
                    if (!results.TryGetValue((topic.Name, partition.Index), out var result))
                    {
                        // Not answered upstream (unreachable, or no leader): a retriable error makes the client refresh and retry.
                        var error = rejected.TryGetValue((topic.Name, partition.Index), out var e) ? e : ErrorCode.NotLeaderOrFollower;
                        result = new ProduceResponse.PartitionProduceResponse { Index = partition.Index, ErrorCode = (short)error, BaseOffset = -1 };
                    }
                    topicResponse.PartitionResponses.Add(result);
                }
                merged.Responses.Add(topicResponse);
            }
            RecordProduceOutcomes(context, merged);
            return context.Respond(merged);
        }
        finally
        {
            UpstreamCall.DisposeAll([.. calls.Select(c => c.Call)]);
        }
    }

    /// <summary>A merged produce answer's outcome per family: errors by code, and the latency its client saw.</summary>
    private void RecordProduceOutcomes(RequestContext context, ProduceResponse merged)
    {
        foreach (var family in merged.Responses.GroupBy(t => context.Routes.ForTopic(t.Name).Family, StringComparer.Ordinal))
        {
            var partitions = 0;
            var errors = 0;
            foreach (var topic in family)
            {
                foreach (var partition in topic.PartitionResponses)
                {
                    partitions++;
                    if (partition.ErrorCode != 0)
                    {
                        errors++;
                        state.Metrics.ErrorAnswered(ApiKey.Produce, family.Key, partition.ErrorCode);
                    }
                }
            }
            state.Metrics.ProduceAnswered(family.Key, partitions, errors, context.ReceivedAt);
        }
    }

    // ---------------------------------------------------------------- Fetch

    /// <summary>The full path: decoded, split per leader, sent as sessionless sub-requests, answers merged.</summary>
    private async ValueTask<Task<PooledFrame>?> FetchDecodedAsync(RequestContext context)
    {
        var request = context.Decode<FetchRequest>();
        var router = new PartitionRouter(state, context.Session.Closed);
        var usesIds = context.Version >= 13;
        var calls = new Dictionary<(int, int), (UpstreamCall Call, FetchRequest Sub)>();
        var rejected = new Dictionary<(string, int), ErrorCode>();
        var names = FetchNames(request, context.Version);
        for (var t = 0; t < request.Topics.Count; t++)
        {
            var topic = request.Topics[t];
            var name = names[t];
            if (name is null)
            {
                continue; // answered with UNKNOWN_TOPIC_ID below
            }
            var route = context.Routes.ForTopic(name);
            var cluster = route.Route.Read;
            context.Session.Activity.Used(route.Family, cluster, Listening.ClientUse.Fetch);
            foreach (var partition in topic.Partitions)
            {
                var target = await router.ResolveAsync(cluster, name, partition.Partition).ConfigureAwait(false);
                if (!target.IsRouted)
                {
                    rejected[(name, partition.Partition)] = target.Error;
                    continue;
                }
                if (!calls.TryGetValue(target.Key, out var entry))
                {
                    entry = (new UpstreamCall(target.View!, target.Leader), new FetchRequest
                    {
                        ClusterId = request.ClusterId,
                        ReplicaId = request.ReplicaId,
                        ReplicaState = request.ReplicaState,
                        MaxWaitMs = request.MaxWaitMs,
                        MinBytes = request.MinBytes,
                        MaxBytes = request.MaxBytes,
                        IsolationLevel = request.IsolationLevel,
                        // Fetch sessions belong to one upstream connection; the proxy always fetches without one.
                        SessionId = 0,
                        SessionEpoch = -1,
                        RackId = request.RackId,
                    });
                    calls[target.Key] = entry;
                }
                var subTopics = entry.Sub.Topics;
                if (subTopics.Count == 0 || subTopics[^1].Topic != name)
                {
                    var upstreamId = usesIds && target.View!.Topics.TryGetValue(name, out var view) ? view.Id : Guid.Empty;
                    subTopics.Add(new FetchRequest.FetchTopic { Topic = name, TopicId = upstreamId });
                }
                // Epochs are per cluster and hidden from clients (see Metadata): never let a stale one fence a fetch.
                partition.CurrentLeaderEpoch = -1;
                partition.LastFetchedEpoch = -1;
                subTopics[^1].Partitions.Add(partition);
            }
        }

        var sessionless = context.Version < 7 || (request.SessionId == 0 && request.SessionEpoch == -1);
        var relayed = rejected.Count == 0 && calls.Count == 1 && !usesIds && context.Version < 11 && sessionless && !Array.Exists(names, n => n is null);
        foreach (var (call, sub) in calls.Values)
        {
            if (relayed)
            {
                await call.SendAsync(context, context.Frame.Memory, expectResponse: true).ConfigureAwait(false);
            }
            else
            {
                await call.SendAsync(context, sub, expectResponse: true).ConfigureAwait(false);
            }
        }
        var timeout = Timeout + TimeSpan.FromMilliseconds(Math.Max(0, request.MaxWaitMs));
        if (relayed && calls.Values.First().Call is { Pending: { } pending })
        {
            return Forwarding.RestoreCorrelationAsync(pending, context.CorrelationId, timeout, context.Session.Closed);
        }
        var callList = calls.Values.Select(c => c.Call).ToList();
        if (callList.Count == 1 && rejected.Count == 0 && context.Version >= FetchResponseRewriter.FirstVersion && !Array.Exists(names, n => n is null))
        {
            return RelayOrMergeFetchAsync(context, request, names, callList[0], timeout);
        }
        return MergeFetchAsync(context, request, names, callList, rejected, timeout);
    }

    /// <summary>One upstream broker answered the whole fetch: patch its answer in place when possible, else merge.</summary>
    private async Task<PooledFrame> RelayOrMergeFetchAsync(RequestContext context, FetchRequest request, string?[] names, UpstreamCall call, TimeSpan timeout)
    {
        var frame = await call.FrameAsync(context, timeout).ConfigureAwait(false);
        if (frame is not null && FetchResponseRewriter.TryRewriteInPlace(frame.Span, context.Version, new ClientTopicIds(state, call.View)))
        {
            call.Detach();
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(frame.Span, context.CorrelationId);
            return frame;
        }
        return await MergeFetchAsync(context, request, names, [call], [], timeout).ConfigureAwait(false);
    }

    private async Task<PooledFrame> MergeFetchAsync(RequestContext context, FetchRequest request, string?[] names,
        List<UpstreamCall> calls, Dictionary<(string, int), ErrorCode> rejected, TimeSpan timeout)
    {
        try
        {
            var results = new Dictionary<(string, int), FetchResponse.PartitionData>();
            var merged = new FetchResponse { SessionId = 0 };
            foreach (var call in calls)
            {
                var response = await call.ResponseAsync<FetchResponse>(context, timeout).ConfigureAwait(false);
                if (response is null)
                {
                    continue;
                }
                merged.ThrottleTimeMs = Math.Max(merged.ThrottleTimeMs, response.ThrottleTimeMs);
                var leadershipChanged = false;
                foreach (var topic in response.Responses)
                {
                    var name = context.Version >= 13
                        ? (call.View.TopicsById.TryGetValue(topic.TopicId, out var view) ? view.Name : null)
                        : topic.Topic;
                    if (name is null)
                    {
                        continue;
                    }
                    foreach (var partition in topic.Partitions)
                    {
                        if (partition.CurrentLeader is { } leader)
                        {
                            leader.LeaderId = NodeIds.ToVirtual(call.View.Ordinal, leader.LeaderId);
                            leader.LeaderEpoch = -1; // epochs are per cluster (see Metadata)
                        }
                        if (partition.PreferredReadReplica >= 0)
                        {
                            partition.PreferredReadReplica = NodeIds.ToVirtual(call.View.Ordinal, partition.PreferredReadReplica);
                        }
                        leadershipChanged |= PartitionRouter.IsLeadershipError(partition.ErrorCode);
                        results[(name, partition.PartitionIndex)] = partition;
                    }
                }
                if (response.ErrorCode != 0 && merged.ErrorCode == 0)
                {
                    merged.ErrorCode = response.ErrorCode;
                }
                await UpstreamCall.AddNodeEndpointsAsync(state, call.View, response.NodeEndpoints, merged.NodeEndpoints).ConfigureAwait(false);
                if (leadershipChanged)
                {
                    PartitionRouter.LeadershipChanged(state, call.View);
                }
            }
            for (var t = 0; t < request.Topics.Count; t++)
            {
                var topic = request.Topics[t];
                var name = names[t];
                var topicResponse = new FetchResponse.FetchableTopicResponse
                {
                    Topic = name ?? topic.Topic,
                    TopicId = topic.TopicId, // the client's (proxy) id, whatever the upstream's
                };
                foreach (var partition in topic.Partitions)
                {
                    if (name is null || !results.TryGetValue((name, partition.Partition), out var result))
                    {
                        var error = name is null ? ErrorCode.UnknownTopicId
                            : rejected.TryGetValue((name, partition.Partition), out var e) ? e : ErrorCode.NotLeaderOrFollower;
                        result = new FetchResponse.PartitionData
                        {
                            PartitionIndex = partition.Partition,
                            ErrorCode = (short)error,
                            HighWatermark = -1,
                            Records = null,
                        };
                    }
                    topicResponse.Partitions.Add(result);
                }
                merged.Responses.Add(topicResponse);
                if (name is not null)
                {
                    var route = context.Routes.ForTopic(name);
                    state.Metrics.Fetched(route.Family, route.Route.Read, topicResponse.Partitions.Sum(p => (long)(p.Records?.Length ?? 0)));
                }
            }
            return context.Respond(merged);
        }
        finally
        {
            UpstreamCall.DisposeAll(calls);
        }
    }

    /// <summary>The name of each topic of a Fetch request, by its proxy topic id from v13; null for an unknown id.</summary>
    private string?[] FetchNames(FetchRequest request, short version)
    {
        var names = new string?[request.Topics.Count];
        for (var t = 0; t < names.Length; t++)
        {
            var topic = request.Topics[t];
            names[t] = version >= 13 ? state.TopicIds.NameOf(topic.TopicId, state.KnownTopicNames()) : topic.Topic;
        }
        return names;
    }

    // ---------------------------------------------------------------- ListOffsets

    public async ValueTask<Task<PooledFrame>?> ListOffsetsAsync(RequestContext context)
    {
        var request = context.Decode<ListOffsetsRequest>();
        var router = new PartitionRouter(state, context.Session.Closed);
        var calls = new Dictionary<(int, int), (UpstreamCall Call, ListOffsetsRequest Sub)>();
        var rejected = new Dictionary<(string, int), ErrorCode>();
        foreach (var topic in request.Topics)
        {
            var cluster = context.Routes.ForTopic(topic.Name).Route.Read;
            foreach (var partition in topic.Partitions)
            {
                var target = await router.ResolveAsync(cluster, topic.Name, partition.PartitionIndex).ConfigureAwait(false);
                if (!target.IsRouted)
                {
                    rejected[(topic.Name, partition.PartitionIndex)] = target.Error;
                    continue;
                }
                if (!calls.TryGetValue(target.Key, out var entry))
                {
                    entry = (new UpstreamCall(target.View!, target.Leader), new ListOffsetsRequest
                    {
                        ReplicaId = request.ReplicaId,
                        IsolationLevel = request.IsolationLevel,
                        TimeoutMs = request.TimeoutMs,
                    });
                    calls[target.Key] = entry;
                }
                if (entry.Sub.Topics.Count == 0 || entry.Sub.Topics[^1].Name != topic.Name)
                {
                    entry.Sub.Topics.Add(new ListOffsetsRequest.ListOffsetsTopic { Name = topic.Name });
                }
                partition.CurrentLeaderEpoch = -1;
                entry.Sub.Topics[^1].Partitions.Add(partition);
            }
        }
        foreach (var (call, sub) in calls.Values)
        {
            await call.SendAsync(context, sub, expectResponse: true).ConfigureAwait(false);
        }
        return MergeListOffsetsAsync(context, request, calls.Values.Select(c => c.Call).ToList(), rejected);
    }

    private async Task<PooledFrame> MergeListOffsetsAsync(RequestContext context, ListOffsetsRequest request, List<UpstreamCall> calls, Dictionary<(string, int), ErrorCode> rejected)
    {
        try
        {
            var results = new Dictionary<(string, int), ListOffsetsResponse.ListOffsetsPartitionResponse>();
            var merged = new ListOffsetsResponse();
            foreach (var call in calls)
            {
                var response = await call.ResponseAsync<ListOffsetsResponse>(context, Timeout).ConfigureAwait(false);
                if (response is null)
                {
                    continue;
                }
                merged.ThrottleTimeMs = Math.Max(merged.ThrottleTimeMs, response.ThrottleTimeMs);
                foreach (var topic in response.Topics)
                {
                    foreach (var partition in topic.Partitions)
                    {
                        if (PartitionRouter.IsLeadershipError(partition.ErrorCode))
                        {
                            PartitionRouter.LeadershipChanged(state, call.View);
                        }
                        partition.LeaderEpoch = -1;
                        results[(topic.Name, partition.PartitionIndex)] = partition;
                    }
                }
            }
            foreach (var topic in request.Topics)
            {
                var topicResponse = new ListOffsetsResponse.ListOffsetsTopicResponse { Name = topic.Name };
                foreach (var partition in topic.Partitions)
                {
                    if (!results.TryGetValue((topic.Name, partition.PartitionIndex), out var result))
                    {
                        var error = rejected.TryGetValue((topic.Name, partition.PartitionIndex), out var e) ? e : ErrorCode.NotLeaderOrFollower;
                        result = new ListOffsetsResponse.ListOffsetsPartitionResponse { PartitionIndex = partition.PartitionIndex, ErrorCode = (short)error };
                    }
                    topicResponse.Partitions.Add(result);
                }
                merged.Topics.Add(topicResponse);
            }
            return context.Respond(merged);
        }
        finally
        {
            UpstreamCall.DisposeAll(calls);
        }
    }

    // ---------------------------------------------------------------- OffsetForLeaderEpoch

    public async ValueTask<Task<PooledFrame>?> OffsetForLeaderEpochAsync(RequestContext context)
    {
        var request = context.Decode<OffsetForLeaderEpochRequest>();
        var router = new PartitionRouter(state, context.Session.Closed);
        var calls = new Dictionary<(int, int), (UpstreamCall Call, OffsetForLeaderEpochRequest Sub)>();
        var rejected = new Dictionary<(string, int), ErrorCode>();
        foreach (var topic in request.Topics)
        {
            var cluster = context.Routes.ForTopic(topic.Topic).Route.Read;
            foreach (var partition in topic.Partitions)
            {
                var target = await router.ResolveAsync(cluster, topic.Topic, partition.Partition).ConfigureAwait(false);
                if (!target.IsRouted)
                {
                    rejected[(topic.Topic, partition.Partition)] = target.Error;
                    continue;
                }
                if (!calls.TryGetValue(target.Key, out var entry))
                {
                    entry = (new UpstreamCall(target.View!, target.Leader), new OffsetForLeaderEpochRequest { ReplicaId = request.ReplicaId });
                    calls[target.Key] = entry;
                }
                if (entry.Sub.Topics.Count == 0 || entry.Sub.Topics[^1].Topic != topic.Topic)
                {
                    entry.Sub.Topics.Add(new OffsetForLeaderEpochRequest.OffsetForLeaderTopic { Topic = topic.Topic });
                }
                entry.Sub.Topics[^1].Partitions.Add(partition);
            }
        }
        foreach (var (call, sub) in calls.Values)
        {
            await call.SendAsync(context, sub, expectResponse: true).ConfigureAwait(false);
        }
        return MergeOffsetForLeaderEpochAsync(context, request, calls.Values.Select(c => c.Call).ToList(), rejected);
    }

    private async Task<PooledFrame> MergeOffsetForLeaderEpochAsync(RequestContext context, OffsetForLeaderEpochRequest request, List<UpstreamCall> calls, Dictionary<(string, int), ErrorCode> rejected)
    {
        try
        {
            var results = new Dictionary<(string, int), OffsetForLeaderEpochResponse.EpochEndOffset>();
            var merged = new OffsetForLeaderEpochResponse();
            foreach (var call in calls)
            {
                var response = await call.ResponseAsync<OffsetForLeaderEpochResponse>(context, Timeout).ConfigureAwait(false);
                if (response is null)
                {
                    continue;
                }
                merged.ThrottleTimeMs = Math.Max(merged.ThrottleTimeMs, response.ThrottleTimeMs);
                foreach (var topic in response.Topics)
                {
                    foreach (var partition in topic.Partitions)
                    {
                        results[(topic.Topic, partition.Partition)] = partition;
                    }
                }
            }
            foreach (var topic in request.Topics)
            {
                var topicResponse = new OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult { Topic = topic.Topic };
                foreach (var partition in topic.Partitions)
                {
                    if (!results.TryGetValue((topic.Topic, partition.Partition), out var result))
                    {
                        var error = rejected.TryGetValue((topic.Topic, partition.Partition), out var e) ? e : ErrorCode.NotLeaderOrFollower;
                        result = new OffsetForLeaderEpochResponse.EpochEndOffset { Partition = partition.Partition, ErrorCode = (short)error };
                    }
                    topicResponse.Partitions.Add(result);
                }
                merged.Topics.Add(topicResponse);
            }
            return context.Respond(merged);
        }
        finally
        {
            UpstreamCall.DisposeAll(calls);
        }
    }
}
