using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Records;
using Switchback.Protocol.Routing;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// A request addressed to partition leaders: Produce, Fetch, ListOffsets, OffsetForLeaderEpoch or DeleteRecords. Its
/// entries are the partitions, in the client's order across its topics, matched in answers by topic name and
/// partition (every mention of a partition gets its answer); upstream node ids, topic ids and leader epochs in
/// answers become the client's.
/// </summary>
public abstract class PartitionBatch : EntryBatch
{
    private readonly List<(int Topic, int Partition)> _entries = [];

    /// <param name="partitionCounts">How many partitions each of the client's topics names, in its order.</param>
    /// <param name="rewritten">True when the client's bytes never go upstream as they are.</param>
    protected PartitionBatch(IEnumerable<int> partitionCounts, bool rewritten)
    {
        var topic = 0;
        foreach (var count in partitionCounts)
        {
            for (var p = 0; p < count; p++)
            {
                _entries.Add((topic, p));
            }
            topic++;
        }
        Rewritten = rewritten;
    }

    public override int Count => _entries.Count;

    /// <summary>True when entries go to their family's write cluster (Produce, DeleteRecords), false for its read cluster.</summary>
    public virtual bool Writes => false;

    /// <summary>True for an admin request, which may not name the fleet's control topic (it is the proxy's own).</summary>
    public virtual bool IsTopicAdmin => false;

    /// <summary>How long the request lets a broker take before it answers, beyond a usual round trip.</summary>
    public virtual TimeSpan BrokerWait => TimeSpan.Zero;

    /// <summary>The topic of the entry at an index, or null for a topic id the proxy never handed out.</summary>
    public abstract string? TopicAt(int index);

    public abstract int PartitionAt(int index);

    /// <summary>The error of an entry whose broker was lost, before (<paramref name="sent"/> false) or after its request left.</summary>
    public virtual ErrorCode LostError(bool sent) => ErrorCode.NotLeaderOrFollower;

    /// <summary>Told of each entry the principal may use, with where it goes (or why it goes nowhere), before anything is sent.</summary>
    public virtual ValueTask RoutedAsync(int index, FamilyRoute family, PartitionTarget target, CancellationToken cancellationToken) => default;

    protected (int Topic, int Partition) EntryAt(int index) => _entries[index];

    /// <summary>Runs of the client's entries among <paramref name="indices"/> that share a topic: a narrowed request's topics.</summary>
    protected IEnumerable<(int Topic, List<int> Partitions)> ByTopic(IReadOnlyList<int> indices)
    {
        var run = -1;
        List<int>? partitions = null;
        foreach (var index in indices)
        {
            var (topic, partition) = _entries[index];
            if (topic != run && partitions is not null)
            {
                yield return (run, partitions);
                partitions = null;
            }
            run = topic;
            (partitions ??= []).Add(partition);
        }
        if (partitions is not null)
        {
            yield return (run, partitions);
        }
    }

    /// <summary>The next <paramref name="count"/> merged answers from <paramref name="next"/> on: one topic's partitions.</summary>
    protected static List<T> Take<T>(T[] merged, ref int next, int count)
    {
        var taken = new List<T>(count);
        for (var i = 0; i < count; i++)
        {
            taken.Add(merged[next++]);
        }
        return taken;
    }

    /// <summary>KIP-951 leader hints of one answer, under client-visible ids and the proxy's address, added once per node.</summary>
    protected static async ValueTask AddNodeEndpointsAsync<T>(ProxyState state, ClusterView view, List<T>? source, List<T> target,
        Func<T, int> nodeOf, Func<int, int, T, T> withAddress)
    {
        foreach (var node in source ?? [])
        {
            var id = state.NodeIds.ToVirtual(view.Ordinal, nodeOf(node));
            // A broker without a port is left out of the hints; clients then look its partitions up in Metadata.
            if (!target.Exists(n => nodeOf(n) == id) && await state.BrokerPort(id).ConfigureAwait(false) is { } port)
            {
                target.Add(withAddress(id, port, node));
            }
        }
    }

