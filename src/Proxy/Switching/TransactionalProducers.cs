using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Switchback.Protocol.Records;
using Switchback.Proxy.Routing;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>One line of <c>transactional-ids.jsonl</c>.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(TransactionOriginEntry), "origin")]
[JsonDerivedType(typeof(TransactionMappingEntry), "mapping")]
[JsonDerivedType(typeof(TransactionSequenceBaseEntry), "base")]
[JsonDerivedType(typeof(TransactionBegunEntry), "begun")]
[JsonDerivedType(typeof(TransactionEndedEntry), "ended")]
public abstract record TransactionalIdEntry(string TransactionalId);

/// <summary>The client (re)initialised the transactional id on this write route; any mapping of it ends.</summary>
public sealed record TransactionOriginEntry(string TransactionalId, string Cluster, long WriteEpoch, int TransactionTimeoutMs)
    : TransactionalIdEntry(TransactionalId);

/// <summary>The proxy initialised the transactional id on this write route and uses this producer id and epoch instead of the client's.</summary>
public sealed record TransactionMappingEntry(string TransactionalId, string Cluster, long WriteEpoch, long ProducerId, short Epoch)
    : TransactionalIdEntry(TransactionalId);

/// <summary>The client sequence that maps to 0 on one partition under the mapping of the same route.</summary>
public sealed record TransactionSequenceBaseEntry(string TransactionalId, string Cluster, long WriteEpoch, string Topic, int Partition, int BaseSequence)
    : TransactionalIdEntry(TransactionalId);

/// <summary>A transaction of the id began on its write cluster (wall-clock time), with the producer's timeout when known.</summary>
public sealed record TransactionBegunEntry(string TransactionalId, long BegunAtUnixMs, int? TransactionTimeoutMs)
    : TransactionalIdEntry(TransactionalId);

/// <summary>The transaction of the id ended (EndTxn answered, or the id initialised again).</summary>
public sealed record TransactionEndedEntry(string TransactionalId) : TransactionalIdEntry(TransactionalId);

/// <summary>
/// Carries transactional producers across a write switch. A transactional id's producer id and epoch come from the
/// cluster its client initialised on; a switch only happens between transactions (the coordinator waits for open
/// ones), so when the next transaction of that id starts on the new write cluster the proxy initialises the same
/// transactional id there and rewrites the producer id and epoch of every transactional request (and of the
/// transaction's record batches, with sequences re-based) to the new cluster's. A client that re-initialises on the
/// new cluster needs no mapping any more.
/// </summary>
/// <remarks>
/// Where each id was initialised, the mappings and their sequence bases are appended to
/// <c>StateDirectory/transactional-ids.jsonl</c>, each on disk before the client or the cluster can act on it, and
/// read back at start: after a restart the proxy still knows which client producer ids belong to another cluster,
/// and a transaction open across the restart goes on under the same upstream producer id, epoch and sequences.
/// Transactions that began and have not ended are kept too (until the broker would have aborted them), so a write
/// switch after a restart still waits for a transaction begun before it.
/// </remarks>
public sealed class TransactionalProducers : IAsyncDisposable
{
    public const string FileName = "transactional-ids.jsonl";
    internal const int MaxTracked = 100_000;
    private readonly ProxyState _state;
    private readonly JsonLinesLog<TransactionalIdEntry> _log;
    private readonly ConcurrentDictionary<string, Origin> _origins = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Mapping> _mappings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TransactionBegunEntry> _open = new(StringComparer.Ordinal);

