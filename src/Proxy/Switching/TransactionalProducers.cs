using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Switchback.Protocol.Records;
using Switchback.Proxy.Routing;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>
/// Carries transactional producers across a write switch. A transactional id's producer id and epoch come from the
/// cluster its client initialised on; a switch only happens between transactions (the coordinator waits for open
/// ones), so when the next transaction of that id starts on the new write cluster the proxy initialises the same
/// transactional id there and rewrites the producer id and epoch of every transactional request (and of the
/// transaction's record batches, with sequences re-based) to the new cluster's. A client that re-initialises on the
/// new cluster needs no mapping any more.
/// </summary>
public sealed class TransactionalProducers(ProxyState state)
{
    private const int MaxTracked = 100_000;
    private readonly ConcurrentDictionary<string, Origin> _origins = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Mapping> _mappings = new(StringComparer.Ordinal);

    /// <summary>Where a client's producer id for a transactional id was issued.</summary>
    private sealed record Origin(string Cluster, long WriteEpoch, int TransactionTimeoutMs);

    /// <summary>The producer id and epoch to use instead of the client's on one cluster, and per-partition sequence bases.</summary>
    public sealed class Mapping(string cluster, long writeEpoch, long producerId, short epoch)
    {
        private readonly ConcurrentDictionary<(string Topic, int Partition), int> _bases = new();

        public string Cluster { get; } = cluster;
        public long WriteEpoch { get; } = writeEpoch;
        public long ProducerId { get; } = producerId;
        public short Epoch { get; } = epoch;

        internal int BaseFor(string topic, int partition, int firstSequence) => _bases.GetOrAdd((topic, partition), firstSequence);
    }

    /// <summary>The client (re)initialised the transactional id on <paramref name="route"/>'s write cluster: its own id is valid there.</summary>
    public void Initialized(string transactionalId, FamilyRoute route, int transactionTimeoutMs)
    {
        if (_origins.Count >= MaxTracked)
        {
            _origins.Clear();
        }
        _origins[transactionalId] = new Origin(route.Route.Write, route.WriteEpoch, transactionTimeoutMs);
        _mappings.TryRemove(transactionalId, out _);
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
            return mapping;
        }
        if (!mayCreate)
        {
            return null;
        }
        var (producerId, epoch) = await state.Cluster(route.Route.Write)
            .InitTransactionalProducerIdAsync(transactionalId, origin.TransactionTimeoutMs, cancellationToken).ConfigureAwait(false);
        mapping = new Mapping(route.Route.Write, route.WriteEpoch, producerId, epoch);
        _mappings[transactionalId] = mapping;
        return mapping;
    }

    /// <summary>Rewrites, in place, the transactional batches of one partition for a mapping.</summary>
    public static void Rewrite(Mapping mapping, string topic, int partition, ReadOnlyMemory<byte> records)
    {
        foreach (var entry in new RecordBatchEnumerator(records, RecordsSource.Produce))
        {
            if (entry.Kind != RecordBatchKind.RecordBatch || !entry.Header.IsTransactional)
            {
                continue;
            }
            var batch = new MutableRecordBatch(MemoryMarshal.AsMemory(entry.Memory).Span);
            var sequence = batch.BaseSequence;
            var baseSequence = mapping.BaseFor(topic, partition, sequence);
            batch.ProducerId = mapping.ProducerId;
            batch.ProducerEpoch = mapping.Epoch;
            batch.BaseSequence = ProducerIdMapper.Rebase(sequence, baseSequence);
            batch.RecomputeCrc();
        }
    }
}
