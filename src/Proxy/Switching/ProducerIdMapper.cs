using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Switchback.Protocol.Records;
using Switchback.Proxy.Routing;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>
/// Keeps idempotent producers unaware of write switches. A producer id and its sequence numbers belong to one
/// cluster; after a family's writes move, the proxy gives each producer a fresh producer id on the new cluster and
/// rewrites its batches (producer id, epoch, base sequence re-based to start at 0, CRC) so the new cluster sees a
/// well-formed new producer while the client keeps its own id and sequences. Before any switch, batches go through
/// untouched.
/// </summary>
public sealed class ProducerIdMapper(ProxyState state)
{
    private const int MaxProducers = 200_000;
    private readonly ConcurrentDictionary<(long Pid, short Epoch), ProducerMap> _producers = new();

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
                producer = _producers.GetOrAdd(key, _ => new ProducerMap());
            }
            var segment = await producer.SegmentForAsync(state, route, topic, partition, baseSequence, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Sequence numbers wrap from int.MaxValue to 0.</summary>
    internal static int Rebase(int sequence, int baseSequence) => (int)(((long)sequence - baseSequence + int.MaxValue + 1L) % (int.MaxValue + 1L));

    /// <summary>Where one partition's batches of one producer currently go.</summary>
    private sealed record Segment(string Cluster, long WriteEpoch, bool IsIdentity, long UpstreamProducerId, short UpstreamEpoch, int BaseSequence);

    private sealed class ProducerMap
    {
        private readonly ConcurrentDictionary<(string Topic, int Partition), Segment> _partitions = new();
        private readonly ConcurrentDictionary<(string Cluster, string Family, long WriteEpoch), Task<(long, short)>> _upstreamIds = new();

        public async ValueTask<Segment> SegmentForAsync(ProxyState state, FamilyRoute route, string topic, int partition, int baseSequence, CancellationToken cancellationToken)
        {
            var cluster = route.Route.Write;
            if (_partitions.TryGetValue((topic, partition), out var segment) && segment.Cluster == cluster && segment.WriteEpoch == route.WriteEpoch)
            {
                return segment;
            }
            // Idempotent producer ids are allocated by the default route's write cluster (see CoordinatorHandlers).
            if (segment is null && route.WriteEpoch == 0 && cluster == state.Routes.Current.Default.Route.Write)
            {
                // First batch, no write switch yet, and the producer id is this cluster's own: nothing to map.
                segment = new Segment(cluster, route.WriteEpoch, true, -1, -1, 0);
            }
            else
            {
                var ids = await _upstreamIds.GetOrAdd((cluster, route.Family, route.WriteEpoch),
                    _ => state.Cluster(cluster).InitProducerIdAsync(CancellationToken.None).AsTask()).WaitAsync(cancellationToken).ConfigureAwait(false);
                segment = new Segment(cluster, route.WriteEpoch, false, ids.Item1, ids.Item2, baseSequence);
            }
            _partitions[(topic, partition)] = segment;
            return segment;
        }
    }
}