    public TransactionalProducers(ProxyState state, string stateDirectory, ILogger logger)
    {
        _state = state;
        _log = new JsonLinesLog<TransactionalIdEntry>(Path.Combine(stateDirectory, FileName), logger);
        var kept = Compact(_log.Load(), state.Routes.Current, MaxTracked);
        foreach (var entry in kept)
        {
            switch (entry)
            {
                case TransactionOriginEntry origin:
                    _origins[origin.TransactionalId] = new Origin(origin.Cluster, origin.WriteEpoch, origin.TransactionTimeoutMs, Task.CompletedTask);
                    break;
                case TransactionMappingEntry mapping:
                    _mappings[mapping.TransactionalId] = new Mapping(mapping.TransactionalId, mapping.Cluster, mapping.WriteEpoch, mapping.ProducerId, mapping.Epoch, Task.CompletedTask);
                    break;
                case TransactionSequenceBaseEntry sequenceBase:
                    _mappings[sequenceBase.TransactionalId].Bases[(sequenceBase.Topic, sequenceBase.Partition)] = new SequenceBase(sequenceBase.BaseSequence, Task.CompletedTask);
                    break;
                case TransactionBegunEntry begun:
                    // Still open as far as anyone knows: a switch waits for it as if the proxy had not restarted.
                    _open[begun.TransactionalId] = begun;
                    state.Traffic.For(state.Routes.Current.ForTransactionalId(begun.TransactionalId).Family)
                        .TransactionStarted(begun.TransactionalId, TimeoutOf(begun) - (DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeMilliseconds(begun.BegunAtUnixMs)));
                    break;
            }
        }
        _log.Start(kept, () => [.. Entries(_origins, _mappings, _state.Routes.Current), .. Open(_open.Values, DateTimeOffset.UtcNow)]);
    }

