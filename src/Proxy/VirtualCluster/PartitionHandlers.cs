using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Requests addressed to partition leaders: Produce and DeleteRecords (family write route), Fetch, ListOffsets and
/// OffsetForLeaderEpoch (read route). Each is a <see cref="PartitionBatch"/>: every partition is routed to its leader
/// on the routed cluster, or answered with an error of its own (unknown topic, not authorized, no leader, lost
/// broker), and <see cref="BatchExchange"/> sends the parts and merges the answers in the client's order. When
/// everything goes to one broker and nothing needs rewriting, the client's bytes are relayed as they are.
/// </summary>
public sealed partial class PartitionHandlers(ProxyState state)
{
    private TimeSpan Timeout => state.Config.Limits.UpstreamRequestTimeout;

    public ValueTask<Task<PooledFrame>?> ListOffsetsAsync(RequestContext context) =>
        ExchangeAsync(context, new ListOffsetsBatch(context.Decode<ListOffsetsRequest>()), context.Routes);

    public ValueTask<Task<PooledFrame>?> OffsetForLeaderEpochAsync(RequestContext context) =>
        ExchangeAsync(context, new OffsetForLeaderEpochBatch(context.Decode<OffsetForLeaderEpochRequest>()), context.Routes);

    public ValueTask<Task<PooledFrame>?> DeleteRecordsAsync(RequestContext context) =>
        ExchangeAsync(context, new DeleteRecordsBatch(context.Decode<DeleteRecordsRequest>()), context.Routes);

    /// <summary>A fetch the relay path does not take: split per leader, sent as sessionless sub-requests, answers merged.</summary>
    private ValueTask<Task<PooledFrame>?> FetchDecodedAsync(RequestContext context) =>
        ExchangeAsync(context, new FetchBatch(context.Decode<FetchRequest>(), context, state), context.Routes);

