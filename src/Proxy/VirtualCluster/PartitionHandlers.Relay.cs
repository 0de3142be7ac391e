using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Records;
using Switchback.Protocol.Routing;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// The common case of Produce and Fetch, relayed as bytes: every partition leads on one broker of the routed
/// cluster, known to the current view. The request is read with the routing readers (no typed decode), rewritten
/// in place where needed (producer ids after a switch; Fetch sessions, epochs and topic ids) and sent whole. Anything
/// else (a split across brokers or families, an unknown topic or leader, a family the principal may not use, an
/// incremental fetch) takes the decoded path.
/// </summary>
public sealed partial class PartitionHandlers
{
    // Kafka's own limit is 249; a longer name is not a topic any cluster has, and takes the decoded path.
    private const int MaxTopicNameChars = 256;
    // The family label of a fetch answer for topics of several families (its bytes are not split).
    private const string SeveralFamilies = "*";

    private byte[]? _transactionalIdUtf8;
    private string? _transactionalId;

    // ---------------------------------------------------------------- Produce

    /// <summary>
    /// Routes and sends a Produce; the answer, when one is expected, is awaited once (a relayed answer's
    /// <see cref="ValueTask{TResult}"/> is pooled).
    /// </summary>
    public async ValueTask<ValueTask<PooledFrame>?> ProduceAsync(RequestContext context)
    {
        if (!TryReadWriteFamily(context, out var family, out var acks, out var transactionalId) || !MayUse(context, family))
        {
            return RequestDispatcher.Answer(await ProduceDecodedAsync(context).ConfigureAwait(false));
        }
        // A switch may be holding this family's writes: wait at its gate, then route with the table in force.
        var traffic = state.Traffic.For(family);
        var lane = traffic.Writes;
        // Records of an open transaction finish where it began; the switch waits for the transaction instead.
        var bypass = transactionalId is not null && state.Transactions.IsOpenIn(transactionalId, family);
        try
        {
            await lane.EnterAsync(Timeout, context.Session.Closed, bypass).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return RequestDispatcher.Answer(TimedOutProduce(context, context.Decode<ProduceRequest>()));
        }

        var plan = default(RelayPlan);
        FamilyRoute? route;
        TransactionalProducers.Mapping? mapping = null;
        ProduceRequest? decoded = null;
        try
        {
            var routes = state.Routes.Current;
            route = family == FamilyRoute.DefaultFamilyName ? routes.Default : routes.Find(family);
            if (route is not null && transactionalId is not null
                && await state.Transactions.MappingForAsync(transactionalId, route.Route.Write, mayCreate: false,
                    context.Session.Closed).ConfigureAwait(false) is { } found)
            {
                mapping = found;
            }
            if (route is null || !TryPlanProduce(context, routes, route, transactionalId is null, out plan))
            {
                decoded = context.Decode<ProduceRequest>();
            }
        }
        catch
        {
            lane.Exit();
            throw;
        }
        if (decoded is not null || route is null)
        {
            return RequestDispatcher.Answer(await ProduceDecodedAsync(context, decoded!, [lane]).ConfigureAwait(false)); // it owns the lane now
        }
        state.Metrics.Routed(ApiKey.Produce, route.Family, route.Route.Write, plan.Partitions);
        state.Metrics.Produced(route.Family, route.Route.Write, plan.Records, plan.Bytes);
        context.Session.Activity.Used(route.Family, route.Route.Write, Listening.ClientUse.Produce);
        return await RelayProduceAsync(context, route, plan, mapping, acks, lane).ConfigureAwait(false);
    }

