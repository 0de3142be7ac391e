using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Fleet;

/// <summary>A fleet-wide switch did not happen: a member refused or did not answer in time, or the switch was aborted.</summary>
public sealed class FleetSwitchException(string message, FamilyRoute? committed = null) : Exception(message)
{
    /// <summary>Set when the switch was committed (the route is in force) but not every live member confirmed it in time.</summary>
    public FamilyRoute? Committed { get; } = committed;
}

/// <summary>
/// This instance's part in the fleet. Every instance reads the control log in order and acts on it: on a prepare it
/// holds and drains the family, then appends ready (or refuse); on a commit it persists the route locally (its cache
/// in <c>routes.json</c>), swaps it in, releases what it held and appends applied; on an abort it releases. The
/// instance that received the admin call runs <see cref="SwitchAsync"/>: prepare, wait for every live member's ready
/// (or for its membership to expire), copy offsets, commit, wait for every live member's applied.
/// </summary>
/// <remarks>
/// Fencing: while this instance's membership is not renewed (or it has not read the log to its end since it last
/// was), it holds the writes and offset commits of every family, so a commit the others made without it cannot
/// leave it writing to the old cluster. See docs/architecture.md, "Fleet", for the invariant.
/// </remarks>
public sealed partial class FleetCoordinator : IAsyncDisposable
{
    private readonly ProxyState _state;
    private readonly RouteStore _store;
    private readonly ControlLog _log;
    private readonly IFleetLiveness _liveness;
    private readonly FleetConfig _config;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, SwitchProgress> _switches = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, FamilyHold> _holds = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StatusRecord> _statuses = new(StringComparer.Ordinal);
    private readonly Lock _fenceLock = new();
    private readonly SemaphoreSlim _saving = new(1, 1);
    private List<FamilyHold>? _fence;
    private DateTimeOffset? _fencedSince;
    private long _replayEnd = long.MaxValue;
    private volatile bool _caughtUp;
    private Task? _watch;
    // Pulsed whenever a record is read or the membership changes, so waits re-check their condition.
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public FleetCoordinator(ProxyState state, RouteStore store, ControlLog log, IFleetLiveness liveness, ILogger<FleetCoordinator> logger)
    {
        _state = state;
        _store = store;
        _log = log;
        _liveness = liveness;
        _config = state.Config.Fleet ?? throw new InvalidOperationException("Fleet mode is not configured.");
        _logger = logger;
        _log.RecordRead += OnRecord;
        _liveness.Changed += Pulse;
        // Until it has joined and read the log, the instance must not route any family's writes.
        Fence("starting");
    }

    public string InstanceId => _config.InstanceId;

    /// <summary>The group membership: live instances, leader, generation.</summary>
    public IFleetLiveness Liveness => _liveness;

    /// <summary>True while this instance holds every family's writes because its membership lapsed or it is catching up.</summary>
    public bool IsFenced
    {
        get
        {
            lock (_fenceLock)
            {
                return _fence is not null;
            }
        }
    }

    /// <summary>Since when this instance has held every family's writes; null while it routes.</summary>
    public DateTimeOffset? FencedSince
    {
        get
        {
            lock (_fenceLock)
            {
                return _fencedSince;
            }
        }
    }

    /// <summary>The members' last status records (what each routes by and holds), by instance id.</summary>
    public IReadOnlyDictionary<string, StatusRecord> Statuses => _statuses;

    /// <summary>Joins the fleet and reads the control log to its end: the routes it holds win over the local cache.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _log.StartAsync(cancellationToken).ConfigureAwait(false);
        var end = await EndOffsetAsync(cancellationToken).ConfigureAwait(false);
        Interlocked.Exchange(ref _replayEnd, end);
        await _log.ReadUpToAsync(end, cancellationToken).ConfigureAwait(false);
        // Switches prepared and not yet decided when this instance joined: hold them as a member would.
        foreach (var progress in _switches.Values.Where(p => p.Outcome is null))
        {
            StartHold(progress.Prepare);
        }
        _caughtUp = true;
        _watch = Task.Run(WatchMembershipAsync);
        await _liveness.StartAsync(cancellationToken).ConfigureAwait(false);
        await WhenUnfencedAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<long> EndOffsetAsync(CancellationToken cancellationToken)
    {
        // The offset of a record appended now is the log's end as of now.
        return await _log.AppendAsync(new StatusRecord(InstanceId, Advertised, Version, RoutesEpoch, [], DateTimeOffset.UtcNow), cancellationToken)
            .ConfigureAwait(false) + 1;
    }