    /// <summary>Merging by (topic, partition) with the shape of one API's response.</summary>
    internal abstract class Batch<TResponse, TResult>(IEnumerable<int> partitionCounts, bool rewritten)
        : PartitionBatch(partitionCounts, rewritten) where TResponse : IKafkaMessage, new()
    {
        protected abstract IEnumerable<(string Topic, TResult Result)> ResultsOf(TResponse response);
        protected abstract int PartitionOf(TResult result);
        protected abstract short ErrorOf(TResult result);
        protected abstract int ThrottleOf(TResponse response);

        /// <summary>The answer a broker gives a partition it cannot serve.</summary>
        protected abstract TResult Failed(int index, ErrorCode error);

        /// <summary>The client's response from each entry's answer, in its order.</summary>
        protected abstract TResponse Build(TResult[] merged, int throttleTimeMs);

        public override IKafkaMessage Decode(PooledFrame frame, ApiKey apiKey, short version) => FrameCodec.DecodeResponse<TResponse>(frame, apiKey, version);

        public override IKafkaMessage Merge(IReadOnlyList<(IReadOnlyList<int> Indices, IKafkaMessage? Response)> answers,
            IReadOnlyList<ErrorCode> failures, Action<int, ErrorCode> answered)
        {
            var results = new Dictionary<(string, int), TResult>();
            var throttle = 0;
            foreach (var (indices, message) in answers)
            {
                if (message is not TResponse response)
                {
                    continue;
                }
                throttle = Math.Max(throttle, ThrottleOf(response));
                foreach (var (topic, result) in ResultsOf(response))
                {
                    results[(topic, PartitionOf(result))] = result;
                }
                foreach (var index in indices)
                {
                    if (TopicAt(index) is { } topic && results.TryGetValue((topic, PartitionAt(index)), out var result))
                    {
                        answered(index, (ErrorCode)ErrorOf(result));
                    }
                }
            }
            var merged = new TResult[Count];
            for (var i = 0; i < merged.Length; i++)
            {
                // Not answered upstream (unreachable, or no leader): a retriable error makes the client refresh and retry.
                merged[i] = TopicAt(i) is { } topic && results.TryGetValue((topic, PartitionAt(i)), out var result)
                    ? result
                    : Failed(i, failures[i] == ErrorCode.None ? ErrorCode.NotLeaderOrFollower : failures[i]);
            }
            return Build(merged, throttle);
        }
    }
}

/// <summary>
/// Produce: to each family's write cluster, producer ids mapped (or transactional batches rewritten) for the cluster on
/// the way; no answer with acks=0. Answers count towards each family's produce outcomes.
/// </summary>
internal sealed class ProduceBatch : PartitionBatch.Batch<ProduceResponse, ProduceResponse.PartitionProduceResponse>
{
    private readonly ProduceRequest _request;
    private readonly RequestContext _context;
    private readonly ProxyState _state;
    private readonly List<ProduceResponse.NodeEndpoint> _nodeEndpoints = [];

    public ProduceBatch(ProduceRequest request, RequestContext context, ProxyState state)
        : base(request.TopicData.Select(t => t.PartitionData.Count), rewritten: false)
    {
        _request = request;
        _context = context;
        _state = state;
    }

    public override bool Writes => true;
    public override bool ExpectsResponse => _request.Acks != 0;
    public override string? TopicAt(int index) => _request.TopicData[EntryAt(index).Topic].Name;
    public override int PartitionAt(int index) => PartitionDataAt(index).Index;

    private ProduceRequest.PartitionProduceData PartitionDataAt(int index) =>
        _request.TopicData[EntryAt(index).Topic].PartitionData[EntryAt(index).Partition];

    // Sent but not answered: the broker may have written it, which REQUEST_TIMED_OUT says (as a broker does when
    // acks=all times out). NOT_LEADER_OR_FOLLOWER would tell an idempotent producer it was not written, and
    // librdkafka then re-sends it under a bumped epoch: the records are stored twice.
    public override ErrorCode LostError(bool sent) => sent ? ErrorCode.RequestTimedOut : ErrorCode.NotLeaderOrFollower;

