namespace Switchback.Proxy.Window;

/// <summary>Where a mirror is in its life.</summary>
public enum MirrorState
{
    /// <summary>Reading back what was copied after the last checkpoint, before copying again.</summary>
    Resuming,

    /// <summary>Copying.</summary>
    Running,

    /// <summary>The last attempt failed (see <see cref="MirrorFigures.Error"/>); it is retried.</summary>
    Retrying,

    /// <summary>Stopped; progress is kept on disk unless the mirror was ended.</summary>
    Stopped,
}

/// <summary>A family's mirror at one moment: per partition and in total (the window view and <c>/metrics</c>).</summary>
/// <param name="Family">The family.</param>
/// <param name="From">The new write cluster, read.</param>
/// <param name="To">The old (origin) write cluster, written.</param>
/// <param name="State">Where the mirror is in its life.</param>
/// <param name="StartedAt">When the mirror was first started for this window.</param>
/// <param name="Partitions">Per partition, in topic and partition order.</param>
/// <param name="Totals">Sums over the partitions (lag in ms: the largest).</param>
/// <param name="Alignment">Whether copies landed at their original offsets.</param>
/// <param name="Error">The last failure, while <see cref="State"/> is <see cref="MirrorState.Retrying"/>.</param>
public sealed record MirrorFigures(
    string Family,
    string From,
    string To,
    MirrorState State,
    DateTimeOffset StartedAt,
    IReadOnlyList<PartitionMirrorFigures> Partitions,
    MirrorTotals Totals,
    OffsetAlignment Alignment,
    string? Error);

/// <summary>One partition of a mirror.</summary>
/// <param name="Topic">Topic name.</param>
/// <param name="Partition">Partition number.</param>
/// <param name="Start">The offset on the new cluster the mirror started from.</param>
/// <param name="Position">Everything below this offset on the new cluster is copied and acknowledged.</param>
/// <param name="NewEnd">The new cluster's end as last seen (last stable offset when a fetch reached it, else high watermark).</param>
/// <param name="OldEnd">The old cluster's end: as last read by the stray check, or after the last copy if later.</param>
/// <param name="Copied">Copies acknowledged since the mirror started.</param>
/// <param name="LagRecords">Offsets on the new cluster not yet copied (<see cref="NewEnd"/> minus <see cref="Position"/>; commit markers count).</param>
/// <param name="LagMs">Age of the oldest record read and not yet acknowledged; when behind with none in flight, time since the last copied record's timestamp; 0 when caught up; null when behind with nothing to date it by.</param>
/// <param name="StrayWrites">Offsets on the old cluster the mirror did not write since it started: producers bypassing the proxy.</param>
/// <param name="Divergent">Copies that landed at another offset than their original.</param>
/// <param name="Error">A partition-level read error (e.g. its start offset no longer exists on the new cluster).</param>
public sealed record PartitionMirrorFigures(
    string Topic,
    int Partition,
    long Start,
    long Position,
    long NewEnd,
    long OldEnd,
    long Copied,
    long LagRecords,
    long? LagMs,
    long StrayWrites,
    long Divergent,
    string? Error);

/// <summary>A mirror's totals over its partitions.</summary>
/// <param name="Copied">Copies acknowledged.</param>
/// <param name="CopiedBytes">Key, value and header bytes copied by this process (not persisted).</param>
/// <param name="LagRecords">Offsets not yet copied, summed.</param>
/// <param name="MaxLagMs">The largest partition lag in milliseconds (null when a lagging partition cannot be dated).</param>
/// <param name="StrayWrites">Stray writes, summed.</param>
public sealed record MirrorTotals(long Copied, long CopiedBytes, long LagRecords, long? MaxLagMs, long StrayWrites);

/// <summary>
/// Whether each copy landed on the old cluster at the offset its original has on the new one. Expected when the two
/// clusters were offset-aligned where the mirror started (the data-parity gate passed) and nothing else wrote the old
/// cluster; a stray write, or a transaction on the new cluster (its commit or abort marker takes an offset there that
/// has no copy, and aborted records are never copied), makes later copies land lower.
/// </summary>
/// <param name="Aligned">Copies at their original offset.</param>
/// <param name="Divergent">Copies at another offset.</param>
/// <param name="First">The first divergent copy, if any.</param>
public sealed record OffsetAlignment(long Aligned, long Divergent, DivergentCopy? First);

/// <summary>A copy that landed at another offset than its original.</summary>
public sealed record DivergentCopy(string Topic, int Partition, long NewOffset, long OldOffset);
