namespace Switchback.Proxy.Translation;

/// <summary>An offset translated through a sync, or why it could not be.</summary>
public readonly record struct SyncTranslation(long? Offset, OffsetSync? Sync, string? Why)
{
    public static SyncTranslation None(string why) => new(null, null, why);
}

/// <summary>
/// The offset syncs of one source partition: the newest first, at most <see cref="Capacity"/>, older ones thinned so
/// that their spacing grows with their age (translation is precise near the live end, coarser further back, as in
/// MirrorMaker 2's own store). Not thread-safe: <see cref="OffsetSyncStore"/> locks around it.
/// </summary>
public sealed class PartitionSyncs
{
    /// <summary>MirrorMaker 2 keeps one sync per bit of the offset.</summary>
    public const int Capacity = 64;

    // Newest first: upstream and downstream offsets both decrease along the list.
    private readonly List<OffsetSync> _syncs = [];

    public int Count => _syncs.Count;

    public OffsetSync? Latest => _syncs.Count == 0 ? null : _syncs[0];

    /// <summary>The syncs kept, newest first.</summary>
    public IReadOnlyList<OffsetSync> Syncs => _syncs;

    public void Add(OffsetSync sync)
    {
        if (_syncs.Count > 0 && (sync.Upstream < _syncs[0].Upstream || sync.Downstream < _syncs[0].Downstream))
        {
            // An offset went back (a topic re-created or truncated, replication restarted): earlier pairs no longer hold.
            _syncs.Clear();
        }
        if (_syncs.Count > 0 && sync.Upstream == _syncs[0].Upstream)
        {
            _syncs[0] = sync;
            return;
        }
        _syncs.Insert(0, sync);
        if (_syncs.Count > Capacity)
        {
            Thin();
        }
    }

    /// <summary>
    /// Forward (source offset to target offset): the newest sync whose upstream offset is at most
    /// <paramref name="upstreamOffset"/>; its downstream offset on an exact match, one past it otherwise (what lies
    /// between that sync and the group's offset may or may not have been replicated, so it is read again rather than skipped).
    /// </summary>
    public SyncTranslation Forward(long upstreamOffset)
    {
        foreach (var sync in _syncs)
        {
            if (sync.Upstream <= upstreamOffset)
            {
                return new SyncTranslation(sync.Downstream + (sync.Upstream == upstreamOffset ? 0 : 1), sync, null);
            }
        }
        return _syncs.Count == 0
            ? SyncTranslation.None("no offset sync for this partition")
            : SyncTranslation.None($"every offset sync kept is newer than offset {upstreamOffset} (oldest at {_syncs[^1].Upstream})");
    }

    /// <summary>
    /// Reverse (target offset to source offset), for a read switch back to the source: the newest sync whose
    /// downstream offset is at most <paramref name="downstreamOffset"/>; its upstream offset on an exact match, one past
    /// it otherwise (the target record at the sync is the source record at its upstream offset, and what follows it on
    /// the target came from later source offsets).
    /// </summary>
    public SyncTranslation Reverse(long downstreamOffset)
    {
        foreach (var sync in _syncs)
        {
            if (sync.Downstream <= downstreamOffset)
            {
                return new SyncTranslation(sync.Upstream + (sync.Downstream == downstreamOffset ? 0 : 1), sync, null);
            }
        }
        return _syncs.Count == 0
            ? SyncTranslation.None("no offset sync for this partition")
            : SyncTranslation.None($"every offset sync kept is newer than offset {downstreamOffset} on the target (oldest at {_syncs[^1].Downstream})");
    }

    /// <summary>
    /// Drops the one sync (neither the newest nor the oldest) whose loss widens the gap around it least relative to its
    /// age: spacing ends up roughly proportional to the distance from the newest sync.
    /// </summary>
    private void Thin()
    {
        var newest = _syncs[0].Upstream;
        var drop = -1;
        var best = double.MaxValue;
        for (var i = 1; i < _syncs.Count - 1; i++)
        {
            var gap = (double)(_syncs[i - 1].Upstream - _syncs[i + 1].Upstream);
            var age = (double)Math.Max(1, newest - _syncs[i].Upstream);
            if (gap / age < best)
            {
                best = gap / age;
                drop = i;
            }
        }
        _syncs.RemoveAt(drop);
    }
}
