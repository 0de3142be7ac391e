using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Switchback.Protocol.Records;
using Switchback.Proxy.Routing;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>One line of <c>producer-ids.jsonl</c>: where a client producer's batches of one partition go under one write route.</summary>
public sealed record ProducerSegmentEntry(
    long ProducerId,
    short ProducerEpoch,
    string Topic,
    int Partition,
    string Family,
    string Cluster,
    long WriteEpoch,
    long UpstreamProducerId,
    short UpstreamEpoch,
    int BaseSequence);

/// <summary>
/// Keeps idempotent producers unaware of write switches. A producer id and its sequence numbers belong to one
/// cluster; after a family's writes move, the proxy gives each producer a fresh producer id on the new cluster and
/// rewrites its batches (producer id, epoch, base sequence re-based to start at 0, CRC) so the new cluster sees a
/// well-formed new producer while the client keeps its own id and sequences. Before any switch, batches go through
/// untouched.
/// </summary>
/// <remarks>
/// Every mapped segment is appended to <c>StateDirectory/producer-ids.jsonl</c>, and is on disk before the first
/// batch using it goes upstream; the file is read back at start. A client retrying, through a restarted proxy, a
/// batch whose answer the old proxy never sent so gets the same upstream producer id, epoch and sequence, and the
/// cluster recognises the duplicate. Only segments of the families' current write routes are kept.
/// </remarks>
public sealed class ProducerIdMapper : IAsyncDisposable
{
    public const string FileName = "producer-ids.jsonl";
    internal const int MaxProducers = 200_000;
    private readonly ProxyState _state;
    private readonly JsonLinesLog<ProducerSegmentEntry> _log;
    private readonly ConcurrentDictionary<(long Pid, short Epoch), ProducerMap> _producers = new();
    private readonly Fleet.ControlLog? _shared;

    public ProducerIdMapper(ProxyState state, string stateDirectory, ILogger logger, Fleet.ControlLog? shared = null)
    {
        _state = state;
        _shared = shared;
        if (shared is not null)
        {
            shared.RecordRead += OnSharedRecord;
        }
        _log = new JsonLinesLog<ProducerSegmentEntry>(Path.Combine(stateDirectory, FileName), logger);
        var kept = Compact(_log.Load(), state.Routes.Current, MaxProducers);
        foreach (var entry in kept)
        {
            _producers.GetOrAdd((entry.ProducerId, entry.ProducerEpoch), static _ => new ProducerMap()).Restore(entry);
        }
        _log.Start(kept, LiveSegments);
    }

    /// <summary>Rewrites, in place, the idempotent batches of one partition's records for the route they are about to take.</summary>
    public async ValueTask MapAsync(FamilyRoute route, string topic, int partition, ReadOnlyMemory<byte> records, CancellationToken cancellationToken)
    {
        foreach (var entry in new RecordBatchEnumerator(records, RecordsSource.Produce))
        {
            if (entry.Kind != RecordBatchKind.RecordBatch)
            {
                continue;
            }
            long producerId;
            short producerEpoch;
            int baseSequence;
            {
                var header = entry.Header;
                if (header.ProducerId < 0 || header.IsTransactional)
                {
                    continue;
                }
                (producerId, producerEpoch, baseSequence) = (header.ProducerId, header.ProducerEpoch, header.BaseSequence);
            }
            var key = (producerId, producerEpoch);
            if (!_producers.TryGetValue(key, out var producer))
            {
                if (_producers.Count >= MaxProducers)
                {
                    _producers.Clear(); // bounded: a forgotten producer is re-learnt from its next batch
                }
                producer = _producers.GetOrAdd(key, static _ => new ProducerMap());
            }
            var segment = await producer.SegmentForAsync(this, key, route, topic, partition, baseSequence, cancellationToken).ConfigureAwait(false);
            if (segment.IsIdentity)
            {
                continue;
            }
            var batch = new MutableRecordBatch(MemoryMarshal.AsMemory(entry.Memory).Span);
            batch.ProducerId = segment.UpstreamProducerId;
            batch.ProducerEpoch = segment.UpstreamEpoch;
            batch.BaseSequence = Rebase(baseSequence, segment.BaseSequence);
            batch.RecomputeCrc();
        }
    }

    /// <summary>A mapping another instance of the fleet made: taken up as if read back from this instance's own file.</summary>
    private void OnSharedRecord(long offset, Fleet.ControlRecord record)
    {
        if (record is Fleet.ProducerMappingRecord { Entry: var entry } shared && shared.Instance != _shared!.InstanceId
            && IsCurrent(_state.Routes.Current, entry.Topic, entry.Family, entry.Cluster, entry.WriteEpoch))
        {
            _producers.GetOrAdd((entry.ProducerId, entry.ProducerEpoch), static _ => new ProducerMap()).Restore(entry);
        }
    }

