using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>
/// A family held for a switch: its write lane (new produce requests, new transactions) and/or its commit lane (offset
/// commits, transactions' offsets) closed, and <see cref="DrainAsync"/> waiting until nothing counted is in flight
/// and no transaction using the family that way is open. Disposing releases what it held (once).
/// </summary>
public sealed class FamilyHold : IDisposable
{
    private readonly ProxyState _state;
    private readonly FamilyTraffic _traffic;
    private readonly Task _writesDrained;
    private readonly Task _commitsDrained;
    private int _released;

    public FamilyHold(ProxyState state, string family, bool writes, bool commits)
    {
        _state = state;
        Family = family;
        Writes = writes;
        Commits = commits;
        _traffic = state.Traffic.For(family);
        _writesDrained = writes ? _traffic.Writes.Hold() : Task.CompletedTask;
        _commitsDrained = commits ? _traffic.Commits.Hold() : Task.CompletedTask;
    }

    public string Family { get; }
    public bool Writes { get; }
    public bool Commits { get; }

    /// <summary>Completes when the held lanes are drained and the family's open transactions (of the held kinds) have ended.</summary>
    public async Task DrainAsync(CancellationToken cancellationToken)
    {
        await _writesDrained.WaitAsync(cancellationToken).ConfigureAwait(false);
        await _commitsDrained.WaitAsync(cancellationToken).ConfigureAwait(false);
        // Open transactions finish on the cluster they began on; new ones wait at the gates.
        await _state.Transactions.DrainedAsync(Family, TransactionUses, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The kinds of open transaction a switch of this hold must wait for.</summary>
    public TransactionUse[] TransactionUses =>
        [.. Writes ? [TransactionUse.Writes] : Array.Empty<TransactionUse>(), .. Commits ? [TransactionUse.Offsets] : Array.Empty<TransactionUse>()];

    /// <summary>What is still in flight, for a timeout's explanation.</summary>
    public string Describe() =>
        $"in flight: {_traffic.Writes.InFlight} produce, {_traffic.Commits.InFlight} commit; open transactions: {_state.Transactions.OpenIn(Family, TransactionUses)}";

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 1)
        {
            return;
        }
        if (Writes)
        {
            _traffic.Writes.Release();
        }
        if (Commits)
        {
            _traffic.Commits.Release();
        }
    }
}