    public override async ValueTask RoutedAsync(int index, FamilyRoute family, PartitionTarget target, CancellationToken cancellationToken)
    {
        var topic = TopicAt(index)!;
        var records = PartitionDataAt(index).Records;
        var cluster = family.Route.Write;
        _state.Metrics.Routed(ApiKey.Produce, family.Family, cluster, 1);
        _state.Metrics.Produced(family.Family, cluster, records is { } r ? RecordCounter.Count(r.Span) : 0, records?.Length ?? 0);
        _context.Session.Activity.Used(family.Family, cluster, Listening.ClientUse.Produce);
        if (!target.IsRouted || records is not { } batches)
        {
            return;
        }
        if (_request.TransactionalId is not { } transactionalId)
        {
            await _state.Producers.MapAsync(family, topic, PartitionAt(index), batches, cancellationToken).ConfigureAwait(false);
        }
        else if (await _state.Transactions.MappingForAsync(transactionalId, cluster, mayCreate: false, cancellationToken).ConfigureAwait(false) is { } mapping)
        {
            await _state.Transactions.RewriteAsync(mapping, topic, PartitionAt(index), batches, cancellationToken).ConfigureAwait(false);
        }
    }

    public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
    {
        var narrowed = new ProduceRequest { TransactionalId = _request.TransactionalId, Acks = _request.Acks, TimeoutMs = _request.TimeoutMs };
        foreach (var (topic, partitions) in ByTopic(indices))
        {
            var data = _request.TopicData[topic];
            narrowed.TopicData.Add(new ProduceRequest.TopicProduceData { Name = data.Name, PartitionData = partitions.ConvertAll(p => data.PartitionData[p]) });
        }
        return narrowed;
    }

    /// <summary>A relayed answer goes as it is unless it carries leader hints (or, before v9, errors of several families).</summary>
    public override PooledFrame? Relayed(RequestContext context, PooledFrame frame)
    {
        var version = context.Version;
        var family = context.Routes.ForTopic(_request.TopicData[0].Name);
        if (!ProduceResponseInspector.CanRelayAsIs(frame.Span, version)
            || (version < 9 && !_request.TopicData.TrueForAll(t => ReferenceEquals(context.Routes.ForTopic(t.Name), family))))
        {
            return null;
        }
        // Clean from v9 (the inspection found no error); before, one family's answer is counted from its bytes.
        RecordRelayed(_state, family.Family, frame, version, Count, knownClean: version >= 9, context.ReceivedAt);
        return frame;
    }

    /// <summary>
    /// The outcome of a produce answer relayed as is, for one family: clean when the inspection that let it through
    /// found no error, else counted from its bytes.
    /// </summary>
    public static void RecordRelayed(ProxyState state, string family, PooledFrame frame, short version, int partitions, bool knownClean, long receivedAt)
    {
        var errors = 0;
        if (!knownClean && ProduceResponseInspector.TryCountErrors(frame.Span, version, out var answered, out errors, out var firstError))
        {
            partitions = answered;
            if (errors > 0)
            {
                state.Metrics.ErrorAnswered(ApiKey.Produce, family, firstError, errors);
            }
        }
        state.Metrics.ProduceAnswered(family, partitions, errors, receivedAt);
    }

    public override async ValueTask TranslateAsync(BatchPart part, IKafkaMessage response)
    {
        var answer = (ProduceResponse)response;
        var view = part.View!;
        foreach (var topic in answer.Responses)
        {
            foreach (var partition in topic.PartitionResponses)
            {
                if (partition.CurrentLeader is { } leader)
                {
                    leader.LeaderId = _state.NodeIds.ToVirtual(view.Ordinal, leader.LeaderId);
                    leader.LeaderEpoch = -1; // epochs are per cluster (see Metadata)
                }
            }
        }
        await AddNodeEndpointsAsync(_state, view, answer.NodeEndpoints, _nodeEndpoints, static n => n.NodeId,
            (id, port, n) => new ProduceResponse.NodeEndpoint { NodeId = id, Host = _state.Config.AdvertisedHost, Port = port, Rack = n.Rack }).ConfigureAwait(false);
    }

    protected override IEnumerable<(string Topic, ProduceResponse.PartitionProduceResponse Result)> ResultsOf(ProduceResponse response) =>
        response.Responses.SelectMany(t => t.PartitionResponses, (t, p) => (t.Name, p));

    protected override int PartitionOf(ProduceResponse.PartitionProduceResponse result) => result.Index;
    protected override short ErrorOf(ProduceResponse.PartitionProduceResponse result) => result.ErrorCode;
    protected override int ThrottleOf(ProduceResponse response) => response.ThrottleTimeMs;