    /// <summary>
    /// Routes each entry to its leader, sends the parts and returns the client's answer to come, or null when the
    /// request expects none.
    /// </summary>
    private async ValueTask<Task<PooledFrame>?> ExchangeAsync(RequestContext context, PartitionBatch batch, RouteTable routes)
    {
        var closed = context.Session.Closed;
        var router = new PartitionRouter(state, closed);
        var failures = new ErrorCode[batch.Count];
        var parts = new List<BatchPart>(1);
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch.TopicAt(i) is not { } topic)
            {
                failures[i] = ErrorCode.UnknownTopicId;
                continue;
            }
            var family = routes.ForTopic(topic);
            if (!MayUse(context, family.Family))
            {
                failures[i] = ErrorCode.TopicAuthorizationFailed;
                continue;
            }
            if (batch.IsTopicAdmin && state.Config.IsReservedTopic(topic))
            {
                failures[i] = ErrorCode.TopicAuthorizationFailed; // the fleet's control topic is the proxy's own
                continue;
            }
            var target = await router.ResolveAsync(batch.Writes ? family.Route.Write : family.Route.Read, topic, batch.PartitionAt(i)).ConfigureAwait(false);
            await batch.RoutedAsync(i, family, target, closed).ConfigureAwait(false);
            if (!target.IsRouted)
            {
                failures[i] = target.Error;
                continue;
            }
            BatchPart.For(parts, state.ClustersByOrdinal[target.View!.Ordinal], target.Leader).Indices.Add(i);
        }
        var relay = parts.Count == 1 && !batch.Rewritten && Array.TrueForAll(failures, static f => f == ErrorCode.None);
        await BatchExchange.SendAsync(context, batch, parts, relay, part => Lose(batch, part, failures)).ConfigureAwait(false);
        return batch.ExpectsResponse ? CompleteAsync(context, batch, parts, failures, relay, Timeout + batch.BrokerWait) : null;
    }

    /// <summary>False when the family's allow list leaves the client's principal out.</summary>
    private bool MayUse(RequestContext context, string family) =>
        state.Authorization?.MayUseFamily(context.Session.Principal, family) ?? true;

    private Task<PooledFrame> CompleteAsync(RequestContext context, PartitionBatch batch, List<BatchPart> parts, ErrorCode[] failures, bool relay, TimeSpan timeout) =>
        BatchExchange.CompleteAsync(context, batch, parts, failures, relay, timeout, part => Lose(batch, part, failures), (part, _, error) =>
        {
            // The client looks the leader up again on these, from the proxy's view: have it refreshed.
            if (part.View is { } view && PartitionRouter.IsLeadershipError((short)error))
            {
                PartitionRouter.LeadershipChanged(state, view);
            }
        });

    private static void Lose(PartitionBatch batch, BatchPart part, ErrorCode[] failures)
    {
        var error = batch.LostError(sent: part.View is not null);
        foreach (var index in part.Indices)
        {
            failures[index] = error;
        }
    }

    /// <summary>
    /// The merged answer to a request the relay path sent whole to one broker: that broker's answer, or without one
    /// (<paramref name="answer"/> null) every entry's error for a broker lost before or after the request left.
    /// </summary>
    private Task<PooledFrame> MergeRelayedAsync(RequestContext context, PartitionBatch batch, RelayPlan plan, PooledFrame? answer, bool sent, TimeSpan timeout)
    {
        var failures = new ErrorCode[batch.Count];
        List<BatchPart> parts = [];
        if (answer is not null)
        {
            parts.Add(BatchPart.Answered(state.ClustersByOrdinal[plan.View.Ordinal], plan.Leader, plan.View, batch.Count, answer));
        }
        else
        {
            Array.Fill(failures, batch.LostError(sent));
        }
        return CompleteAsync(context, batch, parts, failures, relay: false, timeout);
    }

    // ---------------------------------------------------------------- Produce

    /// <summary>A produce the relay path does not take: its families' write lanes entered, then routed as a batch.</summary>
    private async ValueTask<Task<PooledFrame>?> ProduceDecodedAsync(RequestContext context)
    {
        var request = context.Decode<ProduceRequest>();
        // A switch may be holding this family's writes: wait at its gate, then route with the table in force.
        List<FamilyTraffic.Lane> lanes;
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
        var batch = new ProduceBatch(request, context, state);
        if (!batch.ExpectsResponse)
        {
            return null;
        }
        var failures = new ErrorCode[batch.Count];
        Array.Fill(failures, ErrorCode.RequestTimedOut);
        return CompleteAsync(context, batch, [], failures, relay: false, Timeout);
    }

    /// <summary>Routes and sends a decoded produce whose write lanes are held; they are let go once its upstream requests settle.</summary>
    private async ValueTask<Task<PooledFrame>?> ProduceDecodedAsync(RequestContext context, ProduceRequest request, List<FamilyTraffic.Lane> lanes)
    {
        try
        {
            // Routed by the table in force now: a request held during a switch goes where the switch sent its family.
            var response = await ExchangeAsync(context, new ProduceBatch(request, context, state), state.Routes.Current).ConfigureAwait(false);
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

    private async ValueTask<List<FamilyTraffic.Lane>> EnterWriteLanesAsync(RequestContext context, ProduceRequest request)
    {
        var lanes = new List<FamilyTraffic.Lane>(1);
        try
        {
            foreach (var topic in request.TopicData)
            {
                var route = context.Routes.ForTopic(topic.Name);
                var family = route.Family;
                var traffic = state.Traffic.For(family);
                if (lanes.Contains(traffic.Writes) || !MayUse(context, family))
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

    private static void ExitAll(List<FamilyTraffic.Lane> lanes)
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
    private void ExitWhenSettled(List<Task> settled, List<FamilyTraffic.Lane> lanes)
    {
        if (settled.Count == 0)
        {
            ExitAll(lanes);
            return;
        }
        _ = Task.WhenAll(settled).WaitAsync(Timeout).ContinueWith(static (t, state) =>
        {
            _ = t.Exception; // failures are the client's answer, not the lane's concern
            ExitAll((List<FamilyTraffic.Lane>)state!);
        }, lanes, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }
}