    /// <summary>
    /// The family every topic of the request belongs to, with acks and the transactional id; false when the topics
    /// span families (several lanes) or the request is not one the routing reader knows.
    /// </summary>
    private bool TryReadWriteFamily(RequestContext context, out string family, out short acks, out string? transactionalId)
    {
        family = "";
        acks = 0;
        transactionalId = null;
        if (context.Version > ProduceRequestRouting.MaxVersion)
        {
            return false;
        }
        var routing = new ProduceRequestRouting(context.Body.Span, context.Version);
        acks = routing.Acks;
        if (routing.HasTransactionalId)
        {
            transactionalId = TransactionalIdString(routing.TransactionalId);
        }
        Span<char> name = stackalloc char[MaxTopicNameChars];
        FamilyRoute? first = null;
        while (routing.TryReadTopic(out var topic))
        {
            if (!TryDecodeName(topic.Name, name, out var chars))
            {
                return false;
            }
            var route = context.Routes.ForTopic(name[..chars]);
            if (first is null)
            {
                first = route;
            }
            else if (!ReferenceEquals(route, first))
            {
                return false;
            }
        }
        if (first is null)
        {
            return false; // no topic: the decoded path answers it
        }
        family = first.Family;
        return true;
    }

    /// <summary>A producer sends its transactional id with every request: decoded once per connection, not per request.</summary>
    private string TransactionalIdString(ReadOnlySpan<byte> utf8)
    {
        if (_transactionalId is null || !utf8.SequenceEqual(_transactionalIdUtf8))
        {
            _transactionalId = Encoding.UTF8.GetString(utf8);
            _transactionalIdUtf8 = utf8.ToArray();
        }
        return _transactionalId;
    }

    /// <summary>Where a relayed request goes, and what its records need on the way.</summary>
    private readonly record struct RelayPlan(ClusterView View, int Leader, int Partitions, bool RewritesBatches, long Records = 0, long Bytes = 0, string? Family = null);

    /// <summary>
    /// True when every partition leads on one broker of the family's write cluster, by the current view. Reads only:
    /// a false answer leaves the request as it came, for the decoded path.
    /// </summary>
    private bool TryPlanProduce(RequestContext context, RouteTable routes, FamilyRoute route, bool mapsProducerIds, out RelayPlan plan)
    {
        plan = default;
        if (FreshView(route.Route.Write) is not { } view)
        {
            return false;
        }
        var body = context.Body;
        var routing = new ProduceRequestRouting(body.Span, context.Version);
        var topics = view.Topics.GetAlternateLookup<ReadOnlySpan<char>>();
        Span<char> name = stackalloc char[MaxTopicNameChars];
        var leader = -1;
        var partitions = 0;
        var idempotent = false;
        long records = 0, bytes = 0;
        while (routing.TryReadTopic(out var topic))
        {
            if (!TryDecodeName(topic.Name, name, out var chars)
                || !ReferenceEquals(routes.ForTopic(name[..chars]), route)
                || !topics.TryGetValue(name[..chars], out var topicView))
            {
                return false;
            }
            while (routing.TryReadPartition(out var partition))
            {
                if (!TryLeader(view, topicView, partition.Index, ref leader))
                {
                    return false;
                }
                partitions++;
                if (!partition.RecordsAreNull)
                {
                    bytes += partition.RecordsLength;
                    records += RecordCounter.Count(body.Span.Slice(partition.RecordsOffset, partition.RecordsLength));
                }
                if (mapsProducerIds && !idempotent && !partition.RecordsAreNull)
                {
                    idempotent = HasIdempotentBatch(body.Slice(partition.RecordsOffset, partition.RecordsLength));
                }
            }
        }
        routing.ReadToEnd();
        plan = new RelayPlan(view, leader, partitions, idempotent, records, bytes);
        return leader >= 0;
    }

