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

/// <summary>The client (re)initialised the transactional id on this cluster; any mapping of it ends.</summary>
public sealed record TransactionOriginEntry(string TransactionalId, string Cluster, int TransactionTimeoutMs)
    : TransactionalIdEntry(TransactionalId);

/// <summary>The proxy initialised the transactional id on this cluster and uses this producer id and epoch instead of the client's.</summary>
public sealed record TransactionMappingEntry(string TransactionalId, string Cluster, long ProducerId, short Epoch)
    : TransactionalIdEntry(TransactionalId);

/// <summary>The client sequence that maps to 0 on one partition under the mapping with this producer id and epoch.</summary>
public sealed record TransactionSequenceBaseEntry(string TransactionalId, long ProducerId, short Epoch, string Topic, int Partition, int BaseSequence)
    : TransactionalIdEntry(TransactionalId);

/// <summary>
/// A transaction of the id is open on <see cref="Cluster"/> (wall-clock start, the producer's timeout when known):
/// the families whose topics it writes and those whose groups' offsets it commits. Written again, whole, when the
/// transaction reaches another family.
/// </summary>
public sealed record TransactionBegunEntry(string TransactionalId, long BegunAtUnixMs, int? TransactionTimeoutMs,
    string? Cluster = null, IReadOnlyList<string>? WriteFamilies = null, IReadOnlyList<string>? OffsetFamilies = null)
    : TransactionalIdEntry(TransactionalId)
{
    public bool Equals(TransactionBegunEntry? other) =>
        other is not null && TransactionalId == other.TransactionalId && BegunAtUnixMs == other.BegunAtUnixMs
        && TransactionTimeoutMs == other.TransactionTimeoutMs && Cluster == other.Cluster
        && (WriteFamilies ?? []).SequenceEqual(other.WriteFamilies ?? []) && (OffsetFamilies ?? []).SequenceEqual(other.OffsetFamilies ?? []);

    public override int GetHashCode() => HashCode.Combine(TransactionalId, BegunAtUnixMs, Cluster);

    /// <summary>True when the transaction uses the family that way.</summary>
    public bool Uses(string family, TransactionUse use) =>
        (use == TransactionUse.Writes ? WriteFamilies : OffsetFamilies) is { } families && families.Contains(family);
}

/// <summary>The transaction of the id ended (EndTxn answered, or the id initialised again).</summary>
public sealed record TransactionEndedEntry(string TransactionalId) : TransactionalIdEntry(TransactionalId);

/// <summary>How an open transaction uses a family: it writes the family's topics, or commits its groups' offsets.</summary>
public enum TransactionUse
{
    Writes,
    Offsets,
}

/// <summary>
/// Transactional producers across clusters, and the one owner of open transactions.
/// <para>
/// A transaction runs where its records go: on the write cluster of the families whose topics it adds (and, for
/// the offsets it commits, the read cluster of the group's family, which must be the same cluster: Kafka commits a
/// transaction's records and offsets atomically only within one cluster). A transaction whose parts would land on
/// two clusters is refused with a retriable error (<see cref="Switching"/> waits for open transactions, so this
/// happens only when families sharing a transaction are routed apart).
/// </para>
/// <para>
/// A transactional id's producer id and epoch come from the cluster its client initialised it on. While its
/// transactions run there, the client's ids are used as they are. When a transaction begins on another cluster (the
/// family's writes were switched, or its topics are routed elsewhere than its id), the proxy initialises the same
/// transactional id there and rewrites the producer id and epoch of every transactional request (and of the
/// transaction's record batches, with sequences re-based per partition) to that cluster's. That mapping lasts for as
/// long as the id's transactions keep running on that cluster (a <em>stint</em>); a transaction that begins on yet
/// another cluster (a rollback, say) starts a new stint with a fresh mapping, because the client's sequences moved on
/// meanwhile. A client that re-initialises the id is sent to the cluster of its current stint, which fences any
/// transaction that stint left open, and needs no mapping there.
/// </para>
/// </summary>
/// <remarks>
/// Where each id was initialised, the mappings and their sequence bases, and each open transaction (cluster and
/// families) are appended to <c>StateDirectory/transactional-ids.jsonl</c>, each on disk before the client or the
/// cluster can act on it, and read back at start: after a restart the proxy still knows which client producer ids
/// belong to another cluster, a transaction open across the restart goes on under the same upstream producer id,
/// epoch and sequences on the same cluster, and a switch still waits for it.
/// <para>
/// In a fleet, every entry is also appended to the control log (and the client waits for both), and the other
/// instances' entries are taken up as they are read: a transactional producer whose instance died goes on through
/// another one, in the same transaction, under the same mapping and sequence bases. Each instance's switch waits for
/// the open transactions it serves (another instance's are drained there, or end with its membership). Before an
/// instance makes a mapping, or treats an id as unknown, it reads the log to its end, so it uses what the fleet
/// already knows instead of fencing it.
/// </para>
/// </remarks>
public sealed class TransactionalProducers : IAsyncDisposable
{
    public const string FileName = "transactional-ids.jsonl";
    internal const int MaxTracked = 100_000;