    protected override ProduceResponse.PartitionProduceResponse Failed(int index, ErrorCode error) =>
        new() { Index = PartitionAt(index), ErrorCode = (short)error, BaseOffset = -1 };

    protected override ProduceResponse Build(ProduceResponse.PartitionProduceResponse[] merged, int throttleTimeMs)
    {
        var response = new ProduceResponse { ThrottleTimeMs = throttleTimeMs, NodeEndpoints = _nodeEndpoints };
        var next = 0;
        foreach (var topic in _request.TopicData)
        {
            response.Responses.Add(new ProduceResponse.TopicProduceResponse { Name = topic.Name, PartitionResponses = Take(merged, ref next, topic.PartitionData.Count) });
        }
        RecordOutcomes(response);
        return response;
    }

    /// <summary>A merged produce answer's outcome per family: errors by code, and the latency its client saw.</summary>
    private void RecordOutcomes(ProduceResponse merged)
    {
        foreach (var family in merged.Responses.GroupBy(t => _context.Routes.ForTopic(t.Name).Family, StringComparer.Ordinal))
        {
            var partitions = 0;
            var errors = 0;
            foreach (var partition in family.SelectMany(t => t.PartitionResponses))
            {
                partitions++;
                if (partition.ErrorCode != 0)
                {
                    errors++;
                    _state.Metrics.ErrorAnswered(ApiKey.Produce, family.Key, partition.ErrorCode);
                }
            }
            _state.Metrics.ProduceAnswered(family.Key, partitions, errors, _context.ReceivedAt);
        }
    }
}

/// <summary>
/// Fetch: to each family's read cluster, sessionless, with epochs left out and topic ids (v13+) the cluster's own; an
/// id the proxy never handed out is answered UNKNOWN_TOPIC_ID. Only a sessionless fetch before v11 goes as it came.
/// </summary>
internal sealed class FetchBatch : PartitionBatch.Batch<FetchResponse, FetchResponse.PartitionData>
{
    private readonly FetchRequest _request;
    private readonly short _version;
    private readonly RequestContext _context;
    private readonly ProxyState _state;
    private readonly string?[] _names;
    private readonly Guid[] _upstreamIds;
    private readonly List<FetchResponse.NodeEndpoint> _nodeEndpoints = [];
    private short _errorCode;

    public FetchBatch(FetchRequest request, RequestContext context, ProxyState state)
        : base(request.Topics.Select(t => t.Partitions.Count), rewritten: Rewrites(request, context.Version))
    {
        _request = request;
        _version = context.Version;
        _context = context;
        _state = state;
        _names = [.. request.Topics.Select(t => _version >= 13 ? state.TopicIds.NameOf(t.TopicId, state.KnownTopicNames()) : t.Topic)];
        _upstreamIds = new Guid[request.Topics.Count];
    }

    /// <summary>Only a sessionless fetch before v11 (no topic ids, nothing naming a broker in its answer) goes as it came.</summary>
    private static bool Rewrites(FetchRequest request, short version) =>
        version >= 11 || (version >= 7 && (request.SessionId != 0 || request.SessionEpoch != -1));

    public override TimeSpan BrokerWait => TimeSpan.FromMilliseconds(Math.Max(0, _request.MaxWaitMs));
    public override string? TopicAt(int index) => _names[EntryAt(index).Topic];
    public override int PartitionAt(int index) => _request.Topics[EntryAt(index).Topic].Partitions[EntryAt(index).Partition].Partition;

    public override ValueTask RoutedAsync(int index, FamilyRoute family, PartitionTarget target, CancellationToken cancellationToken)
    {
        var topic = EntryAt(index).Topic;
        _context.Session.Activity.Used(family.Family, family.Route.Read, Listening.ClientUse.Fetch);
        if (target.View is { } view && _version >= 13 && view.Topics.TryGetValue(_names[topic]!, out var topicView))
        {
            _upstreamIds[topic] = topicView.Id;
        }
        return default;
    }

