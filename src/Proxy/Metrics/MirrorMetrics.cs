using Prometheus;
using Switchback.Proxy.Window;

namespace Switchback.Proxy.Metrics;

/// <summary>
/// Prometheus series of the rollback windows' mirrors, labelled by family and by partition (<c>topic-partition</c>) or
/// <c>total</c>. Set from each mirror's figures when <c>/metrics</c> is scraped, so copying itself pays nothing for
/// them. Label cardinality is bounded: a family's first <see cref="MaxPartitionSeries"/> partitions get series of their
/// own, the rest count in <c>total</c> only; a family's series are removed when its mirror ends.
/// </summary>
public sealed class MirrorMetrics
{
    /// <summary>Partitions per family with series of their own.</summary>
    public const int MaxPartitionSeries = 64;
    private const string Total = "total";

    private readonly Counter _copied;
    private readonly Counter _copiedBytes;
    private readonly Gauge _lagRecords;
    private readonly Gauge _lagSeconds;
    private readonly Gauge _strayWrites;
    private readonly Gauge _divergent;
    private readonly Gauge _running;
    private readonly Lock _sync = new();
    // What each counter child was last set to, per family: counters only go up, by the difference.
    private readonly Dictionary<string, Dictionary<string, (double Copied, double Bytes)>> _published = new(StringComparer.Ordinal);

    public MirrorMetrics(CollectorRegistry? registry = null)
    {
        var factory = Prometheus.Metrics.WithCustomRegistry(registry ?? Prometheus.Metrics.DefaultRegistry);
        _copied = factory.CreateCounter("switchback_mirror_copied_records_total", "Records a rollback window's mirror copied back to the old write cluster, by family and partition (or total).", "family", "partition");
        _copiedBytes = factory.CreateCounter("switchback_mirror_copied_bytes_total", "Key, value and header bytes a mirror copied in this process, by family.", "family");
        _lagRecords = factory.CreateGauge("switchback_mirror_lag_records", "Offsets on the new write cluster a mirror has not copied yet, by family and partition (or total).", "family", "partition");
        _lagSeconds = factory.CreateGauge("switchback_mirror_lag_seconds", "Age of the oldest record a mirror has not copied yet, by family and partition (total: the largest).", "family", "partition");
        _strayWrites = factory.CreateGauge("switchback_mirror_stray_writes", "Offsets written on the old write cluster since the mirror started that the mirror did not write (producers bypassing the proxy), by family and partition (or total).", "family", "partition");
        _divergent = factory.CreateGauge("switchback_mirror_divergent_copies", "Copies that landed at another offset on the old cluster than on the new one, by family.", "family");
        _running = factory.CreateGauge("switchback_mirror_running", "1 while a family's mirror copies, 0 while it resumes or retries after a failure.", "family");
    }

    /// <summary>Sets a family's series from its mirror's figures.</summary>
    public void Publish(MirrorFigures figures)
    {
        var family = figures.Family;
        lock (_sync)
        {
            if (!_published.TryGetValue(family, out var published))
            {
                _published[family] = published = new Dictionary<string, (double, double)>(StringComparer.Ordinal);
            }
            var series = 0;
            foreach (var partition in figures.Partitions)
            {
                if (series++ >= MaxPartitionSeries)
                {
                    break;
                }
                var label = $"{partition.Topic}-{partition.Partition}";
                Set(published, family, label, partition.Copied, 0);
                _lagRecords.WithLabels(family, label).Set(partition.LagRecords);
                _lagSeconds.WithLabels(family, label).Set(partition.LagMs is { } lag ? lag / 1000.0 : double.NaN);
                _strayWrites.WithLabels(family, label).Set(partition.StrayWrites);
            }
            var totals = figures.Totals;
            Set(published, family, Total, totals.Copied, totals.CopiedBytes);
            _lagRecords.WithLabels(family, Total).Set(totals.LagRecords);
            _lagSeconds.WithLabels(family, Total).Set(totals.MaxLagMs is { } max ? max / 1000.0 : double.NaN);
            _strayWrites.WithLabels(family, Total).Set(totals.StrayWrites);
            _divergent.WithLabels(family).Set(figures.Alignment.Divergent);
            _running.WithLabels(family).Set(figures.State == MirrorState.Running ? 1 : 0);
        }
    }

    /// <summary>Removes a family's series (its mirror ended).</summary>
    public void Remove(string family)
    {
        lock (_sync)
        {
            if (!_published.Remove(family, out var published))
            {
                return;
            }
            foreach (var label in published.Keys)
            {
                _copied.RemoveLabelled(family, label);
                _lagRecords.RemoveLabelled(family, label);
                _lagSeconds.RemoveLabelled(family, label);
                _strayWrites.RemoveLabelled(family, label);
            }
            _copiedBytes.RemoveLabelled(family);
            _divergent.RemoveLabelled(family);
            _running.RemoveLabelled(family);
        }
    }

    private void Set(Dictionary<string, (double Copied, double Bytes)> published, string family, string label, double copied, double bytes)
    {
        var last = published.GetValueOrDefault(label);
        if (copied > last.Copied)
        {
            _copied.WithLabels(family, label).Inc(copied - last.Copied);
        }
        else if (!published.ContainsKey(label))
        {
            _copied.WithLabels(family, label).Inc(0);
        }
        if (label == Total && bytes > last.Bytes)
        {
            _copiedBytes.WithLabels(family).Inc(bytes - last.Bytes);
        }
        published[label] = (Math.Max(copied, last.Copied), Math.Max(bytes, last.Bytes));
    }
}
