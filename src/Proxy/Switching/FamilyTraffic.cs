using System.Collections.Concurrent;

namespace Switchback.Proxy.Switching;

/// <summary>
/// The traffic of one family that a switch must coordinate with: produce requests (and transaction starts) in flight
/// to the write cluster, and offset commits in flight to the read cluster (open transactions are
/// <see cref="TransactionalProducers"/>'s). A switch <em>holds</em> new requests (they
/// wait, bounded, at the gate), <em>drains</em> those already in flight, flips the route, then releases the held
/// requests, which route with the new table. Requests count themselves in before looking at the gate, so none
/// can slip past a closing gate uncounted.
/// </summary>
public sealed class FamilyTraffic(string family)
{
    private readonly Lane _writes = new();
    private readonly Lane _commits = new();

    public string Family { get; } = family;

    /// <summary>Produce requests (and transaction starts) of the family.</summary>
    public Lane Writes => _writes;

    /// <summary>Offset commits of the family's groups.</summary>
    public Lane Commits => _commits;

    /// <summary>The lane a transaction enters when it begins to use the family that way.</summary>
    public Lane For(TransactionUse use) => use == TransactionUse.Writes ? _writes : _commits;

    private readonly ConcurrentDictionary<string, byte> _groups = new(StringComparer.Ordinal);

    /// <summary>Remembers a consumer group seen through the proxy, so a read switch knows whose offsets to carry over.</summary>
    public void GroupSeen(string group)
    {
        if (_groups.Count < 100_000)
        {
            _groups.TryAdd(group, 0);
        }
    }

    public IReadOnlyCollection<string> GroupsOf() => [.. _groups.Keys];

    /// <summary>A gate with an in-flight count.</summary>
    public sealed class Lane
    {
        private readonly Lock _lock = new();
        private int _inFlight;
        private TaskCompletionSource? _hold;
        private TaskCompletionSource? _drained;
        private int _holds;

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

        /// <summary>
        /// Closes the gate; returns a task that completes when nothing counted is in flight. Holds nest (a switch and a
        /// fleet fence may hold the same lane): the gate opens when every holder has released it.
        /// </summary>
        public Task Hold()
        {
            lock (_lock)
            {
                _holds++;
                _hold ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_drained is null || (_drained.Task.IsCompleted && _inFlight > 0))
                {
                    _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                if (_inFlight == 0)
                {
                    _drained.TrySetResult();
                }
                return _drained.Task;
            }
        }

        /// <summary>Releases one hold; when it was the last, held requests proceed (reading the route table anew).</summary>
        public void Release()
        {
            TaskCompletionSource? hold = null;
            lock (_lock)
            {
                if (_holds == 0)
                {
                    return;
                }
                if (--_holds == 0)
                {
                    hold = _hold;
                    _hold = null;
                    _drained = null;
                }
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

    /// <summary>The family's traffic, or null for a family not configured (e.g. named in an older state file).</summary>
    public FamilyTraffic? Find(string family) => _families.GetValueOrDefault(family);
}