    /// <summary>
    /// A broker aborts a transaction its producer abandoned once the transaction timeout has passed since it began,
    /// checking every 10 s by default (<c>transaction.abort.timed.out.transaction.cleanup.interval.ms</c>); after
    /// that it can no longer commit where it began, so a switch need not wait for it.
    /// </summary>
    internal static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(10);

    /// <summary>The timeout assumed when the producer's own is unknown: the broker's default maximum (15 min).</summary>
    internal static readonly TimeSpan UnknownTransactionTimeout = TimeSpan.FromMinutes(15);

    private readonly ProxyState _state;
    private readonly JsonLinesLog<TransactionalIdEntry> _log;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Origin> _origins = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Mapping> _mappings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TransactionBegunEntry> _open = new(StringComparer.Ordinal);
    // Completed (and replaced) whenever a transaction ends, so a switch waiting for a family's transactions wakes.
    private TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Fleet.ControlLog? _shared;
    // Ids this instance read the fleet's log for and found unknown: looked up once, not on every request.
    private readonly ConcurrentDictionary<string, byte> _unknownInFleet = new(StringComparer.Ordinal);
    // Open transactions another instance serves: known here for routing, but neither waited for by this instance's
    // switches (that instance drains them, or its membership expires) nor let through a held family.
    private readonly ConcurrentDictionary<string, byte> _servedElsewhere = new(StringComparer.Ordinal);

    public TransactionalProducers(ProxyState state, string stateDirectory, ILogger logger, TimeProvider? time = null, Fleet.ControlLog? shared = null)
    {
        _state = state;
        _time = time ?? TimeProvider.System;
        _shared = shared;
        if (shared is not null)
        {
            shared.RecordRead += OnSharedRecord;
        }
        _log = new JsonLinesLog<TransactionalIdEntry>(Path.Combine(stateDirectory, FileName), logger);
        var kept = Compact(_log.Load(), MaxTracked, _time.GetUtcNow());
        foreach (var entry in kept)
        {
            switch (entry)
            {
                case TransactionOriginEntry origin:
                    _origins[origin.TransactionalId] = new Origin(origin.Cluster, origin.TransactionTimeoutMs, Task.CompletedTask);
                    break;
                case TransactionMappingEntry mapping:
                    _mappings[mapping.TransactionalId] = new Mapping(mapping.TransactionalId, mapping.Cluster, mapping.ProducerId, mapping.Epoch, Task.CompletedTask);
                    break;
                case TransactionSequenceBaseEntry sequenceBase:
                    _mappings[sequenceBase.TransactionalId].Bases[(sequenceBase.Topic, sequenceBase.Partition)] = new SequenceBase(sequenceBase.BaseSequence, Task.CompletedTask);
                    break;
                case TransactionBegunEntry begun:
                    // Still open as far as anyone knows: a switch waits for it as if the proxy had not restarted.
                    _open[begun.TransactionalId] = WithFamilies(begun, state);
                    break;
            }
        }
        _log.Start(kept, () => [.. Entries(_origins, _mappings), .. Open(_open.Values, _time.GetUtcNow())]);
    }

    /// <summary>A transaction begun before the proxy recorded its cluster and families belongs to its id's family, on its write cluster.</summary>
    private static TransactionBegunEntry WithFamilies(TransactionBegunEntry begun, ProxyState state)
    {
        if (begun.Cluster is not null)
        {
            return begun;
        }
        var route = state.Routes.Current.ForTransactionalId(begun.TransactionalId);
        return begun with { Cluster = route.Route.Write, WriteFamilies = [route.Family], OffsetFamilies = [] };
    }