    public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
    {
        var narrowed = new FetchRequest
        {
            ClusterId = _request.ClusterId,
            ReplicaId = _request.ReplicaId,
            ReplicaState = _request.ReplicaState,
            MaxWaitMs = _request.MaxWaitMs,
            MinBytes = _request.MinBytes,
            MaxBytes = _request.MaxBytes,
            IsolationLevel = _request.IsolationLevel,
            // Fetch sessions belong to one upstream connection; the proxy always fetches without one.
            SessionId = 0,
            SessionEpoch = -1,
            RackId = _request.RackId,
        };
        foreach (var (topic, partitions) in ByTopic(indices))
        {
            var sent = new FetchRequest.FetchTopic { Topic = _names[topic]!, TopicId = _upstreamIds[topic] }; // only named topics are sent
            foreach (var p in partitions)
            {
                var partition = _request.Topics[topic].Partitions[p];
                // Epochs are per cluster and hidden from clients (see Metadata): never let a stale one fence a fetch.
                partition.CurrentLeaderEpoch = -1;
                partition.LastFetchedEpoch = -1;
                sent.Partitions.Add(partition);
            }
            narrowed.Topics.Add(sent);
        }
        return narrowed;
    }

    public override async ValueTask TranslateAsync(BatchPart part, IKafkaMessage response)
    {
        var answer = (FetchResponse)response;
        var view = part.View!;
        foreach (var topic in answer.Responses)
        {
            if (_version >= 13)
            {
                // By the cluster's own id; a topic it does not know matches none of the client's (no topic is named "").
                topic.Topic = view.TopicsById.TryGetValue(topic.TopicId, out var known) ? known.Name : "";
            }
            foreach (var partition in topic.Partitions)
            {
                if (partition.CurrentLeader is { } leader)
                {
                    leader.LeaderId = _state.NodeIds.ToVirtual(view.Ordinal, leader.LeaderId);
                    leader.LeaderEpoch = -1; // epochs are per cluster (see Metadata)
                }
                if (partition.PreferredReadReplica >= 0)
                {
                    partition.PreferredReadReplica = _state.NodeIds.ToVirtual(view.Ordinal, partition.PreferredReadReplica);
                }
            }
        }
        if (answer.ErrorCode != 0 && _errorCode == 0)
        {
            _errorCode = answer.ErrorCode;
        }
        await AddNodeEndpointsAsync(_state, view, answer.NodeEndpoints, _nodeEndpoints, static n => n.NodeId,
            (id, port, n) => new FetchResponse.NodeEndpoint { NodeId = id, Host = _state.Config.AdvertisedHost, Port = port, Rack = n.Rack }).ConfigureAwait(false);
    }

    protected override IEnumerable<(string Topic, FetchResponse.PartitionData Result)> ResultsOf(FetchResponse response) =>
        response.Responses.SelectMany(t => t.Partitions, (t, p) => (t.Topic, p));

    protected override int PartitionOf(FetchResponse.PartitionData result) => result.PartitionIndex;
    protected override short ErrorOf(FetchResponse.PartitionData result) => result.ErrorCode;
    protected override int ThrottleOf(FetchResponse response) => response.ThrottleTimeMs;

    protected override FetchResponse.PartitionData Failed(int index, ErrorCode error) =>
        new() { PartitionIndex = PartitionAt(index), ErrorCode = (short)error, HighWatermark = -1, Records = null };

    protected override FetchResponse Build(FetchResponse.PartitionData[] merged, int throttleTimeMs)
    {
        var response = new FetchResponse { SessionId = 0, ThrottleTimeMs = throttleTimeMs, ErrorCode = _errorCode, NodeEndpoints = _nodeEndpoints };
        var next = 0;
        for (var t = 0; t < _request.Topics.Count; t++)
        {
            var topic = _request.Topics[t];
            var answered = new FetchResponse.FetchableTopicResponse
            {
                Topic = _names[t] ?? topic.Topic,
                TopicId = topic.TopicId, // the client's (proxy) id, whatever the upstream's
                Partitions = Take(merged, ref next, topic.Partitions.Count),
            };
            response.Responses.Add(answered);
            if (_names[t] is { } name)
            {
                var route = _context.Routes.ForTopic(name);
                _state.Metrics.Fetched(route.Family, route.Route.Read, answered.Partitions.Sum(p => (long)(p.Records?.Length ?? 0)));
            }
        }
        return response;
    }
}