    /// <summary>Sequence numbers wrap from int.MaxValue to 0.</summary>
    internal static int Rebase(int sequence, int baseSequence) => (int)(((long)sequence - baseSequence + int.MaxValue + 1L) % (int.MaxValue + 1L));

    /// <summary>
    /// The entries worth keeping from a log read back at start, in log order: per producer and partition the last
    /// one, if it belongs to its topic's current write route; and those of at most <paramref name="maxProducers"/>
    /// producers, the most recently mapped.
    /// </summary>
    internal static List<ProducerSegmentEntry> Compact(IReadOnlyList<ProducerSegmentEntry> entries, RouteTable routes, int maxProducers)
    {
        var seen = new HashSet<(long, short, string, int)>();
        var producers = new HashSet<(long, short)>();
        var kept = new List<ProducerSegmentEntry>();
        for (var i = entries.Count - 1; i >= 0; i--)
        {
            var entry = entries[i];
            if (!seen.Add((entry.ProducerId, entry.ProducerEpoch, entry.Topic, entry.Partition))
                || !IsCurrent(routes, entry.Topic, entry.Family, entry.Cluster, entry.WriteEpoch))
            {
                continue;
            }
            if (!producers.Contains((entry.ProducerId, entry.ProducerEpoch)))
            {
                if (producers.Count >= maxProducers)
                {
                    continue;
                }
                producers.Add((entry.ProducerId, entry.ProducerEpoch));
            }
            kept.Add(entry);
        }
        kept.Reverse();
        return kept;
    }

    private static bool IsCurrent(RouteTable routes, string topic, string family, string cluster, long writeEpoch)
    {
        var route = routes.ForTopic(topic);
        return route.Family == family && route.Route.Write == cluster && route.WriteEpoch == writeEpoch;
    }

    /// <summary>The mapped segments in memory that belong to current write routes: what a rewrite of the log keeps.</summary>
    private IEnumerable<ProducerSegmentEntry> LiveSegments()
    {
        var routes = _state.Routes.Current;
        foreach (var (client, producer) in _producers)
        {
            foreach (var ((topic, partition), segment) in producer.Partitions)
            {
                if (!segment.IsIdentity && IsCurrent(routes, topic, segment.Family, segment.Cluster, segment.WriteEpoch))
                {
                    yield return new ProducerSegmentEntry(client.Pid, client.Epoch, topic, partition, segment.Family, segment.Cluster,
                        segment.WriteEpoch, segment.UpstreamProducerId, segment.UpstreamEpoch, segment.BaseSequence);
                }
            }
        }
    }

    public ValueTask DisposeAsync() => _log.DisposeAsync();

    /// <summary>Where one partition's batches of one producer currently go; <see cref="Durable"/> completes once it is on disk.</summary>
    private sealed class Segment(string cluster, string family, long writeEpoch, bool isIdentity, long upstreamProducerId, short upstreamEpoch, int baseSequence, Task durable)
    {
        public string Cluster { get; } = cluster;
        public string Family { get; } = family;
        public long WriteEpoch { get; } = writeEpoch;
        public bool IsIdentity { get; } = isIdentity;
        public long UpstreamProducerId { get; } = upstreamProducerId;
        public short UpstreamEpoch { get; } = upstreamEpoch;
        public int BaseSequence { get; } = baseSequence;
        public Task Durable { get; } = durable;
    }

    /// <summary>Completes <paramref name="durable"/> once the entry is on disk and in the fleet's log; a failed share forgets the segment, so the client's retry maps again.</summary>
    private static async Task ShareAsync(Fleet.ControlLog shared, ProducerSegmentEntry entry, Task local, TaskCompletionSource durable, Action forget)
    {
        try
        {
            // Side by side: the batch needs both, neither needs the other (after a switch, each wave of first batches
            // waits for this).
            var appended = shared.AppendAsync(new Fleet.ProducerMappingRecord(shared.InstanceId, entry));
            await Task.WhenAll(local, appended).ConfigureAwait(false);
            durable.TrySetResult();
        }
        catch (Exception e)
        {
            forget();
            durable.TrySetException(e);
        }
    }

    private sealed class ProducerMap
    {
        private readonly ConcurrentDictionary<(string Cluster, string Family, long WriteEpoch), Task<(long, short)>> _upstreamIds = new();

        public ConcurrentDictionary<(string Topic, int Partition), Segment> Partitions { get; } = new();