    /// <summary>The open transaction of the id, unless the broker would have aborted it by now.</summary>
    public TransactionBegunEntry? OpenTransaction(string transactionalId) =>
        _open.TryGetValue(transactionalId, out var begun) && !HasExpired(begun, _time.GetUtcNow()) ? begun : null;

    /// <summary>
    /// True when the id has an open transaction, served by this instance, that writes the family's topics or commits
    /// its groups' offsets: one a switch here waits for, so it may pass the family's held gates.
    /// </summary>
    public bool IsOpenIn(string transactionalId, string family) =>
        OpenTransaction(transactionalId) is { } open && !_servedElsewhere.ContainsKey(transactionalId)
        && (open.Uses(family, TransactionUse.Writes) || open.Uses(family, TransactionUse.Offsets));

    /// <summary>True when the id's open transaction already uses the family that way through this instance.</summary>
    public bool IsJoinedHere(string transactionalId, string family, TransactionUse use) =>
        OpenTransaction(transactionalId) is { } open && open.Uses(family, use) && !_servedElsewhere.ContainsKey(transactionalId);

    /// <summary>Open transactions that use the family in any of <paramref name="uses"/>.</summary>
    public int OpenIn(string family, params ReadOnlySpan<TransactionUse> uses)
    {
        var now = _time.GetUtcNow();
        var count = 0;
        foreach (var open in _open.Values)
        {
            if (HasExpired(open, now) || _servedElsewhere.ContainsKey(open.TransactionalId))
            {
                continue;
            }
            foreach (var use in uses)
            {
                if (open.Uses(family, use))
                {
                    count++;
                    break;
                }
            }
        }
        return count;
    }