/// <summary>ListOffsets: to each family's read cluster, with leader epochs left out both ways (they are per cluster).</summary>
internal sealed class ListOffsetsBatch(ListOffsetsRequest request)
    : PartitionBatch.Batch<ListOffsetsResponse, ListOffsetsResponse.ListOffsetsPartitionResponse>(request.Topics.Select(t => t.Partitions.Count), rewritten: true)
{
    public override string? TopicAt(int index) => request.Topics[EntryAt(index).Topic].Name;
    public override int PartitionAt(int index) => request.Topics[EntryAt(index).Topic].Partitions[EntryAt(index).Partition].PartitionIndex;

    public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
    {
        var narrowed = new ListOffsetsRequest { ReplicaId = request.ReplicaId, IsolationLevel = request.IsolationLevel, TimeoutMs = request.TimeoutMs };
        foreach (var (topic, partitions) in ByTopic(indices))
        {
            var sent = new ListOffsetsRequest.ListOffsetsTopic { Name = request.Topics[topic].Name };
            foreach (var p in partitions)
            {
                var partition = request.Topics[topic].Partitions[p];
                partition.CurrentLeaderEpoch = -1;
                sent.Partitions.Add(partition);
            }
            narrowed.Topics.Add(sent);
        }
        return narrowed;
    }

    public override ValueTask TranslateAsync(BatchPart part, IKafkaMessage response)
    {
        foreach (var partition in ((ListOffsetsResponse)response).Topics.SelectMany(t => t.Partitions))
        {
            partition.LeaderEpoch = -1;
        }
        return default;
    }

    protected override IEnumerable<(string Topic, ListOffsetsResponse.ListOffsetsPartitionResponse Result)> ResultsOf(ListOffsetsResponse response) =>
        response.Topics.SelectMany(t => t.Partitions, (t, p) => (t.Name, p));

    protected override int PartitionOf(ListOffsetsResponse.ListOffsetsPartitionResponse result) => result.PartitionIndex;
    protected override short ErrorOf(ListOffsetsResponse.ListOffsetsPartitionResponse result) => result.ErrorCode;
    protected override int ThrottleOf(ListOffsetsResponse response) => response.ThrottleTimeMs;

    protected override ListOffsetsResponse.ListOffsetsPartitionResponse Failed(int index, ErrorCode error) =>
        new() { PartitionIndex = PartitionAt(index), ErrorCode = (short)error };

    protected override ListOffsetsResponse Build(ListOffsetsResponse.ListOffsetsPartitionResponse[] merged, int throttleTimeMs)
    {
        var response = new ListOffsetsResponse { ThrottleTimeMs = throttleTimeMs };
        var next = 0;
        foreach (var topic in request.Topics)
        {
            response.Topics.Add(new ListOffsetsResponse.ListOffsetsTopicResponse { Name = topic.Name, Partitions = Take(merged, ref next, topic.Partitions.Count) });
        }
        return response;
    }
}

/// <summary>OffsetForLeaderEpoch: to each family's read cluster.</summary>
internal sealed class OffsetForLeaderEpochBatch(OffsetForLeaderEpochRequest request)
    : PartitionBatch.Batch<OffsetForLeaderEpochResponse, OffsetForLeaderEpochResponse.EpochEndOffset>(request.Topics.Select(t => t.Partitions.Count), rewritten: true)
{
    public override string? TopicAt(int index) => request.Topics[EntryAt(index).Topic].Topic;
    public override int PartitionAt(int index) => request.Topics[EntryAt(index).Topic].Partitions[EntryAt(index).Partition].Partition;

    public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
    {
        var narrowed = new OffsetForLeaderEpochRequest { ReplicaId = request.ReplicaId };
        foreach (var (topic, partitions) in ByTopic(indices))
        {
            var asked = request.Topics[topic];
            narrowed.Topics.Add(new OffsetForLeaderEpochRequest.OffsetForLeaderTopic { Topic = asked.Topic, Partitions = partitions.ConvertAll(p => asked.Partitions[p]) });
        }
        return narrowed;
    }

    protected override IEnumerable<(string Topic, OffsetForLeaderEpochResponse.EpochEndOffset Result)> ResultsOf(OffsetForLeaderEpochResponse response) =>
        response.Topics.SelectMany(t => t.Partitions, (t, p) => (t.Topic, p));

    protected override int PartitionOf(OffsetForLeaderEpochResponse.EpochEndOffset result) => result.Partition;
    protected override short ErrorOf(OffsetForLeaderEpochResponse.EpochEndOffset result) => result.ErrorCode;
    protected override int ThrottleOf(OffsetForLeaderEpochResponse response) => response.ThrottleTimeMs;

    protected override OffsetForLeaderEpochResponse.EpochEndOffset Failed(int index, ErrorCode error) =>
        new() { Partition = PartitionAt(index), ErrorCode = (short)error };

    protected override OffsetForLeaderEpochResponse Build(OffsetForLeaderEpochResponse.EpochEndOffset[] merged, int throttleTimeMs)
    {
        var response = new OffsetForLeaderEpochResponse { ThrottleTimeMs = throttleTimeMs };
        var next = 0;
        foreach (var topic in request.Topics)
        {
            response.Topics.Add(new OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult { Topic = topic.Topic, Partitions = Take(merged, ref next, topic.Partitions.Count) });
        }
        return response;
    }
}