    /// <summary>The sum of the families' epochs: grows with every committed switch, equal on members that applied the same ones.</summary>
    private long RoutesEpoch => _state.Routes.Current.Families.Sum(f => f.Epoch);

    private string Advertised => $"{_state.Config.AdvertisedHost}:{_state.AdvertisedPort}";

    private static string Version => typeof(FleetCoordinator).Assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary>Completes once this instance is a renewed member that has read the log to its end.</summary>
    public async Task WhenUnfencedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (!IsFenced)
            {
                return;
            }
            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    // ------------------------------------------------------------ the coordinator's side of a switch

    /// <summary>
    /// Set by the switch coordinator: once this instance holds and has drained a family for a prepare, waits until the
    /// family's rollback mirror, if this instance runs it and the prepare moves writes back to where it copies, has
    /// copied back everything, and answers its report (null: nothing to wait for).
    /// </summary>
    public Func<PrepareRecord, CancellationToken, Task<JsonElement?>>? MirrorCaughtUp { get; set; }

    /// <summary>Set by the switch coordinator: a committed route was swapped in (previous, next, whether this instance ran the switch).</summary>
    public Action<FamilyRoute, FamilyRoute, bool>? RouteApplied { get; set; }

    /// <summary>
    /// Moves <paramref name="current"/> to <paramref name="target"/> across the fleet: prepare, every live member ready
    /// (or gone), <paramref name="copy"/> (the offsets), commit, every live member applied. Throws
    /// <see cref="FleetSwitchException"/> (after appending an abort) when it cannot; nothing changed then.
    /// </summary>
    public async Task<FamilyRoute> SwitchAsync(string action, FamilyRoute current, ClusterRoute target, bool force,
        Func<IReadOnlyDictionary<string, JsonElement>, CancellationToken, Task> copy, CancellationToken cancellationToken)
    {
        if (IsFenced)
        {
            throw new FleetSwitchException($"could not start: this instance ({InstanceId}) is not a current member of the fleet");
        }
        var switchId = Guid.NewGuid().ToString("N");
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(30);
        var prepare = new PrepareRecord(switchId, current.Family, action, target.Write, target.Read,
            target.Write != current.Route.Write, target.Read != current.Route.Read, InstanceId, deadline.ToUnixTimeMilliseconds(), force);
        try
        {
            var prepared = await _log.AppendAsync(prepare, cancellationToken).ConfigureAwait(false);
            await _log.ReadUpToAsync(prepared + 1, cancellationToken).ConfigureAwait(false);
            var progress = _switches[switchId];
            await WaitForMembersAsync(progress, p => p.Ready, "ready", cancellationToken).ConfigureAwait(false);
            await copy(progress.Mirrored, cancellationToken).ConfigureAwait(false);
            // Commit only as a renewed member: a rebalance (a member expired) can outlast the lease; wait for the
            // new generation, within the switch's deadline.
            while (!_liveness.IsRenewed)
            {
                var changed = Volatile.Read(ref _changed).Task;
                if (_liveness.IsRenewed)
                {
                    break;
                }
                try
                {
                    await changed.WaitAsync(TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                }
            }
            await WaitForMembersAsync(progress, p => p.Ready, "ready", cancellationToken).ConfigureAwait(false);
            // A close committed since the switch began changes only the window: take the window as it stands now.
            var latest = _state.Routes.Current.Find(current.Family);
            var basis = latest is not null && latest.Epoch == current.Epoch && latest.Route == current.Route ? current with { Window = latest.Window } : current;
            var next = SwitchCoordinator.NextRoute(basis, target, rollback: action == "rollback");
            var committed = await _log.AppendAsync(CommitRecord.From(switchId, next), cancellationToken).ConfigureAwait(false);
            await _log.ReadUpToAsync(committed + 1, cancellationToken).ConfigureAwait(false);
            if (progress.Outcome is not CommitRecord)
            {
                throw new FleetSwitchException($"was aborted by {(progress.Outcome as AbortRecord)?.By} before its commit: {(progress.Outcome as AbortRecord)?.Why}");
            }
            try
            {
                await WaitForMembersAsync(progress, p => p.Applied, "applied", CancellationToken.None, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            }
            catch (FleetSwitchException e)
            {
                throw new FleetSwitchException(e.Message, committed: next);
            }
            return next;
        }
        catch (Exception e) when (e is FleetSwitchException or OperationCanceledException or Confluent.Kafka.KafkaException)
        {
            if (!_switches.TryGetValue(switchId, out var progress) || progress.Outcome is not CommitRecord)
            {
                var why = e is OperationCanceledException ? $"not every member was ready in time ({Waiting(switchId)})" : e.Message;
                await TryAbortAsync(switchId, why).ConfigureAwait(false);
                throw e is FleetSwitchException ? e : new FleetSwitchException($"did not complete: {why}");
            }
            throw;
        }
    }

    /// <summary>
    /// Commits <paramref name="closed"/> (the family's route at its current epoch, its window closed) fleet-wide, with no
    /// prepare and no hold, as no route changes, and waits for every live member to apply it. Members skip it if a
    /// switch committed a newer epoch first: it answers the family's route here once read back, which the caller
    /// compares. Throws <see cref="FleetSwitchException"/> when it cannot start, or (with the committed route) when a
    /// member did not confirm it in time.
    /// </summary>
    public async Task<FamilyRoute> CommitWindowAsync(FamilyRoute closed, CancellationToken cancellationToken)
    {
        if (IsFenced)
        {
            throw new FleetSwitchException($"could not start: this instance ({InstanceId}) is not a current member of the fleet");
        }
        var commitId = $"window-{Guid.NewGuid():N}";
        // Never appended: it only gives the members' applied records something to be counted against.
        var progress = new SwitchProgress(new PrepareRecord(commitId, closed.Family, "close", closed.Route.Write, closed.Route.Read, false, false,
            InstanceId, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        _switches[commitId] = progress;
        var offset = await _log.AppendAsync(CommitRecord.From(commitId, closed), cancellationToken).ConfigureAwait(false);
        // Appended: from here on, whatever happens, the log decides; a wait that ends early says so (committed).
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await _log.ReadUpToAsync(offset + 1, limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new FleetSwitchException("was committed, but this instance did not read it back in time", committed: closed);
        }
        var applied = _state.Routes.Current.Find(closed.Family)!;
        try
        {
            await WaitForMembersAsync(progress, p => p.Applied, "applied", CancellationToken.None, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }
        catch (FleetSwitchException e)
        {
            throw new FleetSwitchException(e.Message, committed: applied);
        }
        return applied;
    }

    /// <summary>Completes once this instance has read the control log to its end as of the call.</summary>
    public Task CaughtUpAsync(CancellationToken cancellationToken) => _log.CaughtUpAsync(cancellationToken);

    /// <summary>The id of a switch of <paramref name="family"/> prepared and not yet committed or aborted, as far as this instance has read.</summary>
    public string? SwitchInProgress(string family) =>
        _switches.Values.FirstOrDefault(p => p.Outcome is null && p.Prepare.Family == family && p.Prepare.Action != "close")?.Prepare.SwitchId;

    /// <summary>Waits until every live member has a record of <paramref name="kind"/> for the switch (members that left the view need none).</summary>
    private async Task WaitForMembersAsync(SwitchProgress progress, Func<SwitchProgress, ConcurrentDictionary<string, byte>> answered, string kind,
        CancellationToken cancellationToken, TimeSpan? limit = null)
    {
        using var timeout = limit is { } l ? new CancellationTokenSource(l) : null;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout?.Token ?? CancellationToken.None);
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (progress.Refusals.FirstOrDefault() is { Key: { } refuser, Value: { } why })
            {
                throw new FleetSwitchException($"was refused by {refuser}: {why}");
            }
            if (progress.Outcome is AbortRecord abort)
            {
                throw new FleetSwitchException($"was aborted by {abort.By}: {abort.Why}");
            }
            var missing = _liveness.LiveInstances.Where(i => !answered(progress).ContainsKey(i)).ToList();
            if (missing.Count == 0)
            {
                return;
            }
            try
            {
                await changed.WaitAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeout?.IsCancellationRequested == true && !cancellationToken.IsCancellationRequested)
            {
                throw new FleetSwitchException($"was committed, but {string.Join(", ", missing)} did not confirm it ({kind}) in time; they stop routing the family's writes once their membership lapses");
            }
        }
    }

    private string Waiting(string switchId) =>
        _switches.TryGetValue(switchId, out var progress)
            ? $"waiting for {string.Join(", ", _liveness.LiveInstances.Where(i => !progress.Ready.ContainsKey(i)).DefaultIfEmpty("nobody"))}"
            : "the prepare was not read back";

    private async Task TryAbortAsync(string switchId, string why)
    {
        try
        {
            await _log.AppendAsync(new AbortRecord(switchId, InstanceId, why)).ConfigureAwait(false);
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            // Members still holding release when the prepare's deadline passes with no commit (see WatchDeadlinesAsync).
            LogAbortNotWritten(_logger, switchId, e.Message);
        }
    }

    /// <summary>Appends an audit entry to the fleet-wide trail (best effort: the local audit log has it anyway).</summary>
    public async Task AuditAsync(AuditEntry entry)
    {
        try
        {
            await _log.AppendAsync(new AuditRecord(InstanceId, entry)).ConfigureAwait(false);
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            LogAuditNotWritten(_logger, e.Message);
        }
    }

    // ------------------------------------------------------------ every member's side

    private void OnRecord(long offset, ControlRecord record)
    {
        var live = offset >= Interlocked.Read(ref _replayEnd);
        switch (record)
        {
            case PrepareRecord prepare:
                _switches[prepare.SwitchId] = new SwitchProgress(prepare);
                if (live)
                {
                    StartHold(prepare);
                }
                break;
            case ReadyRecord ready when _switches.TryGetValue(ready.SwitchId, out var progress):
                if (ready.Mirrored is { } mirrored)
                {
                    progress.Mirrored.TryAdd(ready.Instance, mirrored);
                }
                progress.Ready.TryAdd(ready.Instance, 0);
                break;
            case RefuseRecord refuse when _switches.TryGetValue(refuse.SwitchId, out var progress):
                progress.Refusals.TryAdd(refuse.Instance, refuse.Why);
                break;
            case AppliedRecord applied when _switches.TryGetValue(applied.SwitchId, out var progress):
                progress.Applied.TryAdd(applied.Instance, 0);
                break;
            case AbortRecord abort:
                if (_switches.TryGetValue(abort.SwitchId, out var aborted) && aborted.Outcome is null)
                {
                    aborted.Outcome = abort;
                }
                if (_switches.TryGetValue(abort.SwitchId, out var decided) && decided.Outcome is AbortRecord)
                {
                    ReleaseHold(abort.SwitchId);
                }
                break;
            case CommitRecord commit:
                if (_switches.TryGetValue(commit.SwitchId, out var committed))
                {
                    if (committed.Outcome is AbortRecord)
                    {
                        break; // aborted first: this commit lost
                    }
                    committed.Outcome = commit;
                }
                Apply(commit, live);
                break;
            case StatusRecord status:
                _statuses[status.Instance] = status;
                break;
        }
        Pulse();
    }

    /// <summary>
    /// Swaps a committed route in (on the reader thread, so commits apply in log order) and releases; then persists the
    /// table and confirms.
    /// </summary>
    /// <remarks>
    /// The commit is durable in the log before any instance reads it, and the log is what a (re)starting instance routes
    /// by (it reads the log before it serves); <c>routes.json</c> is this instance's cache of it. So the cache is written
    /// after the release, off the reader thread: the disk's flush neither lengthens the family's pause nor delays the
    /// records read after the commit (the producer mappings that the first batches after the switch wait for).
    /// </remarks>
    private void Apply(CommitRecord commit, bool live)
    {
        var route = commit.ToRoute();
        var known = _state.Routes.Current.Find(route.Family);
        if (known is null)
        {
            return; // a family this instance is not configured with
        }
        // Same route and epoch with another window: a window's close.
        var changed = route.Epoch >= known.Epoch && (route.Route != known.Route || route.Epoch != known.Epoch || route.Window != known.Window);
        if (changed)
        {
            SwitchCoordinator.Swap(_state, _state.Routes.Current.With(route), route);
        }
        ReleaseHold(commit.SwitchId);
        if (changed && live && RouteApplied is { } applied)
        {
            var coordinatedHere = _switches.TryGetValue(commit.SwitchId, out var progress) && progress.Prepare.Coordinator == InstanceId;
            applied(known, route, coordinatedHere);
        }
        if (changed || live)
        {
            _ = Task.Run(() => PersistAndConfirmAsync(commit.SwitchId, save: changed, confirm: live));
        }
    }

    /// <summary>Writes the current table to <c>routes.json</c> (saves run one at a time, each writing the newest table), then appends applied.</summary>
    private async Task PersistAndConfirmAsync(string switchId, bool save, bool confirm)
    {
        if (save)
        {
            await _saving.WaitAsync().ConfigureAwait(false);
            try
            {
                _store.Save(_state.Routes.Current);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The route is in force (the log has it); only the local cache is behind until the next save.
                LogRoutesNotSaved(_logger, e.Message);
            }
            finally
            {
                _saving.Release();
            }
        }
        if (confirm && !_stop.IsCancellationRequested)
        {
            try
            {
                await AppendQuietlyAsync(new AppliedRecord(switchId, InstanceId)).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                // The instance stopped meanwhile: it no longer routes anything to confirm.
            }
        }
    }

    private void StartHold(PrepareRecord prepare)
    {
        var hold = new FamilyHold(_state, prepare.Family, prepare.WriteMoves, prepare.ReadMoves);
        if (!_holds.TryAdd(prepare.SwitchId, hold))
        {
            hold.Dispose();
            return;
        }
        _ = Task.Run(async () =>
        {
            var remaining = DateTimeOffset.FromUnixTimeMilliseconds(prepare.DeadlineUnixMs) - DateTimeOffset.UtcNow;
            using var deadline = new CancellationTokenSource(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
            var drained = false;
            try
            {
                await hold.DrainAsync(deadline.Token).ConfigureAwait(false);
                drained = true;
                // The instance that runs the family's mirror answers once it has copied back what it must.
                JsonElement? mirrored = MirrorCaughtUp is { } caughtUp ? await caughtUp(prepare, deadline.Token).ConfigureAwait(false) : null;
                await AppendQuietlyAsync(new ReadyRecord(prepare.SwitchId, InstanceId, mirrored)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or UpstreamUnavailableException or Confluent.Kafka.KafkaException)
            {
                var why = !drained ? $"not drained before the deadline ({hold.Describe()})"
                    : e is OperationCanceledException ? "its rollback mirror did not copy back everything before the deadline"
                    : $"its rollback mirror's progress could not be checked: {e.Message}";
                await AppendQuietlyAsync(new RefuseRecord(prepare.SwitchId, InstanceId, why)).ConfigureAwait(false);
            }
            // Past the deadline with neither commit nor abort (its coordinator died): abort it, and the log decides.
            var afterDeadline = DateTimeOffset.FromUnixTimeMilliseconds(prepare.DeadlineUnixMs) + TimeSpan.FromSeconds(5) - DateTimeOffset.UtcNow;
            if (afterDeadline > TimeSpan.Zero)
            {
                await Task.Delay(afterDeadline, _stop.Token).ConfigureAwait(false);
            }
            if (_switches.TryGetValue(prepare.SwitchId, out var progress) && progress.Outcome is null)
            {
                await AppendQuietlyAsync(new AbortRecord(prepare.SwitchId, InstanceId, "neither committed nor aborted by its deadline")).ConfigureAwait(false);
            }
        });
    }

    private void ReleaseHold(string switchId)
    {
        if (_holds.TryRemove(switchId, out var hold))
        {
            hold.Dispose();
        }
    }

    private async Task AppendQuietlyAsync(ControlRecord record)
    {
        try
        {
            await _log.AppendAsync(record, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is Confluent.Kafka.KafkaException or OperationCanceledException)
        {
            LogAppendFailed(_logger, record.Key, e.Message);
        }
    }

    // ------------------------------------------------------------ fencing

    private async Task WatchMembershipAsync()
    {
        var lastStatus = DateTimeOffset.MinValue;
        while (!_stop.IsCancellationRequested)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (_liveness.IsRenewed && _caughtUp)
            {
                if (IsFenced)
                {
                    // Back in the group: whatever was committed meanwhile is applied before anything is routed again.
                    try
                    {
                        await _log.CaughtUpAsync(_stop.Token).ConfigureAwait(false);
                        Unfence();
                    }
                    catch (Confluent.Kafka.KafkaException)
                    {
                        // Still cut off from the control cluster: stay fenced and try again.
                    }
                }
            }
            else
            {
                Fence(_caughtUp ? "membership not renewed" : "catching up");
            }
            if (DateTimeOffset.UtcNow - lastStatus > TimeSpan.FromSeconds(5) && !IsFenced)
            {
                lastStatus = DateTimeOffset.UtcNow;
                _ = AppendQuietlyAsync(new StatusRecord(InstanceId, Advertised, Version, RoutesEpoch,
                    [.. _holds.Values.Select(h => h.Family).Distinct()], lastStatus));
            }
            // Wake at the latest when the membership would lapse, even if nothing else happens.
            var until = _liveness.RenewedUntil - DateTimeOffset.UtcNow;
            var wake = until > TimeSpan.Zero ? TimeSpan.FromMilliseconds(Math.Min(until.TotalMilliseconds + 1, 1000)) : TimeSpan.FromMilliseconds(200);
            try
            {
                await changed.WaitAsync(wake, _stop.Token).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Fence(string why)
    {
        lock (_fenceLock)
        {
            if (_fence is not null)
            {
                return;
            }
            _fence = [.. _state.Routes.Current.Families.Append(_state.Routes.Current.Default)
                .Select(f => new FamilyHold(_state, f.Family, writes: true, commits: true))];
            _fencedSince = DateTimeOffset.UtcNow;
        }
        LogFenced(_logger, InstanceId, why);
        Pulse();
    }

    private void Unfence()
    {
        List<FamilyHold>? fence;
        lock (_fenceLock)
        {
            fence = _fence;
            _fence = null;
            _fencedSince = null;
        }
        if (fence is null)
        {
            return;
        }
        foreach (var hold in fence)
        {
            hold.Dispose();
        }
        LogUnfenced(_logger, InstanceId);
        Pulse();
    }

    private void Pulse() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_watch is not null)
        {
            await _watch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        _log.RecordRead -= OnRecord;
        _liveness.Changed -= Pulse;
        await _liveness.DisposeAsync().ConfigureAwait(false);
        await _log.DisposeAsync().ConfigureAwait(false);
        foreach (var hold in _holds.Values)
        {
            hold.Dispose();
        }
        Unfence();
        _stop.Dispose();
    }

    /// <summary>What this instance has read of one switch.</summary>
    private sealed class SwitchProgress(PrepareRecord prepare)
    {
        public PrepareRecord Prepare { get; } = prepare;
        public ConcurrentDictionary<string, byte> Ready { get; } = new(StringComparer.Ordinal);
        public ConcurrentDictionary<string, string> Refusals { get; } = new(StringComparer.Ordinal);
        public ConcurrentDictionary<string, byte> Applied { get; } = new(StringComparer.Ordinal);

        /// <summary>The mirror reports of the members that run the family's rollback mirror (see <see cref="ReadyRecord.Mirrored"/>).</summary>
        public ConcurrentDictionary<string, JsonElement> Mirrored { get; } = new(StringComparer.Ordinal);

        /// <summary>The first commit or abort of the switch in log order: what every instance does.</summary>
        public ControlRecord? Outcome { get; set; }
    }

    [LoggerMessage(EventId = 4310, Level = LogLevel.Warning, Message = "Instance {Instance} holds the writes and offset commits of every family: {Why}")]
    private static partial void LogFenced(ILogger logger, string instance, string why);

    [LoggerMessage(EventId = 4311, Level = LogLevel.Information, Message = "Instance {Instance} is a current member and has read the control log: routing again")]
    private static partial void LogUnfenced(ILogger logger, string instance);

    [LoggerMessage(EventId = 4312, Level = LogLevel.Warning, Message = "Appending {Key} to the control log failed: {Error}")]
    private static partial void LogAppendFailed(ILogger logger, string key, string error);

    [LoggerMessage(EventId = 4313, Level = LogLevel.Warning, Message = "The abort of switch {SwitchId} was not written ({Error}); members release when its deadline passes")]
    private static partial void LogAbortNotWritten(ILogger logger, string switchId, string error);

    [LoggerMessage(EventId = 4314, Level = LogLevel.Warning, Message = "The fleet-wide audit entry was not written: {Error}")]
    private static partial void LogAuditNotWritten(ILogger logger, string error);

    [LoggerMessage(EventId = 4315, Level = LogLevel.Warning, Message = "The routes applied from the control log were not saved to routes.json ({Error}); the log still holds them")]
    private static partial void LogRoutesNotSaved(ILogger logger, string error);
}

/// <summary>What the fleet coordination needs of the group membership: who is live, and whether this instance still is.</summary>
public interface IFleetLiveness : IAsyncDisposable
{
    /// <summary>Instance ids of the current generation's members (this one included once joined).</summary>
    IReadOnlyList<string> LiveInstances { get; }

    /// <summary>The leader's instance id, if joined.</summary>
    string? LeaderInstance { get; }

    /// <summary>The group generation.</summary>
    int Generation { get; }

    /// <summary>Until when this instance's membership is certainly still valid (see the membership's invariant).</summary>
    DateTimeOffset RenewedUntil { get; }

    bool IsRenewed => DateTimeOffset.UtcNow < RenewedUntil;

    /// <summary>Raised when the view or the renewal changes.</summary>
    event Action? Changed;

    Task StartAsync(CancellationToken cancellationToken);
}
