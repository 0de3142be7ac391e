using System.Collections.Concurrent;

namespace Switchback.Proxy.Switching;

/// <summary>
/// The traffic of one family that a switch must coordinate with: produce requests in flight to the write cluster,
/// open transactions, and offset commits in flight to the read cluster. A switch <em>holds</em> new requests (they
/// wait, bounded, at the gate), <em>drains</em> those already in flight, flips the route, then releases the held
/// requests, which route with the new table. Requests count themselves in before looking at the gate, so none
/// can slip past a closing gate uncounted.
/// </summary>
public sealed class FamilyTraffic(string family)
{
    private readonly Lane _writes = new();
    private readonly Lane _commits = new();
    // Open transactions, each with the time (Environment.TickCount64) after which it counts as abandoned.
    private readonly ConcurrentDictionary<string, long> _openTransactions = new(StringComparer.Ordinal);

    /// <summary>
    /// A broker aborts a transaction its producer abandoned once the transaction timeout has passed since it began,
    /// checking every 10 s by default (<c>transaction.abort.timed.out.transaction.cleanup.interval.ms</c>); after
    /// that it can no longer commit where it began, so a switch need not wait for it.
    /// </summary>
    internal static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(10);

    /// <summary>The timeout assumed when the producer's own is unknown: the broker's default maximum (15 min).</summary>
    internal static readonly TimeSpan UnknownTransactionTimeout = TimeSpan.FromMinutes(15);

    public string Family { get; } = family;

    /// <summary>Produce requests (and transaction starts) of the family.</summary>
    public Lane Writes => _writes;

    /// <summary>Offset commits of the family's groups.</summary>
    public Lane Commits => _commits;

    private readonly ConcurrentDictionary<string, byte> _groups = new(StringComparer.Ordinal);

    /// <summary>Transactions of the family begun and neither ended, re-initialised nor abandoned past their timeout.</summary>
    public int OpenTransactions
    {
        get
        {
            var now = Environment.TickCount64;
            var open = 0;
            foreach (var (transactionalId, abandonedAt) in _openTransactions)
            {
                if (abandonedAt > now)
                {
                    open++;
                }
                else
                {
                    _openTransactions.TryRemove(new KeyValuePair<string, long>(transactionalId, abandonedAt));
                }
            }
            return open;
        }
    }

    /// <summary>Remembers a consumer group seen through the proxy, so a read switch knows whose offsets to carry over.</summary>
    public void GroupSeen(string group)
    {
        if (_groups.Count < 100_000)
        {
            _groups.TryAdd(group, 0);
        }
    }

    public IReadOnlyCollection<string> GroupsOf() => [.. _groups.Keys];
    public bool IsTransactionOpen(string transactionalId) =>
        _openTransactions.TryGetValue(transactionalId, out var abandonedAt) && abandonedAt > Environment.TickCount64;

    /// <summary>A transaction began (its first AddPartitionsToTxn or AddOffsetsToTxn); <paramref name="timeout"/> is the producer's, when known.</summary>
    public void TransactionStarted(string transactionalId, TimeSpan? timeout) =>
        _openTransactions[transactionalId] = Environment.TickCount64 + (long)((timeout ?? UnknownTransactionTimeout) + AbortGrace).TotalMilliseconds;

    /// <summary>The transaction ended: EndTxn answered, or the id was (re)initialised, which aborts any transaction it had open.</summary>
    public void TransactionEnded(string transactionalId) => _openTransactions.TryRemove(transactionalId, out _);

    /// <summary>A gate with an in-flight count.</summary>
    public sealed class Lane
    {
        private readonly Lock _lock = new();
        private int _inFlight;
        private TaskCompletionSource? _hold;
        private TaskCompletionSource? _drained;

        public int InFlight => Volatile.Read(ref _inFlight);
        public bool IsHeld => Volatile.Read(ref _hold) is not null;

        /// <summary>Counts a request in, waiting while the gate is held. <paramref name="bypass"/> lets it through a held gate (still counted).</summary>
        public async ValueTask EnterAsync(TimeSpan maxWait, CancellationToken cancellationToken, bool bypass = false)
        {
            var deadline = DateTime.UtcNow + maxWait;
            while (true)
            {
                Task held;
                lock (_lock)
                {
                    if (_hold is null || bypass)
                    {
                        _inFlight++;
                        return;
                    }
                    held = _hold.Task;
                }
                var remaining = deadline - DateTime.UtcNow;
                if (remaining <= TimeSpan.Zero)
                {
                    throw new TimeoutException("The family is switching and did not reopen in time.");
                }
                await held.WaitAsync(remaining, cancellationToken).ConfigureAwait(false);
            }
        }

        public void Exit()
        {
            lock (_lock)
            {
                _inFlight--;
                if (_inFlight == 0)
                {
                    _drained?.TrySetResult();
                }
            }
        }

        /// <summary>Closes the gate; returns a task that completes when nothing counted is in flight.</summary>
        public Task Hold()
        {
            lock (_lock)
            {
                _hold ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_inFlight == 0)
                {
                    _drained.TrySetResult();
                }
                return _drained.Task;
            }
        }

        /// <summary>Opens the gate; held requests proceed (reading the route table anew).</summary>
        public void Release()
        {
            TaskCompletionSource? hold;
            lock (_lock)
            {
                hold = _hold;
                _hold = null;
                _drained = null;
            }
            hold?.TrySetResult();
        }
    }
}

/// <summary>The <see cref="FamilyTraffic"/> of every family, including the default route's.</summary>
public sealed class TrafficRegistry(IEnumerable<string> families)
{
    private readonly Dictionary<string, FamilyTraffic> _families = families.ToDictionary(f => f, f => new FamilyTraffic(f), StringComparer.Ordinal);

    public FamilyTraffic For(string family) => _families.TryGetValue(family, out var traffic)
        ? traffic
        : throw new KeyNotFoundException($"Unknown family '{family}'.");
}