    /// <summary>Batches <see cref="ProducerIdMapper.MapAsync"/> looks at: a producer id, not transactional.</summary>
    private static bool HasIdempotentBatch(ReadOnlyMemory<byte> records)
    {
        foreach (var entry in new RecordBatchEnumerator(records, RecordsSource.Produce))
        {
            if (entry.Kind == RecordBatchKind.RecordBatch && entry.Header is { ProducerId: >= 0, IsTransactional: false })
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Sends the request whole; the lane is let go once its answer settles (or never comes in time).</summary>
    private async ValueTask<ValueTask<PooledFrame>?> RelayProduceAsync(RequestContext context, FamilyRoute route, RelayPlan plan,
        TransactionalProducers.Mapping? mapping, short acks, FamilyTraffic.Lane lane)
    {
        var answering = false;
        try
        {
            if (plan.RewritesBatches || mapping is not null)
            {
                await RewriteBatchesAsync(context, route, plan.View, mapping).ConfigureAwait(false);
            }
            var expectResponse = acks != 0;
            PendingResponse? pending;
            try
            {
                var connection = await context.Session.Upstreams.GetAsync(plan.View, plan.Leader, context.Session.Closed).ConfigureAwait(false);
                pending = await connection.SendAsync(context.Frame.Memory, expectResponse, context.Session.Closed).ConfigureAwait(false);
            }
            catch (UpstreamUnavailableException)
            {
                if (!expectResponse)
                {
                    return null;
                }
                return new ValueTask<PooledFrame>(MergeRelayedAsync(context, new ProduceBatch(context.Decode<ProduceRequest>(), context, state), plan,
                    answer: null, sent: false, Timeout));
            }
            if (pending is null)
            {
                return null;
            }
            // From v10 an answer may carry leader hints and need the full merge, which needs the request's partitions:
            // they are kept in a small outline, as the request buffer is reused once this returns.
            byte[]? outline = null;
            var outlineLength = 0;
            if (context.Version >= 10)
            {
                var body = context.Body.Span;
                outline = ArrayPool<byte>.Shared.Rent(ProduceRequestOutline.Measure(body, context.Version));
                outlineLength = ProduceRequestOutline.Write(body, context.Version, outline);
            }
            answering = true;
            return AnswerProduceAsync(context.LetGoAfterDispatch(), route.Family, plan, pending, lane, outline, outlineLength, Stopwatch.GetTimestamp());
        }
        finally
        {
            if (!answering)
            {
                lane.Exit();
            }
        }
    }

    /// <summary>
    /// Producer ids mapped, or transactional batches rewritten, in place in the request buffer before it is sent. Each
    /// partition's batches are a region of their own, so partitions are mapped side by side: the first request after a
    /// switch waits for its partitions' new mappings to reach the disk together (one group commit), not one by one.
    /// </summary>
    private async ValueTask RewriteBatchesAsync(RequestContext context, FamilyRoute route, ClusterView view, TransactionalProducers.Mapping? mapping)
    {
        var cursor = default(ProduceRoutingCursor);
        string? topic = null;
        List<Task>? waiting = null;
        while (NextRecords(context, view, ref cursor, ref topic, out var partition, out var records))
        {
            var rewrite = mapping is null
                ? state.Producers.MapAsync(route, topic!, partition, records, context.Session.Closed)
                : state.Transactions.RewriteAsync(mapping, topic!, partition, records, context.Session.Closed);
            if (rewrite.IsCompletedSuccessfully)
            {
                rewrite.GetAwaiter().GetResult(); // the common case: every mapping already known
            }
            else
            {
                (waiting ??= []).Add(rewrite.AsTask());
            }
        }
        if (waiting is not null)
        {
            await Task.WhenAll(waiting).ConfigureAwait(false);
        }
    }

    /// <summary>The next partition with records after <paramref name="cursor"/>, and its topic (as the view names it).</summary>
    private static bool NextRecords(RequestContext context, ClusterView view, ref ProduceRoutingCursor cursor, ref string? topic,
        out int partition, out ReadOnlyMemory<byte> records)
    {
        var body = context.Body;
        var routing = new ProduceRequestRouting(body.Span, context.Version, cursor);
        Span<char> name = stackalloc char[MaxTopicNameChars];
        while (true)
        {
            if (routing.TryReadPartition(out var next))
            {
                if (next.RecordsAreNull)
                {
                    continue;
                }
                cursor = routing.Cursor;
                partition = next.Index;
                records = body.Slice(next.RecordsOffset, next.RecordsLength);
                return true;
            }
            if (!routing.TryReadTopic(out var nextTopic))
            {
                cursor = routing.Cursor;
                partition = -1;
                records = default;
                return false;
            }
            // Planned with the same view: the topic is there.
            TryDecodeName(nextTopic.Name, name, out var chars);
            topic = view.Topics.GetAlternateLookup<ReadOnlySpan<char>>()[name[..chars]].Name;
        }
    }

    // Pooled: the client session awaits the answer once, after which the runtime reuses its state machine.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<PooledFrame> AnswerProduceAsync(DispatchedRequest request, string family, RelayPlan plan, PendingResponse pending, FamilyTraffic.Lane lane,
        byte[]? outline, int outlineLength, long sentAt)
    {
        try
        {
            PooledFrame? frame = null;
            try
            {
                frame = await pending.WaitAsync(Timeout, request.Session.Closed).ConfigureAwait(false);
            }
            catch (UpstreamUnavailableException) when (outline is not null)
            {
                // answered below: REQUEST_TIMED_OUT per partition
            }
            finally
            {
                ExitWhenSettled(lane, pending, sentAt);
            }
            if (outline is null || (frame is not null && ProduceResponseInspector.CanRelayAsIs(frame.Span, request.Version)))
            {
                // Before v10 nothing in a Produce answer names a broker: relayed as is, as a broker answers.
                ProduceBatch.RecordRelayed(state, family, frame!, request.Version, plan.Partitions, knownClean: outline is not null, request.ReceivedAt);
                BinaryPrimitives.WriteInt32BigEndian(frame!.Span, request.CorrelationId);
                return frame;
            }
            // Merged with a context of its own: the dispatcher has reused the request's.
            var context = request.ToContext();
            var decoded = FrameCodec.DecodeBody<ProduceRequest>(outline.AsMemory(0, outlineLength), request.Version);
            return await MergeRelayedAsync(context, new ProduceBatch(decoded, context, state), plan, frame, sent: true, Timeout).ConfigureAwait(false);
        }
        finally
        {
            pending.Release(); // its wait's result is taken (or it is left to the GC); the connection reuses it
            if (outline is not null)
            {
                ArrayPool<byte>.Shared.Return(outline);
            }
        }
    }

    /// <summary>
    /// A produce leaves the drain count when its upstream request has settled (answered, or its connection failed),
    /// not when its client stops waiting: a client that goes away does not take back a write already on its way to
    /// the old cluster, and a switch must not flip until that write has landed or failed. An answer that never comes
    /// holds the lane no longer than the upstream request timeout.
    /// </summary>
    private void ExitWhenSettled(FamilyTraffic.Lane lane, PendingResponse pending, long sentAt)
    {
        var left = Timeout - Stopwatch.GetElapsedTime(sentAt);
        if (pending.Settled.IsCompleted || left <= TimeSpan.Zero)
        {
            lane.Exit();
            return;
        }
        // The client went away first (rare): wait on for the answer, within what is left of the timeout.
        _ = pending.Settled.WaitAsync(left).ContinueWith(static (t, state) =>
        {
            _ = t.Exception; // failures are the client's answer, not the lane's concern
            ((FamilyTraffic.Lane)state!).Exit();
        }, lane, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    // ---------------------------------------------------------------- Fetch

    /// <summary>Routes and sends a Fetch; its answer is awaited once (a relayed answer's <see cref="ValueTask{TResult}"/> is pooled).</summary>
    public async ValueTask<ValueTask<PooledFrame>?> FetchAsync(RequestContext context)
    {
        if (!TryPlanFetch(context, out var plan, out var maxWaitMs))
        {
            return RequestDispatcher.Answer(await FetchDecodedAsync(context).ConfigureAwait(false));
        }
        // Answers from v11 may need the full merge, which needs the request as the client sent it: a copy is kept
        // (Fetch requests are small), as the request buffer is rewritten below and reused once this returns.
        var body = context.Body;
        byte[]? original = null;
        if (context.Version >= 11)
        {
            original = ArrayPool<byte>.Shared.Rent(body.Length);
            body.Span.CopyTo(original);
        }
        var answering = false;
        try
        {
            if (!FetchRequestRewriter.TryRewriteInPlace(MemoryMarshal.AsMemory(body).Span, context.Version, new UpstreamTopicIds(state.TopicIds, plan.View)))
            {
                return RequestDispatcher.Answer(await FetchDecodedAsync(context).ConfigureAwait(false)); // left as it came
            }
            PendingResponse? pending;
            try
            {
                var connection = await context.Session.Upstreams.GetAsync(plan.View, plan.Leader, context.Session.Closed).ConfigureAwait(false);
                pending = await connection.SendAsync(context.Frame.Memory, expectResponse: true, context.Session.Closed).ConfigureAwait(false);
            }
            catch (UpstreamUnavailableException)
            {
                var request = FrameCodec.DecodeBody<FetchRequest>(original is null ? body : original.AsMemory(0, body.Length), context.Version);
                return new ValueTask<PooledFrame>(MergeRelayedAsync(context, new FetchBatch(request, context, state), plan, answer: null, sent: false, Timeout));
            }
            answering = true;
            var timeout = Timeout + TimeSpan.FromMilliseconds(Math.Max(0, maxWaitMs));
            return AnswerFetchAsync(context.LetGoAfterDispatch(), plan, pending!, original, body.Length, timeout);
        }
        finally
        {
            if (!answering && original is not null)
            {
                ArrayPool<byte>.Shared.Return(original);
            }
        }
    }

    /// <summary>True when every partition leads on one broker of one read cluster, by the current view, and the fetch is not incremental.</summary>
    private bool TryPlanFetch(RequestContext context, out RelayPlan plan, out int maxWaitMs)
    {
        plan = default;
        maxWaitMs = 0;
        if (context.Version > FetchRequestRouting.MaxVersion)
        {
            return false;
        }
        var routing = new FetchRequestRouting(context.Body.Span, context.Version);
        maxWaitMs = routing.MaxWaitMs;
        var usesIds = context.Version >= FetchRequestRouting.FirstTopicIdVersion;
        Span<char> buffer = stackalloc char[MaxTopicNameChars];
        ClusterView? view = null;
        var leader = -1;
        var partitions = 0;
        string? family = null;
        while (routing.TryReadTopic(out var topic))
        {
            scoped ReadOnlySpan<char> name;
            if (usesIds)
            {
                if (state.TopicIds.NameOf(topic.TopicId) is not { } known)
                {
                    return false; // maybe a topic not seen yet, or unknown: the decoded path looks further
                }
                name = known;
            }
            else if (TryDecodeName(topic.Name, buffer, out var chars))
            {
                name = buffer[..chars];
            }
            else
            {
                return false;
            }
            var route = context.Routes.ForTopic(name);
            if (!MayUse(context, route.Family))
            {
                return false; // answered per partition by the decoded path
            }
            var cluster = route.Route.Read;
            context.Session.Activity.Used(route.Family, cluster, Listening.ClientUse.Fetch);
            family = family is null || ReferenceEquals(family, route.Family) ? route.Family : SeveralFamilies;
            if (view is null)
            {
                if (FreshView(cluster) is not { } fresh)
                {
                    return false;
                }
                view = fresh;
            }
            else if (view.ClusterName != cluster)
            {
                return false;
            }
            if (!view.Topics.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name, out var topicView) || (usesIds && topicView.Id == Guid.Empty))
            {
                return false;
            }
            while (routing.TryReadPartition(out var partition))
            {
                if (!TryLeader(view, topicView, partition.Index, ref leader))
                {
                    return false;
                }
                partitions++;
            }
        }
        if (view is null || leader < 0 || routing.ForgottenTopicCount > 0)
        {
            return false;
        }
        plan = new RelayPlan(view, leader, partitions, RewritesBatches: false, Family: family);
        return true;
    }

    // Pooled: the client session awaits the answer once, after which the runtime reuses its state machine.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<PooledFrame> AnswerFetchAsync(DispatchedRequest request, RelayPlan plan, PendingResponse pending, byte[]? original, int length, TimeSpan timeout)
    {
        try
        {
            PooledFrame? frame = null;
            try
            {
                frame = await pending.WaitAsync(timeout, request.Session.Closed).ConfigureAwait(false);
            }
            catch (UpstreamUnavailableException) when (original is not null)
            {
                // answered below, per partition
            }
            if (original is null)
            {
                // Before v11 nothing in a Fetch answer names a broker or a topic id, and a sessionless fetch is answered with session id 0.
                state.Metrics.Fetched(plan.Family ?? SeveralFamilies, plan.View.ClusterName, frame!.Length);
                BinaryPrimitives.WriteInt32BigEndian(frame!.Span, request.CorrelationId);
                return frame;
            }
            if (frame is not null && FetchResponseRewriter.TryRewriteInPlace(frame.Span, request.Version, new ClientTopicIds(state, plan.View)))
            {
                state.Metrics.Fetched(plan.Family ?? SeveralFamilies, plan.View.ClusterName, frame.Length);
                BinaryPrimitives.WriteInt32BigEndian(frame.Span, request.CorrelationId);
                return frame;
            }
            // Merged with a context of its own: the dispatcher has reused the request's.
            var context = request.ToContext();
            var decoded = FrameCodec.DecodeBody<FetchRequest>(original.AsMemory(0, length), request.Version);
            return await MergeRelayedAsync(context, new FetchBatch(decoded, context, state), plan, frame, sent: true, timeout).ConfigureAwait(false);
        }
        finally
        {
            pending.Release(); // its wait's result is taken (or it is left to the GC); the connection reuses it
            if (original is not null)
            {
                ArrayPool<byte>.Shared.Return(original);
            }
        }
    }

    /// <summary>Upstream topic ids in a Fetch answer become the proxy's; upstream node ids become virtual ones.</summary>
    private readonly struct ClientTopicIds(ProxyState state, ClusterView view) : IFetchAnswerIdentities
    {
        public bool TryMapTopicId(Guid upstreamId, out Guid clientId)
        {
            if (view.TopicsById.TryGetValue(upstreamId, out var topic))
            {
                clientId = state.TopicIds.IdOf(topic.Name);
                return true;
            }
            clientId = Guid.Empty;
            return false;
        }

        public int MapNode(int upstreamNodeId) => state.NodeIds.ToVirtual(view.Ordinal, upstreamNodeId);
    }

    /// <summary>The proxy's topic ids in a Fetch request become the upstream cluster's.</summary>
    private readonly struct UpstreamTopicIds(TopicIds ids, ClusterView view) : IFetchRequestTopicIds
    {
        public bool TryMapTopicId(Guid clientId, out Guid upstreamId)
        {
            if (ids.NameOf(clientId) is { } name && view.Topics.TryGetValue(name, out var topic) && topic.Id != Guid.Empty)
            {
                upstreamId = topic.Id;
                return true;
            }
            upstreamId = Guid.Empty;
            return false;
        }
    }

    // ---------------------------------------------------------------- shared

    /// <summary>The cluster's view, unless there is none yet or it is due for a refresh (the decoded path refreshes it).</summary>
    private ClusterView? FreshView(string cluster) =>
        state.Cluster(cluster).View is { } view && DateTimeOffset.UtcNow - view.FetchedAt < state.Config.Limits.MetadataRefreshInterval ? view : null;

    /// <summary>Checks a partition leads on a known broker, the same as every partition before it (<paramref name="leader"/>, -1 at first).</summary>
    private static bool TryLeader(ClusterView view, TopicView topic, int index, ref int leader)
    {
        if (topic.Partition(index) is not { Leader: >= 0 } partition || (partition.Leader != leader && leader >= 0)
            || !view.BrokersById.ContainsKey(partition.Leader))
        {
            return false;
        }
        leader = partition.Leader;
        return true;
    }

    private static bool TryDecodeName(ReadOnlySpan<byte> utf8, Span<char> destination, out int chars) =>
        Encoding.UTF8.TryGetChars(utf8, destination, out chars);
}
