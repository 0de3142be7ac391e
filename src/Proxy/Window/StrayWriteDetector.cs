namespace Switchback.Proxy.Window;

/// <summary>
/// Counts, for one partition of the old write cluster, the offsets the mirror did not write since it started: writes
/// by producers that bypass the proxy. Each copy takes exactly one offset there (the mirror's producer is idempotent,
/// not transactional), and end offsets only grow, so every offset from <c>oldBase</c> (the end when the mirror
/// started) up to the end is either a copy or a stray write (a bypassing transaction's markers count as strays too).
/// Two sources bound the count:
/// <list type="bullet">
/// <item>an acknowledged copy at offset <c>o</c>: exactly <c>o + 1 - oldBase - copied</c> strays lie below it;</item>
/// <item>an end offset read from the cluster: at least <c>end - oldBase - copied - possiblyLanded</c> strays lie below
/// it, where <c>possiblyLanded</c> counts copies handed to the producer (or found after a checkpoint) and not yet
/// acknowledged. Those numbers must be taken after the end was read, so the bound never counts a copy as a stray.</item>
/// </list>
/// The count is the highest either has shown; it never goes down. Not thread-safe: the owner locks.
/// </summary>
public sealed class StrayWriteDetector(long oldBase)
{
    /// <summary>The old cluster's end offset when the mirror started.</summary>
    public long OldBase { get; } = oldBase;

    /// <summary>Stray writes found so far.</summary>
    public long Count { get; private set; }

    /// <summary>A copy was acknowledged at <paramref name="oldOffset"/>; <paramref name="copied"/> counts it and every earlier copy.</summary>
    public void CopyLanded(long oldOffset, long copied) => Raise(oldOffset + 1 - OldBase - copied);

    /// <summary>
    /// The old cluster's end was read as <paramref name="oldEnd"/>. <paramref name="copied"/> and
    /// <paramref name="possiblyLanded"/> must be read after that. Returns true when the count rose.
    /// </summary>
    public bool EndObserved(long oldEnd, long copied, long possiblyLanded) => Raise(oldEnd - OldBase - copied - possiblyLanded);

    private bool Raise(long atLeast)
    {
        if (atLeast <= Count)
        {
            return false;
        }
        Count = atLeast;
        return true;
    }
}