        /// <summary>Takes up a segment read back from the log, and the upstream id it shares with the producer's other partitions.</summary>
        public void Restore(ProducerSegmentEntry entry)
        {
            Partitions[(entry.Topic, entry.Partition)] = new Segment(entry.Cluster, entry.Family, entry.WriteEpoch, false,
                entry.UpstreamProducerId, entry.UpstreamEpoch, entry.BaseSequence, Task.CompletedTask);
            _upstreamIds.TryAdd((entry.Cluster, entry.Family, entry.WriteEpoch), Task.FromResult((entry.UpstreamProducerId, entry.UpstreamEpoch)));
        }

        public async ValueTask<Segment> SegmentForAsync(ProducerIdMapper mapper, (long Pid, short Epoch) client, FamilyRoute route, string topic, int partition, int baseSequence, CancellationToken cancellationToken)
        {
            var cluster = route.Route.Write;
            if (Partitions.TryGetValue((topic, partition), out var segment) && segment.Cluster == cluster && segment.WriteEpoch == route.WriteEpoch)
            {
                if (!segment.Durable.IsCompleted)
                {
                    await segment.Durable.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                return segment;
            }
            // Idempotent producer ids are allocated by the default route's write cluster (see CoordinatorHandlers).
            if (segment is null && route.WriteEpoch == 0 && cluster == mapper._state.Routes.Current.Default.Route.Write)
            {
                // First batch, no write switch yet, and the producer id is this cluster's own: nothing to map.
                segment = new Segment(cluster, route.Family, route.WriteEpoch, true, -1, -1, 0, Task.CompletedTask);
                Partitions[(topic, partition)] = segment;
                return segment;
            }
            return await CreateAsync(mapper, client, route, topic, partition, baseSequence, cancellationToken).ConfigureAwait(false);
        }

        private async Task<Segment> CreateAsync(ProducerIdMapper mapper, (long Pid, short Epoch) client, FamilyRoute route, string topic, int partition, int baseSequence, CancellationToken cancellationToken)
        {
            var cluster = route.Route.Write;
            if (mapper._shared is { } controlLog)
            {
                // In a fleet, another instance may have mapped this producer (the client came here because its instance
                // died): everything shared so far is read before a new mapping is made, and the shared one is used.
                await controlLog.CaughtUpAsync(cancellationToken).ConfigureAwait(false);
                if (Partitions.TryGetValue((topic, partition), out var known) && known.Cluster == cluster && known.WriteEpoch == route.WriteEpoch)
                {
                    return known;
                }
            }
            var idKey = (cluster, route.Family, route.WriteEpoch);
            var allocation = _upstreamIds.GetOrAdd(idKey,
                static (key, state) => state.Cluster(key.Cluster).InitProducerIdAsync(CancellationToken.None).AsTask(), mapper._state);
            (long, short) ids;
            try
            {
                ids = await allocation.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch when (allocation.IsFaulted || allocation.IsCanceled)
            {
                // A failed allocation is not kept: the client's retry asks the cluster again.
                _upstreamIds.TryRemove(new KeyValuePair<(string, string, long), Task<(long, short)>>(idKey, allocation));
                throw;
            }
            var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var created = new Segment(cluster, route.Family, route.WriteEpoch, false, ids.Item1, ids.Item2, baseSequence, durable.Task);
            // Published before it is queued for the disk, so a rewrite of the log never leaves it out; a batch of the
            // same partition racing in from another connection takes the same segment and waits until it is durable.
            var published = Partitions.AddOrUpdate((topic, partition), static (_, created) => created,
                static (_, existing, created) => existing.Cluster == created.Cluster && existing.WriteEpoch == created.WriteEpoch ? existing : created,
                created);
            if (ReferenceEquals(published, created))
            {
                var entry = new ProducerSegmentEntry(client.Pid, client.Epoch, topic, partition, route.Family, cluster,
                    route.WriteEpoch, ids.Item1, ids.Item2, baseSequence);
                if (mapper._shared is { } fleetLog)
                {
                    // On disk here and in the fleet's log before the first batch uses it.
                    var local = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    await mapper._log.AppendAsync(entry, local).ConfigureAwait(false);
                    _ = ShareAsync(fleetLog, entry, local.Task, durable,
                        () => Partitions.TryRemove(new KeyValuePair<(string, int), Segment>((topic, partition), created)));
                }
                else
                {
                    await mapper._log.AppendAsync(entry, durable).ConfigureAwait(false);
                }
            }
            await published.Durable.WaitAsync(cancellationToken).ConfigureAwait(false);
            return published;
        }
    }
}
