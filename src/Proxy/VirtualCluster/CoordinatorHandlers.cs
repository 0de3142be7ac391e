using System.Diagnostics;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Requests keyed by a consumer group (to its coordinator on the family's read cluster) or by a transactional id
/// (to its coordinator on the family's write cluster). They are forwarded as bytes; only the key is decoded.
/// Requests naming several groups go to each group's coordinator (<see cref="GroupBatchRouter"/>), topic-admin
/// requests each topic, partition or config resource to its own family's cluster (<see cref="TopicAdminRouter"/>).
/// </summary>
public sealed class CoordinatorHandlers(ProxyState state)
{
    private const sbyte GroupKey = 0;
    private const sbyte TransactionKey = 1;

    private readonly GroupBatchRouter _groupBatches = new(state);
    private readonly TopicAdminRouter _topicAdmin = new(state);
    private readonly TransactionPlacement _transactions = new(state);

    public async ValueTask<Task<PooledFrame>?> RouteAsync(RequestContext context)
    {
        if (context.ApiKey == ApiKey.ListGroups)
        {
            return await ListGroupsAsync(context).ConfigureAwait(false);
        }
        if (GroupBatch.For(context) is { } batch)
        {
            return await _groupBatches.RouteAsync(context, batch).ConfigureAwait(false);
        }
        if (TopicAdminBatch.For(context, state) is { } topicAdmin)
        {
            return await _topicAdmin.RouteAsync(context, topicAdmin).ConfigureAwait(false);
        }
        var routes = context.Routes;
        var timeout = state.Config.Limits.UpstreamRequestTimeout;
        (string Cluster, sbyte KeyType, string? Key) target;
        switch (context.ApiKey)
        {
            case ApiKey.JoinGroup:
                var join = context.Decode<JoinGroupRequest>();
                // A join legitimately waits for the whole rebalance.
                timeout += TimeSpan.FromMilliseconds(Math.Max(join.RebalanceTimeoutMs, join.SessionTimeoutMs));
                target = Group(routes, join.GroupId);
                break;
            case ApiKey.SyncGroup:
                target = Group(routes, context.Decode<SyncGroupRequest>().GroupId);
                timeout += TimeSpan.FromMinutes(5);
                break;
            case ApiKey.Heartbeat:
                target = Group(routes, context.Decode<HeartbeatRequest>().GroupId);
                break;
            case ApiKey.LeaveGroup:
                target = Group(routes, context.Decode<LeaveGroupRequest>().GroupId);
                break;
            case ApiKey.OffsetCommit:
                target = Group(routes, context.Decode<OffsetCommitRequest>().GroupId);
                break;
            case ApiKey.OffsetFetch: // v0-7; v8+ names several groups (GroupBatch)
                target = Group(routes, context.Decode<OffsetFetchRequest>().GroupId);
                break;
            case ApiKey.ConsumerGroupHeartbeat:
                target = Group(routes, context.Decode<ConsumerGroupHeartbeatRequest>().GroupId);
                break;
            case ApiKey.OffsetDelete:
                target = Group(routes, context.Decode<OffsetDeleteRequest>().GroupId);
                break;
            case ApiKey.TxnOffsetCommit:
                var txnCommit = context.Decode<TxnOffsetCommitRequest>();
                // The offsets belong to the transaction, so they go to the group's coordinator where its records go.
                target = (state.Transactions.ClusterOf(txnCommit.TransactionalId) ?? routes.ForGroup(txnCommit.GroupId).Route.Read, GroupKey, txnCommit.GroupId);
                context.Session.Activity.Used(routes.ForGroup(txnCommit.GroupId).Family, target.Cluster, Listening.ClientUse.Commit);
                break;
            case ApiKey.InitProducerId:
                target = Transaction(routes, context.Decode<InitProducerIdRequest>().TransactionalId);
                break;
            case ApiKey.AddPartitionsToTxn:
                var add = context.Decode<AddPartitionsToTxnRequest>();
                target = Transaction(routes, context.Version < 4 ? add.V3AndBelowTransactionalId : First(add.Transactions)?.TransactionalId);
                break;
            case ApiKey.AddOffsetsToTxn:
                target = Transaction(routes, context.Decode<AddOffsetsToTxnRequest>().TransactionalId);
                break;
            case ApiKey.EndTxn:
                target = Transaction(routes, context.Decode<EndTxnRequest>().TransactionalId);
                break;
            default:
                target = (routes.Default.Route.Read, 0, null);
                break;
        }

        if (target.KeyType == GroupKey && target.Key is { } requestedGroup && state.Config.IsReservedGroup(requestedGroup)
            && ErrorResponses.ForRequest(context, ErrorCode.GroupAuthorizationFailed) is { } denied)
        {
            return Task.FromResult(context.Respond(denied)); // a client in the fleet's group could pose as an instance
        }
        Switching.FamilyTraffic.Lane? lane = null;
        string? endsTransaction = null;
        string? transactionalId = target.KeyType == TransactionKey ? target.Key
            : context.ApiKey == ApiKey.TxnOffsetCommit ? context.Decode<TxnOffsetCommitRequest>().TransactionalId
            : null;
        if (target.Key is { } routedKey)
        {
            if (target.KeyType == GroupKey && context.ApiKey != ApiKey.TxnOffsetCommit)
            {
                var traffic = state.Traffic.For(routes.ForGroup(routedKey).Family);
                traffic.GroupSeen(routedKey);
                if (context.ApiKey == ApiKey.OffsetCommit)
                {
                    // A read switch holds commits while it copies the group's offsets; then they go to the new cluster.
                    await traffic.Commits.EnterAsync(timeout, context.Session.Closed).ConfigureAwait(false);
                    lane = traffic.Commits;
                    target = Group(state.Routes.Current, routedKey);
                    context.Session.Activity.Used(routes.ForGroup(routedKey).Family, target.Cluster, Listening.ClientUse.Commit);
                }
            }
            else if (target.KeyType == TransactionKey)
            {
                if (context.ApiKey == ApiKey.AddOffsetsToTxn || (context.ApiKey == ApiKey.AddPartitionsToTxn && context.Version < 4))
                {
                    // The transaction begins, or reaches more families: it runs on one cluster, where its records go.
                    if (await _transactions.JoinAsync(context, routedKey, timeout).ConfigureAwait(false) is { } refused)
                    {
                        return Task.FromResult(refused);
                    }
                    target = (state.Transactions.ClusterOf(routedKey)!, TransactionKey, routedKey);
                }
                else if (context.ApiKey == ApiKey.EndTxn)
                {
                    endsTransaction = routedKey;
                }
            }
        }
        var sentAt = 0L;
        try
        {
            Task<PooledFrame>? response;
            try
            {
                using var mapped = transactionalId is not null
                    ? await MapTransactionalAsync(context, transactionalId, target.Cluster).ConfigureAwait(false)
                    : null;
                sentAt = Stopwatch.GetTimestamp();
                response = await ForwardAsync(context, target, timeout, mapped?.Memory ?? context.Frame.Memory,
                    mustLand: lane is not null || endsTransaction is not null).ConfigureAwait(false);
                if (response is not null && context.ApiKey == ApiKey.JoinGroup && target.Key is { } joinedGroup)
                {
                    response = GroupMembershipObserver.JoinGroupAnswered(state.GroupMembers, context, response, target.Cluster, joinedGroup);
                }
                if (response is not null && context.ApiKey == ApiKey.LeaveGroup && target.Key is { } leftGroup)
                {
                    response = GroupMembershipObserver.LeaveGroupAnswered(state.GroupMembers, context, response, target.Cluster, leftGroup);
                }
                if (response is not null && context.ApiKey == ApiKey.InitProducerId && target.Key is { } initialized)
                {
                    var initRequest = context.Decode<InitProducerIdRequest>();
                    response = RecordInitializedAsync(context, response, initialized, target.Cluster, initRequest.TransactionTimeoutMs);
                }
                if (response is not null && ErrorResponses.WithoutRequest(context.ApiKey, ErrorCode.CoordinatorNotAvailable) is not null)
                {
                    response = CoordinatorLostAsync(context, response, target);
                }
            }
            catch (Exception e) when (e is UpstreamUnavailableException or CoordinatorUnavailableException)
            {
                if (target.Key is { } key)
                {
                    state.Cluster(target.Cluster).ForgetCoordinator(target.KeyType, key);
                }
                var error = ErrorResponses.ForRequest(context, ErrorCode.CoordinatorNotAvailable);
                if (error is null)
                {
                    throw;
                }
                response = Task.FromResult(context.Respond(error));
            }
            if (response is not null && context.ApiKey == ApiKey.OffsetFetch && context.Version >= 5)
            {
                response = HideLeaderEpochsAsync(context, response);
            }
            if (response is null || (lane is null && endsTransaction is null))
            {
                lane?.Exit();
                return response;
            }
            return CompleteAsync(context, response, lane, endsTransaction, timeout, sentAt);
        }
        catch
        {
            lane?.Exit();
            throw;
        }
    }

    /// <summary>
    /// Committed leader epochs belong to the cluster that recorded them; after a read switch a client validating its
    /// position with one would see a bogus truncation. The proxy answers without them (as for Metadata).
    /// </summary>
    private static async Task<PooledFrame> HideLeaderEpochsAsync(RequestContext context, Task<PooledFrame> response) =>
        HideLeaderEpochs(context, await response.ConfigureAwait(false));

    /// <summary>An OffsetFetch answer re-encoded without committed leader epochs (the frame is consumed).</summary>
    internal static PooledFrame HideLeaderEpochs(RequestContext context, PooledFrame frame)
    {
        if (context.Version < 5)
        {
            return frame; // no epochs on the wire
        }
        OffsetFetchResponse decoded;
        try
        {
            decoded = FrameCodec.DecodeResponse<OffsetFetchResponse>(frame, context.ApiKey, context.Version);
        }
        catch (KafkaProtocolException)
        {
            return frame; // relay what the broker said, as is
        }
        using (frame)
        {
            HideLeaderEpochs(decoded);
            return context.Respond(decoded);
        }
    }

    internal static void HideLeaderEpochs(OffsetFetchResponse response)
    {
        foreach (var topic in response.Topics)
        {
            foreach (var partition in topic.Partitions)
            {
                partition.CommittedLeaderEpoch = -1;
            }
        }
        foreach (var group in response.Groups)
        {
            foreach (var topic in group.Topics)
            {
                foreach (var partition in topic.Partitions)
                {
                    partition.CommittedLeaderEpoch = -1;
                }
            }
        }
    }

    /// <summary>The coordinator's connection dropped before it answered: tell the client to find it again.</summary>
    private async Task<PooledFrame> CoordinatorLostAsync(RequestContext context, Task<PooledFrame> response, (string Cluster, sbyte KeyType, string? Key) target)
    {
        try
        {
            return await response.ConfigureAwait(false);
        }
        catch (UpstreamUnavailableException)
        {
            if (target.Key is { } key)
            {
                state.Cluster(target.Cluster).ForgetCoordinator(target.KeyType, key);
            }
            return context.Respond(ErrorResponses.WithoutRequest(context.ApiKey, ErrorCode.CoordinatorNotAvailable)!);
        }
    }

    /// <summary>
    /// An offset commit leaves the commit lane, and an EndTxn ends its transaction for the switch, when its upstream
    /// request has settled (answered, or its connection failed), not when its client stops waiting: a consumer that
    /// disconnects does not take back a commit already on its way to the old cluster, and a read switch must not copy
    /// the group's offsets before it has landed there. An answer that never comes holds them no longer than the
    /// upstream request timeout.
    /// </summary>
    private async Task<PooledFrame> CompleteAsync(RequestContext context, Task<PooledFrame> response, Switching.FamilyTraffic.Lane? lane,
        string? endsTransaction, TimeSpan timeout, long sentAt)
    {
        try
        {
            return await response.ConfigureAwait(false);
        }
        finally
        {
            // Answered: settled already, so a client's next request sees the lane and the transaction as they are now.
            var settled = context.UpstreamSettled;
            var left = timeout - Stopwatch.GetElapsedTime(sentAt);
            if (settled.TrueForAll(static t => t.IsCompleted) || left <= TimeSpan.Zero)
            {
                Settle(lane, endsTransaction);
            }
            else
            {
                // The client went away (or stopped waiting) first: wait on for the broker, within what is left of the timeout.
                _ = Task.WhenAll(settled).WaitAsync(left).ContinueWith((t, _) =>
                {
                    _ = t.Exception; // failures were the client's answer, not the lane's concern
                    Settle(lane, endsTransaction);
                }, null, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
    }

    private void Settle(Switching.FamilyTraffic.Lane? lane, string? endsTransaction)
    {
        lane?.Exit();
        if (endsTransaction is not null)
        {
            EndTransaction(endsTransaction);
        }
    }

    /// <summary>The id's transaction ended (EndTxn answered, or the id initialised again, which aborts it): in memory and on disk.</summary>
    private void EndTransaction(string transactionalId) => state.Transactions.Ended(transactionalId);

    /// <summary>
    /// When a transaction runs on another cluster than the one its client initialised the id on, its requests carry the
    /// client's producer id; re-encode them with the id the proxy initialised there (see
    /// <see cref="Switching.TransactionalProducers"/>). Null when no mapping applies and the client's bytes go as they are.
    /// </summary>
    private async ValueTask<PooledFrame?> MapTransactionalAsync(RequestContext context, string transactionalId, string cluster)
    {
        var starts = context.ApiKey is ApiKey.AddPartitionsToTxn or ApiKey.AddOffsetsToTxn;
        if (context.ApiKey is not (ApiKey.AddPartitionsToTxn or ApiKey.AddOffsetsToTxn or ApiKey.EndTxn or ApiKey.TxnOffsetCommit)
            || (context.ApiKey == ApiKey.AddPartitionsToTxn && context.Version >= 4))
        {
            return null;
        }
        var mapping = await state.Transactions.MappingForAsync(transactionalId, cluster, starts, context.Session.Closed).ConfigureAwait(false);
        var foreignMember = context.ApiKey == ApiKey.TxnOffsetCommit && NamesMovedMember(context.Decode<TxnOffsetCommitRequest>(), cluster);
        if (mapping is null && !foreignMember)
        {
            return null;
        }
        IKafkaMessage rewritten;
        switch (context.ApiKey)
        {
            case ApiKey.AddPartitionsToTxn:
                var add = context.Decode<AddPartitionsToTxnRequest>();
                add.V3AndBelowProducerId = mapping!.ProducerId;
                add.V3AndBelowProducerEpoch = mapping.Epoch;
                rewritten = add;
                break;
            case ApiKey.AddOffsetsToTxn:
                var offsets = context.Decode<AddOffsetsToTxnRequest>();
                offsets.ProducerId = mapping!.ProducerId;
                offsets.ProducerEpoch = mapping.Epoch;
                rewritten = offsets;
                break;
            case ApiKey.EndTxn:
                var end = context.Decode<EndTxnRequest>();
                end.ProducerId = mapping!.ProducerId;
                end.ProducerEpoch = mapping.Epoch;
                rewritten = end;
                break;
            default:
                var commit = context.Decode<TxnOffsetCommitRequest>();
                if (mapping is not null)
                {
                    commit.ProducerId = mapping.ProducerId;
                    commit.ProducerEpoch = mapping.Epoch;
                }
                if (foreignMember)
                {
                    // The member and generation of the group on the cluster it left: sent without group metadata, as
                    // producers before KIP-447 did, the coordinator takes the offsets on the producer's epoch alone.
                    commit.MemberId = "";
                    commit.GenerationId = -1;
                    commit.GroupInstanceId = null;
                }
                rewritten = commit;
                break;
        }
        return FrameCodec.EncodeRequest(context.ApiKey, context.Version, context.CorrelationId, context.Header.ClientId, rewritten);
    }

    /// <summary>
    /// After a read switch the consumer of a consume-transform-produce pipeline keeps its old cluster's member id and
    /// generation until it notices and rejoins; its producer sends them with the offsets, and the group's coordinator
    /// would refuse the transaction for them (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION). Only memberships a switch moved
    /// are sent without: any other stale member is still fenced by the coordinator, as KIP-447 intends. A client that
    /// has already dropped its member id to rejoin still names the moved generation, and is treated the same.
    /// </summary>
    private bool NamesMovedMember(TxnOffsetCommitRequest commit, string cluster) =>
        string.IsNullOrEmpty(commit.MemberId)
            ? state.GroupMembers.IsMovedGeneration(commit.GroupId, commit.GenerationId, cluster)
            : state.GroupMembers.IsMovedMember(commit.GroupId, commit.MemberId, commit.GenerationId, cluster);

    /// <summary>A client initialised a transactional id on a cluster: its producer id is that cluster's own from now on.</summary>
    private async Task<PooledFrame> RecordInitializedAsync(RequestContext context, Task<PooledFrame> response, string transactionalId, string cluster, int transactionTimeoutMs)
    {
        var frame = await response.ConfigureAwait(false);
        InitProducerIdResponse decoded;
        try
        {
            decoded = FrameCodec.DecodeResponse<InitProducerIdResponse>(frame, context.ApiKey, context.Version);
        }
        catch (KafkaProtocolException)
        {
            return frame; // relayed as the broker sent it
        }
        if (decoded.ErrorCode == 0)
        {
            // Initialising an id aborts whatever transaction it had open: a switch need not wait for that one.
            EndTransaction(transactionalId);
            try
            {
                // On disk before the client learns its producer id, so a restarted proxy knows where it was issued.
                await state.Transactions.InitializedAsync(transactionalId, cluster, transactionTimeoutMs, context.Session.Closed).ConfigureAwait(false);
            }
            catch
            {
                frame.Dispose();
                throw;
            }
        }
        return frame;
    }

    /// <summary>
    /// Sends the request to the target's coordinator (or any broker). With <paramref name="mustLand"/> its settling is
    /// recorded in <see cref="RequestContext.UpstreamSettled"/> and its connection outlives the session until then.
    /// </summary>
    private async ValueTask<Task<PooledFrame>?> ForwardAsync(RequestContext context, (string Cluster, sbyte KeyType, string? Key) target, TimeSpan timeout,
        ReadOnlyMemory<byte> frame, bool mustLand)
    {
        var cluster = state.Cluster(target.Cluster);
        var view = await cluster.GetViewAsync(context.Session.Closed).ConfigureAwait(false);
        UpstreamConnection connection;
        if (target.Key is { } key)
        {
            var node = await cluster.FindCoordinatorAsync(target.KeyType, key, context.Session.Closed).ConfigureAwait(false);
            connection = await context.Session.Upstreams.GetAsync(view, node, context.Session.Closed).ConfigureAwait(false);
        }
        else
        {
            connection = await context.Session.Upstreams.GetAnyAsync(view, context.Session.Closed).ConfigureAwait(false);
        }
        if (context.ApiKey == ApiKey.ConsumerGroupHeartbeat)
        {
            return await ConsumerGroupHeartbeatTopicIds.ForwardAsync(state, context, cluster, view, connection, timeout).ConfigureAwait(false);
        }
        if (!mustLand)
        {
            return await Forwarding.ForwardAsync(connection, frame, context.CorrelationId, expectResponse: true,
                timeout, context.Session.Closed).ConfigureAwait(false);
        }
        var pending = (await connection.SendAsync(frame, expectResponse: true, context.Session.Closed).ConfigureAwait(false))!;
        var settled = pending.Settled;
        context.UpstreamSettled.Add(settled);
        context.Session.Upstreams.CloseAfter(connection, settled, timeout);
        return Forwarding.RestoreCorrelationAsync(pending, context.CorrelationId, timeout, context.Session.Closed);
    }

    /// <summary>
    /// ListGroups is per broker: a client asks every broker for the groups it coordinates. The proxy asks the
    /// upstream broker behind the virtual broker the client addressed, and keeps only the groups whose family reads
    /// from that broker's cluster (a group seen on the other cluster is not the client's to see).
    /// </summary>
    private async ValueTask<Task<PooledFrame>?> ListGroupsAsync(RequestContext context)
    {
        var routes = context.Routes;
        UpstreamCluster cluster;
        int? node = null;
        if (context.Session.VirtualNodeId is { } virtualNode && state.NodeIds.TryFromVirtual(virtualNode, out var ordinal, out var upstreamNode)
            && ordinal < state.ClustersByOrdinal.Count)
        {
            cluster = state.ClustersByOrdinal[ordinal];
            node = upstreamNode;
        }
        else
        {
            cluster = state.Cluster(routes.Default.Route.Read);
        }
        var view = await cluster.GetViewAsync(context.Session.Closed).ConfigureAwait(false);
        var connection = node is { } n
            ? await context.Session.Upstreams.GetAsync(view, n, context.Session.Closed).ConfigureAwait(false)
            : await context.Session.Upstreams.GetAnyAsync(view, context.Session.Closed).ConfigureAwait(false);
        var pending = await connection.SendAsync(context.Frame.Memory, expectResponse: true, context.Session.Closed).ConfigureAwait(false);
        return FilterGroupsAsync(context, pending!, cluster.Name);
    }

    private async Task<PooledFrame> FilterGroupsAsync(RequestContext context, PendingResponse pending, string clusterName)
    {
        using var frame = await pending.WaitAsync(state.Config.Limits.UpstreamRequestTimeout, context.Session.Closed).ConfigureAwait(false);
        var response = FrameCodec.DecodeResponse<ListGroupsResponse>(frame, context.ApiKey, context.Version);
        var routes = state.Routes.Current;
        response.Groups.RemoveAll(g => routes.ForGroup(g.GroupId).Route.Read != clusterName);
        return context.Respond(response);
    }

    private static T? First<T>(List<T>? items) => items is { Count: > 0 } ? items[0] : default;

    private static (string, sbyte, string?) Group(RouteTable routes, string? group) =>
        group is null ? (routes.Default.Route.Read, GroupKey, null) : (routes.ForGroup(group).Route.Read, GroupKey, group);

    /// <summary>
    /// A transactional id's requests go to its open transaction's cluster, else to where its transactions last ran, else
    /// (an id the proxy has not seen) to its family's write cluster. Initialising the id there fences whatever its last
    /// incarnation left open.
    /// </summary>
    private (string, sbyte, string?) Transaction(RouteTable routes, string? transactionalId) =>
        transactionalId is null ? (routes.Default.Route.Write, TransactionKey, null)
            : (state.Transactions.ClusterOf(transactionalId) ?? routes.ForTransactionalId(transactionalId).Route.Write, TransactionKey, transactionalId);
}