    /// <summary>
    /// A transaction of the id began: on disk before it goes on, so a restarted proxy still counts it open until it
    /// ends or the broker would have aborted it.
    /// </summary>
    public async ValueTask BegunAsync(string transactionalId, TimeSpan? transactionTimeout, CancellationToken cancellationToken)
    {
        var begun = new TransactionBegunEntry(transactionalId, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), (int?)transactionTimeout?.TotalMilliseconds);
        _open[transactionalId] = begun;
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _log.AppendAsync(begun, durable).ConfigureAwait(false);
        await durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The id's transaction ended; written without waiting (a restart before it lands only waits longer).</summary>
    public void Ended(string transactionalId)
    {
        if (_open.TryRemove(transactionalId, out _))
        {
            _ = _log.AppendAsync(new TransactionEndedEntry(transactionalId), new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        }
    }

    private static TimeSpan TimeoutOf(TransactionBegunEntry begun) =>
        begun.TransactionTimeoutMs is { } ms ? TimeSpan.FromMilliseconds(ms) : FamilyTraffic.UnknownTransactionTimeout;

    /// <summary>Begun transactions the broker may not have aborted yet at <paramref name="now"/>.</summary>
    private static IEnumerable<TransactionalIdEntry> Open(IEnumerable<TransactionBegunEntry> begun, DateTimeOffset now) =>
        begun.Where(b => DateTimeOffset.FromUnixTimeMilliseconds(b.BegunAtUnixMs) + TimeoutOf(b) + FamilyTraffic.AbortGrace > now)
            .OrderBy(b => b.BegunAtUnixMs);

    /// <summary>Where a client's producer id for a transactional id was issued; <see cref="Durable"/> completes once it is on disk.</summary>
    private sealed record Origin(string Cluster, long WriteEpoch, int TransactionTimeoutMs, Task Durable);

    /// <summary>A client sequence that maps to 0 on one partition.</summary>
    internal sealed record SequenceBase(int Sequence, Task Durable);

    /// <summary>The producer id and epoch to use instead of the client's on one cluster, and per-partition sequence bases.</summary>
    public sealed class Mapping
    {
        internal Mapping(string transactionalId, string cluster, long writeEpoch, long producerId, short epoch, Task durable)
        {
            TransactionalId = transactionalId;
            Cluster = cluster;
            WriteEpoch = writeEpoch;
            ProducerId = producerId;
            Epoch = epoch;
            Durable = durable;
        }

        public string TransactionalId { get; }
        public string Cluster { get; }
        public long WriteEpoch { get; }
        public long ProducerId { get; }
        public short Epoch { get; }

        /// <summary>Completes once the mapping is on disk.</summary>
        internal Task Durable { get; }

        internal ConcurrentDictionary<(string Topic, int Partition), SequenceBase> Bases { get; } = new();
    }

    /// <summary>The transaction timeout the producer asked for when it last initialised the id, if the proxy saw it.</summary>
    public TimeSpan? TransactionTimeoutOf(string transactionalId) =>
        _origins.TryGetValue(transactionalId, out var origin) ? TimeSpan.FromMilliseconds(origin.TransactionTimeoutMs) : null;

    /// <summary>
    /// The client (re)initialised the transactional id on <paramref name="route"/>'s write cluster: its own id is valid
    /// there. Completes once that is on disk, so it is known after a restart before the client can use the id.
    /// </summary>
    public async ValueTask InitializedAsync(string transactionalId, FamilyRoute route, int transactionTimeoutMs, CancellationToken cancellationToken)
    {
        if (_origins.TryGetValue(transactionalId, out var known) && known.Cluster == route.Route.Write && known.WriteEpoch == route.WriteEpoch
            && known.TransactionTimeoutMs == transactionTimeoutMs && !_mappings.ContainsKey(transactionalId))
        {
            // Re-initialised where it was before (the common case): nothing new to record.
            await known.Durable.WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }
        if (_origins.Count >= MaxTracked)
        {
            _origins.Clear();
        }
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _origins[transactionalId] = new Origin(route.Route.Write, route.WriteEpoch, transactionTimeoutMs, durable.Task);
        _mappings.TryRemove(transactionalId, out _);
        await _log.AppendAsync(new TransactionOriginEntry(transactionalId, route.Route.Write, route.WriteEpoch, transactionTimeoutMs), durable).ConfigureAwait(false);
        await durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The mapping in force for a transactional id on its family's current write route, created (by initialising the
    /// id on that cluster) when <paramref name="mayCreate"/>; null when the client's own producer id is valid there
    /// or its origin is unknown (then the client's id is used as is, as before any switch).
    /// </summary>
    public async ValueTask<Mapping?> MappingForAsync(string transactionalId, FamilyRoute route, bool mayCreate, CancellationToken cancellationToken)
    {
        if (!_origins.TryGetValue(transactionalId, out var origin)
            || (origin.Cluster == route.Route.Write && origin.WriteEpoch == route.WriteEpoch))
        {
            return null;
        }
        if (_mappings.TryGetValue(transactionalId, out var mapping) && mapping.Cluster == route.Route.Write && mapping.WriteEpoch == route.WriteEpoch)
        {
            if (!mapping.Durable.IsCompleted)
            {
                await mapping.Durable.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            return mapping;
        }
        if (!mayCreate)
        {
            return null;
        }
        var (producerId, epoch) = await _state.Cluster(route.Route.Write)
            .InitTransactionalProducerIdAsync(transactionalId, origin.TransactionTimeoutMs, cancellationToken).ConfigureAwait(false);
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        mapping = new Mapping(transactionalId, route.Route.Write, route.WriteEpoch, producerId, epoch, durable.Task);
        _mappings[transactionalId] = mapping;
        await _log.AppendAsync(new TransactionMappingEntry(transactionalId, mapping.Cluster, mapping.WriteEpoch, producerId, epoch), durable).ConfigureAwait(false);
        await durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return mapping;
    }

    /// <summary>Rewrites, in place, the transactional batches of one partition for a mapping.</summary>
    public async ValueTask RewriteAsync(Mapping mapping, string topic, int partition, ReadOnlyMemory<byte> records, CancellationToken cancellationToken)
    {
        foreach (var entry in new RecordBatchEnumerator(records, RecordsSource.Produce))
        {
            if (entry.Kind != RecordBatchKind.RecordBatch)
            {
                continue;
            }
            int sequence;
            {
                var header = entry.Header;
                if (!header.IsTransactional)
                {
                    continue;
                }
                sequence = header.BaseSequence;
            }
            var baseSequence = await BaseForAsync(mapping, topic, partition, sequence, cancellationToken).ConfigureAwait(false);
            var batch = new MutableRecordBatch(MemoryMarshal.AsMemory(entry.Memory).Span);
            batch.ProducerId = mapping.ProducerId;
            batch.ProducerEpoch = mapping.Epoch;
            batch.BaseSequence = ProducerIdMapper.Rebase(sequence, baseSequence);
            batch.RecomputeCrc();
        }
    }

    /// <summary>The partition's sequence base under the mapping: the first sequence seen there, on disk before it is used.</summary>
    private async ValueTask<int> BaseForAsync(Mapping mapping, string topic, int partition, int firstSequence, CancellationToken cancellationToken)
    {
        if (!mapping.Bases.TryGetValue((topic, partition), out var known))
        {
            var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var created = new SequenceBase(firstSequence, durable.Task);
            known = mapping.Bases.GetOrAdd((topic, partition), created);
            if (ReferenceEquals(known, created))
            {
                await _log.AppendAsync(new TransactionSequenceBaseEntry(mapping.TransactionalId, mapping.Cluster, mapping.WriteEpoch, topic, partition, firstSequence), durable)
                    .ConfigureAwait(false);
            }
        }
        if (!known.Durable.IsCompleted)
        {
            await known.Durable.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        return known.Sequence;
    }

    /// <summary>
    /// The entries worth keeping from a log read back at start, in an order that replays to the same state: the last
    /// origin of at most <paramref name="maxTracked"/> transactional ids (the most recently initialised), each
    /// followed by its mapping and sequence bases when that mapping is still in force on the id's current write route;
    /// then the transactions begun and not ended that the broker may not have aborted yet.
    /// </summary>
    internal static List<TransactionalIdEntry> Compact(IReadOnlyList<TransactionalIdEntry> entries, RouteTable routes, int maxTracked, DateTimeOffset? now = null)
    {
        var origins = new Dictionary<string, (Origin Origin, long Order)>(StringComparer.Ordinal);
        var mappings = new Dictionary<string, Mapping>(StringComparer.Ordinal);
        var open = new Dictionary<string, TransactionBegunEntry>(StringComparer.Ordinal);
        for (var i = 0; i < entries.Count; i++)
        {
            switch (entries[i])
            {
                case TransactionOriginEntry origin:
                    origins[origin.TransactionalId] = (new Origin(origin.Cluster, origin.WriteEpoch, origin.TransactionTimeoutMs, Task.CompletedTask), i);
                    mappings.Remove(origin.TransactionalId);
                    open.Remove(origin.TransactionalId); // initialising an id aborts its open transaction
                    break;
                case TransactionBegunEntry begun:
                    open[begun.TransactionalId] = begun;
                    break;
                case TransactionEndedEntry ended:
                    open.Remove(ended.TransactionalId);
                    break;
                case TransactionMappingEntry mapping:
                    mappings[mapping.TransactionalId] = new Mapping(mapping.TransactionalId, mapping.Cluster, mapping.WriteEpoch, mapping.ProducerId, mapping.Epoch, Task.CompletedTask);
                    break;
                case TransactionSequenceBaseEntry sequenceBase:
                    if (mappings.TryGetValue(sequenceBase.TransactionalId, out var owner) && owner.Cluster == sequenceBase.Cluster && owner.WriteEpoch == sequenceBase.WriteEpoch)
                    {
                        owner.Bases.TryAdd((sequenceBase.Topic, sequenceBase.Partition), new SequenceBase(sequenceBase.BaseSequence, Task.CompletedTask));
                    }
                    break;
            }
        }
        var newest = origins.OrderByDescending(o => o.Value.Order).Take(maxTracked).OrderBy(o => o.Value.Order)
            .Select(o => KeyValuePair.Create(o.Key, o.Value.Origin));
        return [.. Entries(newest, mappings, routes), .. Open(open.Values, now ?? DateTimeOffset.UtcNow)];
    }

    /// <summary>Origins, each followed by its mapping in force on the current route and that mapping's bases.</summary>
    private static IEnumerable<TransactionalIdEntry> Entries(IEnumerable<KeyValuePair<string, Origin>> origins, IReadOnlyDictionary<string, Mapping> mappings, RouteTable routes)
    {
        foreach (var (id, origin) in origins)
        {
            yield return new TransactionOriginEntry(id, origin.Cluster, origin.WriteEpoch, origin.TransactionTimeoutMs);
            var route = routes.ForTransactionalId(id);
            if (!mappings.TryGetValue(id, out var mapping) || mapping.Cluster != route.Route.Write || mapping.WriteEpoch != route.WriteEpoch
                || (origin.Cluster == route.Route.Write && origin.WriteEpoch == route.WriteEpoch))
            {
                continue;
            }
            yield return new TransactionMappingEntry(id, mapping.Cluster, mapping.WriteEpoch, mapping.ProducerId, mapping.Epoch);
            foreach (var ((topic, partition), sequenceBase) in mapping.Bases.OrderBy(b => b.Key.Topic, StringComparer.Ordinal).ThenBy(b => b.Key.Partition))
            {
                yield return new TransactionSequenceBaseEntry(id, mapping.Cluster, mapping.WriteEpoch, topic, partition, sequenceBase.Sequence);
            }
        }
    }

    public ValueTask DisposeAsync() => _log.DisposeAsync();
}