/// <summary>
/// DeleteRecords: to each family's write cluster. Its answer is merged even when relayed, so that leadership errors
/// in it have the proxy's view refreshed.
/// </summary>
internal sealed class DeleteRecordsBatch(DeleteRecordsRequest request)
    : PartitionBatch.Batch<DeleteRecordsResponse, DeleteRecordsResponse.DeleteRecordsPartitionResult>(request.Topics.Select(t => t.Partitions.Count), rewritten: false)
{
    public override bool Writes => true;
    public override bool IsTopicAdmin => true;
    public override TimeSpan BrokerWait => TimeSpan.FromMilliseconds(Math.Max(0, request.TimeoutMs));
    public override string? TopicAt(int index) => request.Topics[EntryAt(index).Topic].Name;
    public override int PartitionAt(int index) => request.Topics[EntryAt(index).Topic].Partitions[EntryAt(index).Partition].PartitionIndex;
    public override PooledFrame? Relayed(RequestContext context, PooledFrame frame) => null;

    public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
    {
        var narrowed = new DeleteRecordsRequest { TimeoutMs = request.TimeoutMs, UnknownTaggedFields = request.UnknownTaggedFields };
        foreach (var (topic, partitions) in ByTopic(indices))
        {
            var asked = request.Topics[topic];
            narrowed.Topics.Add(new DeleteRecordsRequest.DeleteRecordsTopic
            {
                Name = asked.Name,
                UnknownTaggedFields = asked.UnknownTaggedFields,
                Partitions = partitions.ConvertAll(p => asked.Partitions[p]),
            });
        }
        return narrowed;
    }

    protected override IEnumerable<(string Topic, DeleteRecordsResponse.DeleteRecordsPartitionResult Result)> ResultsOf(DeleteRecordsResponse response) =>
        response.Topics.SelectMany(t => t.Partitions, (t, p) => (t.Name, p));

    protected override int PartitionOf(DeleteRecordsResponse.DeleteRecordsPartitionResult result) => result.PartitionIndex;
    protected override short ErrorOf(DeleteRecordsResponse.DeleteRecordsPartitionResult result) => result.ErrorCode;
    protected override int ThrottleOf(DeleteRecordsResponse response) => response.ThrottleTimeMs;

    protected override DeleteRecordsResponse.DeleteRecordsPartitionResult Failed(int index, ErrorCode error) =>
        new() { PartitionIndex = PartitionAt(index), LowWatermark = -1, ErrorCode = (short)error };

    protected override DeleteRecordsResponse Build(DeleteRecordsResponse.DeleteRecordsPartitionResult[] merged, int throttleTimeMs)
    {
        var response = new DeleteRecordsResponse { ThrottleTimeMs = throttleTimeMs };
        var next = 0;
        foreach (var topic in request.Topics)
        {
            response.Topics.Add(new DeleteRecordsResponse.DeleteRecordsTopicResult { Name = topic.Name, Partitions = Take(merged, ref next, topic.Partitions.Count) });
        }
        return response;
    }
}