    /// <summary>
    /// Completes once no open transaction uses the family in any of <paramref name="uses"/>: woken by each transaction's
    /// end, and by the earliest time one of them counts as abandoned.
    /// </summary>
    public async Task DrainedAsync(string family, TransactionUse[] uses, CancellationToken cancellationToken)
    {
        while (true)
        {
            var ended = Volatile.Read(ref _ended).Task;
            var now = _time.GetUtcNow();
            DateTimeOffset? earliest = null;
            foreach (var open in _open.Values)
            {
                if (!HasExpired(open, now) && !_servedElsewhere.ContainsKey(open.TransactionalId) && uses.Any(use => open.Uses(family, use)))
                {
                    var expires = ExpiresAt(open);
                    earliest = earliest is null || expires < earliest ? expires : earliest;
                }
            }
            if (earliest is not { } wakeAt)
            {
                return;
            }
            try
            {
                await ended.WaitAsync(wakeAt - now + TimeSpan.FromMilliseconds(1), _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // One of them counts as abandoned now: look again.
            }
        }
    }

    /// <summary>
    /// The transaction of the id now uses <paramref name="family"/> on <paramref name="cluster"/>: it begins (on that
    /// cluster) when none is open. On disk before it goes on, so a restarted proxy still counts it open until it ends
    /// or the broker would have aborted it. The caller has checked that the cluster is the transaction's. In a fleet,
    /// a transaction another instance served is served here from now on (its client came here).
    /// </summary>
    public async ValueTask JoinAsync(string transactionalId, string cluster, string family, TransactionUse use, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var open = OpenTransaction(transactionalId);
        var takenOver = _servedElsewhere.TryRemove(transactionalId, out _);
        if (open is not null && open.Uses(family, use) && !takenOver)
        {
            return;
        }
        var timeout = TransactionTimeoutOf(transactionalId);
        var next = open is null
            ? new TransactionBegunEntry(transactionalId, now.ToUnixTimeMilliseconds(), (int?)timeout?.TotalMilliseconds, cluster, [], [])
            : open;
        if (!next.Uses(family, use))
        {
            next = use == TransactionUse.Writes
                ? next with { WriteFamilies = [.. next.WriteFamilies ?? [], family] }
                : next with { OffsetFamilies = [.. next.OffsetFamilies ?? [], family] };
        }
        _open[transactionalId] = next;
        await RecordAsync(next, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The id's transaction ended (EndTxn answered, or the id initialised again); written without waiting (a restart before it lands only waits longer).</summary>
    public void Ended(string transactionalId)
    {
        _servedElsewhere.TryRemove(transactionalId, out _);
        if (_open.TryRemove(transactionalId, out _))
        {
            var ended = new TransactionEndedEntry(transactionalId);
            _ = _log.AppendAsync(ended, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            if (_shared is { } fleet)
            {
                _ = ShareAsync(fleet, ended);
            }
            WakeDrainWaiters();
        }
    }

    private void WakeDrainWaiters() =>
        Interlocked.Exchange(ref _ended, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Appends an entry to the state file and, in a fleet, to the control log; completes once both have it.</summary>
    private async ValueTask RecordAsync(TransactionalIdEntry entry, CancellationToken cancellationToken, TaskCompletionSource? durable = null)
    {
        durable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_shared is not { } fleet)
        {
            await _log.AppendAsync(entry, durable).ConfigureAwait(false);
            await durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }
        var local = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _log.AppendAsync(entry, local).ConfigureAwait(false);
        try
        {
            // Side by side: neither needs the other.
            await Task.WhenAll(local.Task, ShareAsync(fleet, entry)).ConfigureAwait(false);
            durable.TrySetResult();
        }
        catch (Exception e)
        {
            durable.TrySetException(e);
        }
        await durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static Task ShareAsync(Fleet.ControlLog fleet, TransactionalIdEntry entry) =>
        fleet.AppendAsync(new Fleet.TransactionalIdRecord(fleet.InstanceId, entry));

    /// <summary>In a fleet, reads the control log to its end once for an id this instance knows nothing of, and says whether it is known now.</summary>
    private async ValueTask<bool> KnownInFleetAsync(string transactionalId, CancellationToken cancellationToken)
    {
        if (_shared is not { } fleet || _unknownInFleet.ContainsKey(transactionalId))
        {
            return false;
        }
        await fleet.CaughtUpAsync(cancellationToken).ConfigureAwait(false);
        if (_origins.ContainsKey(transactionalId))
        {
            return true;
        }
        if (_unknownInFleet.Count >= MaxTracked)
        {
            _unknownInFleet.Clear();
        }
        _unknownInFleet.TryAdd(transactionalId, 0);
        return false;
    }

    /// <summary>Takes up another instance's entry, read from the control log in log order.</summary>
    private void OnSharedRecord(long offset, Fleet.ControlRecord record)
    {
        if (record is not Fleet.TransactionalIdRecord { Entry: var entry } shared || shared.Instance == _shared!.InstanceId)
        {
            return;
        }
        var id = entry.TransactionalId;
        switch (entry)
        {
            case TransactionOriginEntry origin:
                _origins[id] = new Origin(origin.Cluster, origin.TransactionTimeoutMs, Task.CompletedTask);
                _mappings.TryRemove(id, out _);
                _unknownInFleet.TryRemove(id, out _);
                _servedElsewhere.TryRemove(id, out _);
                if (_open.TryRemove(id, out _))
                {
                    WakeDrainWaiters(); // initialising an id aborts its open transaction
                }
                break;
            case TransactionMappingEntry mapping:
                _mappings[id] = new Mapping(id, mapping.Cluster, mapping.ProducerId, mapping.Epoch, Task.CompletedTask);
                break;
            case TransactionSequenceBaseEntry sequenceBase:
                if (_mappings.TryGetValue(id, out var owner) && owner.ProducerId == sequenceBase.ProducerId && owner.Epoch == sequenceBase.Epoch)
                {
                    owner.Bases[(sequenceBase.Topic, sequenceBase.Partition)] = new SequenceBase(sequenceBase.BaseSequence, Task.CompletedTask);
                }
                break;
            case TransactionBegunEntry begun:
                _open[id] = WithFamilies(begun, _state);
                _servedElsewhere[id] = 0;
                break;
            case TransactionEndedEntry:
                _servedElsewhere.TryRemove(id, out _);
                if (_open.TryRemove(id, out _))
                {
                    WakeDrainWaiters();
                }
                break;
        }
    }

    private static TimeSpan TimeoutOf(TransactionBegunEntry begun) =>
        begun.TransactionTimeoutMs is { } ms ? TimeSpan.FromMilliseconds(ms) : UnknownTransactionTimeout;

    private static DateTimeOffset ExpiresAt(TransactionBegunEntry begun) =>
        DateTimeOffset.FromUnixTimeMilliseconds(begun.BegunAtUnixMs) + TimeoutOf(begun) + AbortGrace;

    private static bool HasExpired(TransactionBegunEntry begun, DateTimeOffset now) => ExpiresAt(begun) <= now;

    /// <summary>Begun transactions the broker may not have aborted yet at <paramref name="now"/>.</summary>
    private static IEnumerable<TransactionalIdEntry> Open(IEnumerable<TransactionBegunEntry> begun, DateTimeOffset now) =>
        begun.Where(b => !HasExpired(b, now)).OrderBy(b => b.BegunAtUnixMs);

    /// <summary>Where a client's producer id for a transactional id was issued; <see cref="Durable"/> completes once it is on disk.</summary>
    private sealed record Origin(string Cluster, int TransactionTimeoutMs, Task Durable);

    /// <summary>A client sequence that maps to 0 on one partition.</summary>
    internal sealed record SequenceBase(int Sequence, Task Durable);

    /// <summary>The producer id and epoch to use instead of the client's on one cluster, and per-partition sequence bases.</summary>
    public sealed class Mapping
    {
        internal Mapping(string transactionalId, string cluster, long producerId, short epoch, Task durable)
        {
            TransactionalId = transactionalId;
            Cluster = cluster;
            ProducerId = producerId;
            Epoch = epoch;
            Durable = durable;
        }

        public string TransactionalId { get; }
        public string Cluster { get; }
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
    /// The cluster of the id's current stint: where its transactions last ran (or its client last initialised it);
    /// null when the proxy has not seen the id.
    /// </summary>
    public string? HomeCluster(string transactionalId) =>
        _mappings.TryGetValue(transactionalId, out var mapping) ? mapping.Cluster
        : _origins.TryGetValue(transactionalId, out var origin) ? origin.Cluster
        : null;

    /// <summary>Where the id's requests go now: its open transaction's cluster, else its current stint's; null when unknown.</summary>
    public string? ClusterOf(string transactionalId) => OpenTransaction(transactionalId)?.Cluster ?? HomeCluster(transactionalId);

    /// <summary>
    /// The client (re)initialised the transactional id on <paramref name="cluster"/>: its own id is valid there. Completes
    /// once that is on disk, so it is known after a restart before the client can use the id.
    /// </summary>
    public async ValueTask InitializedAsync(string transactionalId, string cluster, int transactionTimeoutMs, CancellationToken cancellationToken)
    {
        if (_origins.TryGetValue(transactionalId, out var known) && known.Cluster == cluster
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
        _origins[transactionalId] = new Origin(cluster, transactionTimeoutMs, durable.Task);
        _mappings.TryRemove(transactionalId, out _);
        _unknownInFleet.TryRemove(transactionalId, out _);
        await RecordAsync(new TransactionOriginEntry(transactionalId, cluster, transactionTimeoutMs), cancellationToken, durable).ConfigureAwait(false);
    }

    /// <summary>
    /// The mapping for running the id's transactions on <paramref name="cluster"/>: null when the client's own producer
    /// id is valid there (its current stint is where the client initialised it) or the id is unknown (then the
    /// client's id is used as is). When <paramref name="mayCreate"/> (a transaction begins) and the current stint is
    /// on another cluster, a new stint starts: the id is initialised on <paramref name="cluster"/> and mapped.
    /// </summary>
    public async ValueTask<Mapping?> MappingForAsync(string transactionalId, string cluster, bool mayCreate, CancellationToken cancellationToken)
    {
        if (!_origins.TryGetValue(transactionalId, out var origin)
            && !(await KnownInFleetAsync(transactionalId, cancellationToken).ConfigureAwait(false) && _origins.TryGetValue(transactionalId, out origin)))
        {
            return null;
        }
        if (mayCreate && _shared is { } fleet
            && !(_mappings.TryGetValue(transactionalId, out var known) ? known.Cluster == cluster : origin.Cluster == cluster))
        {
            // A new stint fences the id's producer id on that cluster: another instance may have started it already.
            await fleet.CaughtUpAsync(cancellationToken).ConfigureAwait(false);
            origin = _origins.GetValueOrDefault(transactionalId, origin);
        }
        if (_mappings.TryGetValue(transactionalId, out var mapping))
        {
            if (mapping.Cluster == cluster)
            {
                if (!mapping.Durable.IsCompleted)
                {
                    await mapping.Durable.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                return mapping;
            }
        }
        else if (origin.Cluster == cluster)
        {
            return null;
        }
        if (!mayCreate)
        {
            return null;
        }
        var (producerId, epoch) = await _state.Cluster(cluster)
            .InitTransactionalProducerIdAsync(transactionalId, origin.TransactionTimeoutMs, cancellationToken).ConfigureAwait(false);
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        mapping = new Mapping(transactionalId, cluster, producerId, epoch, durable.Task);
        _mappings[transactionalId] = mapping;
        await RecordAsync(new TransactionMappingEntry(transactionalId, cluster, producerId, epoch), cancellationToken, durable).ConfigureAwait(false);
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
                await RecordAsync(new TransactionSequenceBaseEntry(mapping.TransactionalId, mapping.ProducerId, mapping.Epoch, topic, partition, firstSequence),
                    cancellationToken, durable).ConfigureAwait(false);
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
    /// followed by its current mapping (the newest since that origin) and that mapping's sequence bases; then the
    /// transactions begun and not ended that the broker may not have aborted yet.
    /// </summary>
    internal static List<TransactionalIdEntry> Compact(IReadOnlyList<TransactionalIdEntry> entries, int maxTracked, DateTimeOffset now)
    {
        var origins = new Dictionary<string, (Origin Origin, long Order)>(StringComparer.Ordinal);
        var mappings = new Dictionary<string, Mapping>(StringComparer.Ordinal);
        var open = new Dictionary<string, TransactionBegunEntry>(StringComparer.Ordinal);
        for (var i = 0; i < entries.Count; i++)
        {
            switch (entries[i])
            {
                case TransactionOriginEntry origin:
                    origins[origin.TransactionalId] = (new Origin(origin.Cluster, origin.TransactionTimeoutMs, Task.CompletedTask), i);
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
                    mappings[mapping.TransactionalId] = new Mapping(mapping.TransactionalId, mapping.Cluster, mapping.ProducerId, mapping.Epoch, Task.CompletedTask);
                    break;
                case TransactionSequenceBaseEntry sequenceBase:
                    if (mappings.TryGetValue(sequenceBase.TransactionalId, out var owner) && owner.ProducerId == sequenceBase.ProducerId && owner.Epoch == sequenceBase.Epoch)
                    {
                        owner.Bases.TryAdd((sequenceBase.Topic, sequenceBase.Partition), new SequenceBase(sequenceBase.BaseSequence, Task.CompletedTask));
                    }
                    break;
            }
        }
        var newest = origins.OrderByDescending(o => o.Value.Order).Take(maxTracked).OrderBy(o => o.Value.Order)
            .Select(o => KeyValuePair.Create(o.Key, o.Value.Origin));
        return [.. Entries(newest, mappings), .. Open(open.Values, now)];
    }

    /// <summary>Origins, each followed by its current mapping and that mapping's bases.</summary>
    private static IEnumerable<TransactionalIdEntry> Entries(IEnumerable<KeyValuePair<string, Origin>> origins, IReadOnlyDictionary<string, Mapping> mappings)
    {
        foreach (var (id, origin) in origins)
        {
            yield return new TransactionOriginEntry(id, origin.Cluster, origin.TransactionTimeoutMs);
            if (!mappings.TryGetValue(id, out var mapping))
            {
                continue;
            }
            yield return new TransactionMappingEntry(id, mapping.Cluster, mapping.ProducerId, mapping.Epoch);
            foreach (var ((topic, partition), sequenceBase) in mapping.Bases.OrderBy(b => b.Key.Topic, StringComparer.Ordinal).ThenBy(b => b.Key.Partition))
            {
                yield return new TransactionSequenceBaseEntry(id, mapping.ProducerId, mapping.Epoch, topic, partition, sequenceBase.Sequence);
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        if (_shared is not null)
        {
            _shared.RecordRead -= OnSharedRecord;
        }
        return _log.DisposeAsync();
    }
}
