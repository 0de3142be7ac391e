using System.Text.Json;
using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Fleet;
using Switchback.Proxy.Metrics;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Translation;
using Switchback.Proxy.Window;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>What an operator asked for; <see cref="DryRun"/>: rehearse it (see <see cref="SwitchCoordinator.RehearseAsync"/>).</summary>
public sealed record SwitchRequest(string Family, string? Write, string? Read, string? Reason, bool Force, TimeSpan Timeout, string Caller, bool DryRun = false);

/// <summary>How a switch or rollback ended: an HTTP status and the body that explains it.</summary>
public sealed record SwitchOutcome(int Status, object Body);

/// <summary>The offsets of one or more groups could not be written on the new read cluster; each is named with its partitions and errors.</summary>
public sealed class GroupOffsetsNotCopiedException(string cluster, IReadOnlyList<GroupOffsetsWritten> failed)
    : Exception($"the offsets of {failed.Count} group(s) could not be written on cluster '{cluster}': {string.Join("; ", failed.Select(f => f.Describe()))}")
{
    public IReadOnlyList<GroupOffsetsWritten> Failed { get; } = failed;

    /// <summary>Each failed group for an error body: group, cluster, reason and each refused partition with its error.</summary>
    public IReadOnlyList<object> Describe() => [.. Failed.Select(f => (object)new
    {
        group = f.Group,
        cluster = f.Cluster,
        reason = f.Reason,
        partitions = f.Failures.Select(p => new { topic = p.Topic, partition = p.Partition, error = p.Error }),
    })];
}

/// <summary>
/// Moves a family's routes. Order of work: readiness gates (unless forced or rolling back); hold the family's new
/// produce requests and offset commits; drain what is in flight to the old clusters and wait for open
/// transactions to end; copy group offsets to the new read cluster; persist the new route table; swap it in;
/// release the held requests, which then route to the new clusters. Any failure before the persist releases the
/// held requests to the old route and changes nothing. One switch at a time.
/// </summary>
public sealed partial class SwitchCoordinator : IDisposable
{
    private readonly ProxyState _state;
    private readonly RouteStore _store;
    private readonly AuditLog _audit;
    private readonly ProxyMetrics _metrics;
    private static readonly TimeSpan MemberRemovalTimeout = TimeSpan.FromSeconds(10);
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly Dictionary<string, ClusterAdmin> _admins;
    private readonly ReadinessGates _gates;
    private readonly FleetCoordinator? _fleet;
    // Rollback windows' mirrors (new write cluster back to the origin's); null where none may run.
    private readonly MirrorSupervisor? _mirrors;
    private readonly GroupOffsetWriter _groupOffsets;
    private readonly OffsetTranslators _translators;
    // The last read switch's removal of the members it moved: it runs on after the answer, and the next switch waits for it.
    private Task _memberRemoval = Task.CompletedTask;
    // End offsets of a family's new write cluster when writes moved there: what a rollback leaves behind is measured against them.
    private readonly Dictionary<string, (string Cluster, Dictionary<TopicPartition, long> Ends)> _writeBaselines = new(StringComparer.Ordinal);

    public SwitchCoordinator(ProxyState state, RouteStore store, AuditLog audit, ProxyMetrics metrics, ILogger<SwitchCoordinator> logger,
        FleetCoordinator? fleet = null, MirrorSupervisor? mirrors = null)
    {
        _fleet = fleet;
        _mirrors = mirrors;
        _state = state;
        _store = store;
        _audit = audit;
        _metrics = metrics;
        _logger = logger;
        _admins = state.Config.Clusters.ToDictionary(c => c.Name, c => new ClusterAdmin(c), StringComparer.Ordinal);
        _translators = new OffsetTranslators(state.Config, logger);
        _gates = new ReadinessGates(state, name => _admins[name], new TranslationGates(state.Config, _translators, name => _admins[name], state.GroupMembers));
        _groupOffsets = new GroupOffsetWriter(state.Cluster, state.GroupMembers, state.Config.Limits, logger);
        if (fleet is not null && mirrors is not null)
        {
            // A family's mirror runs on the instance that switched its writes away; a rollback may be called on any.
            fleet.MirrorCaughtUp = MemberMirrorCaughtUpAsync;
            fleet.RouteApplied = EndMirrorOfReturnedWrites;
        }
    }

    public Task<SwitchOutcome> SwitchAsync(SwitchRequest request) => request.DryRun ? RehearseAsync(request) : RunAsync(request, rollback: false);

    /// <summary>The gates a switch checks, which the scorecard evaluates too (one implementation).</summary>
    public ReadinessGates Gates => _gates;

    /// <summary>
    /// Returns the family to its rollback window's origin (see <see cref="RollbackWindow"/>); readiness gates are not
    /// checked. <paramref name="force"/> is needed only when the window was closed.
    /// </summary>
    public Task<SwitchOutcome> RollbackAsync(string family, string? reason, string caller, TimeSpan timeout, bool force = false) =>
        RunAsync(new SwitchRequest(family, null, null, reason, force, timeout, caller), rollback: true);

    private async Task<SwitchOutcome> RunAsync(SwitchRequest request, bool rollback)
    {
        var action = rollback ? "rollback" : "switch";
        if (_state.Routes.Current.Find(request.Family) is null)
        {
            return new SwitchOutcome(404, new { error = $"Unknown family '{request.Family}'." });
        }
        foreach (var cluster in new[] { request.Write, request.Read })
        {
            if (cluster is not null && !_admins.ContainsKey(cluster))
            {
                return new SwitchOutcome(400, new { error = $"Unknown cluster '{cluster}' (known: {string.Join(", ", _admins.Keys)})." });
            }
        }
        if (!await _oneAtATime.WaitAsync(request.Timeout).ConfigureAwait(false))
        {
            return new SwitchOutcome(503, new { error = "Another switch is in progress and did not finish in time; nothing changed." });
        }
        try
        {
            await _memberRemoval.ConfigureAwait(false); // never throws; bounded by MemberRemovalTimeout
            var current = _state.Routes.Current.Find(request.Family)!;
            ClusterRoute target;
            if (rollback)
            {
                switch (current.Window)
                {
                    case null:
                        await AuditAsync(action, current, current.Route, request, "refused", 0, "nothing to roll back: no rollback window").ConfigureAwait(false);
                        return new SwitchOutcome(409, new
                        {
                            error = $"Family '{request.Family}' has nothing to roll back: no switch has opened a rollback window.",
                            family = request.Family,
                            window = WindowView.Summary(current),
                        });
                    case { IsOpen: false } closed when !request.Force:
                        var why = $"its rollback window was closed at {closed.ClosedAt:O}{(closed.CloseReason is { } r ? $" ({r})" : "")}";
                        await AuditAsync(action, current, closed.Origin, request, "refused", 0, why).ConfigureAwait(false);
                        return new SwitchOutcome(409, new
                        {
                            error = $"Family '{request.Family}': {why}; returning to its origin ({closed.Origin}) is now a new migration: give force to do it anyway.",
                            family = request.Family,
                            window = WindowView.Summary(current),
                        });
                }
                target = current.Window.Origin;
                if (target == current.Route)
                {
                    // Idempotent: a rollback repeated (its answer lost, or run twice) changes nothing.
                    await AuditAsync(action, current, target, request, "unchanged", 0, "already at the rollback window's origin").ConfigureAwait(false);
                    return new SwitchOutcome(200, Describe(current, changed: false, pauseMs: 0, gates: [], extra: RollbackDetails([], leftBehind: null)));
                }
            }
            else
            {
                target = new ClusterRoute(request.Write ?? current.Route.Write, request.Read ?? current.Route.Read);
            }
            if (target == current.Route)
            {
                return new SwitchOutcome(200, Describe(current, changed: false, pauseMs: 0, gates: [], extra: new { unchanged = true }));
            }

            var traffic = _state.Traffic.For(request.Family);
            var groups = traffic.GroupsOf();
            IReadOnlyList<GateResult> gates = [];
            if (!request.Force && !rollback)
            {
                gates = await _gates.CheckAsync(request.Family, current.Route, target, groups).ConfigureAwait(false);
                if (gates.Any(g => !g.Passed))
                {
                    return await RefusedAsync(action, current, target, request, gates).ConfigureAwait(false);
                }
            }

            var writeMoves = target.Write != current.Route.Write;
            var readMoves = target.Read != current.Route.Read;
            // Writes return to the window's origin while its mirror copies them back: wait inside the hold until it has.
            var mirror = writeMoves && _mirrors?.Mirror(request.Family) is { } running && running.From == current.Route.Write && running.To == target.Write
                ? running
                : null;
            var leftBehind = rollback && writeMoves && mirror is null ? await LeftBehindAsync(request.Family, current.Route.Write, target.Write).ConfigureAwait(false) : null;
            var baseline = writeMoves ? await EndOffsetsOrNullAsync(request.Family, target.Write).ConfigureAwait(false) : null;

            using var deadline = new CancellationTokenSource(request.Timeout);
            var pause = Stopwatch.StartNew();
            var copied = new List<object>();
            FamilyHold? hold = null;
            var progress = new GroupWriteProgress();
            GroupOffsetsNotCopiedException? notCopied = null;
            MirrorOutcome? remoteMirror = null;
            try
            {
                FamilyRoute next;
                if (_fleet is { } fleet)
                {
                    // Every live instance holds and drains; this one copies the offsets; the log's commit swaps them all.
                    next = await fleet.SwitchAsync(action, current, target, request.Force, async (mirroredElsewhere, cancellationToken) =>
                    {
                        if (mirror is not null)
                        {
                            leftBehind = await WaitMirroredAsync(mirror, request.Family, request.Force, request.Timeout, current.Route.Write, cancellationToken).ConfigureAwait(false);
                        }
                        else if (mirroredElsewhere.FirstOrDefault() is { Key: { } instance, Value: var report })
                        {
                            // The member that runs the mirror answered ready only once it had copied back (see MemberMirrorCaughtUpAsync).
                            leftBehind = report.GetProperty("leftBehind");
                            remoteMirror = new MirrorOutcome($"caught up and ended on {instance}", report.GetProperty("strayWrites"));
                        }
                        if (readMoves)
                        {
                            try
                            {
                                copied = await CopyGroupOffsetsAsync(request.Family, groups, current.Route.Read, target.Read, progress, cancellationToken).ConfigureAwait(false);
                            }
                            catch (GroupOffsetsNotCopiedException e)
                            {
                                // The fleet aborts the switch on its own exception; the refusals still go in the answer.
                                notCopied = e;
                                throw new FleetSwitchException($"failed: {e.Message.TrimEnd('.')}");
                            }
                        }
                    }, deadline.Token).ConfigureAwait(false);
                }
                else
                {
                    hold = new FamilyHold(_state, request.Family, writeMoves, readMoves);
                    await hold.DrainAsync(deadline.Token).ConfigureAwait(false);
                    if (mirror is not null)
                    {
                        leftBehind = await WaitMirroredAsync(mirror, request.Family, request.Force, request.Timeout, current.Route.Write, deadline.Token).ConfigureAwait(false);
                    }
                    if (readMoves)
                    {
                        copied = await CopyGroupOffsetsAsync(request.Family, groups, current.Route.Read, target.Read, progress, deadline.Token).ConfigureAwait(false);
                    }
                    next = NextRoute(current, target, rollback);
                    await ApplyAsync(_state, _store, next).ConfigureAwait(false);
                }
                if (baseline is not null)
                {
                    _writeBaselines[request.Family] = (target.Write, baseline);
                }
                pause.Stop();
                hold?.Dispose();
                if (readMoves)
                {
                    // Their clients now rejoin on the new read cluster; left in the old group, they would keep it from
                    // taking offsets without a member (a rollback) until their sessions time out.
                    _memberRemoval = RemoveMovedMembersAsync(groups, current.Route.Read);
                }

                var mirrorNow = remoteMirror ?? await FollowWithMirrorAsync(next, current, mirror, baseline).ConfigureAwait(false);

                _metrics.SwitchCompleted(request.Family, action, pause.Elapsed);
                await AuditAsync(action, current, target, request, "ok", pause.Elapsed.TotalMilliseconds, null).ConfigureAwait(false);
                LogSwitched(_logger, action, request.Family, current.Route.ToString(), target.ToString(), pause.Elapsed.TotalMilliseconds);
                return new SwitchOutcome(200, Describe(next, changed: true, pause.Elapsed.TotalMilliseconds, gates,
                    rollback ? RollbackDetails(copied, leftBehind, mirrorNow) : new { offsetsCopied = copied, leftBehind, mirror = mirrorNow.Status }));
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or UpstreamUnavailableException or KafkaException or IOException
                or FleetSwitchException or GroupOffsetsNotCopiedException)
            {
                hold?.Dispose();
                if (e is FleetSwitchException { Committed: { } committed })
                {
                    // In force and applied here, but not confirmed by every live member: not "nothing changed".
                    _metrics.SwitchFailed(request.Family, action);
                    await AuditAsync(action, current, target, request, "unconfirmed", pause.Elapsed.TotalMilliseconds, e.Message).ConfigureAwait(false);
                    return new SwitchOutcome(503, new
                    {
                        error = $"The {action} of '{request.Family}' {e.Message}.",
                        family = request.Family,
                        committed = true,
                        epoch = committed.Epoch,
                        write = committed.Route.Write,
                        read = committed.Route.Read,
                    });
                }
                notCopied ??= e as GroupOffsetsNotCopiedException;
                var still = progress.Pending() is { } pending ? $"; still {pending}" : "";
                var why = e switch
                {
                    FleetSwitchException => e.Message,
                    OperationCanceledException or TimeoutException =>
                        $"did not complete within {request.Timeout.TotalMilliseconds:0} ms ({hold?.Describe() ?? "the fleet did not answer in time"}{still})",
                    _ => $"failed: {e.Message.TrimEnd('.')}",
                };
                _metrics.SwitchFailed(request.Family, action);
                await AuditAsync(action, current, target, request, "failed", pause.Elapsed.TotalMilliseconds, why).ConfigureAwait(false);
                var error = $"The {action} of '{request.Family}' {why}; nothing changed.";
                return new SwitchOutcome(503, notCopied is not null
                    ? new { error, family = request.Family, failures = notCopied.Describe() }
                    : new { error, family = request.Family });
            }
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private async Task<SwitchOutcome> RefusedAsync(string action, FamilyRoute current, ClusterRoute target, SwitchRequest request, IReadOnlyList<GateResult> gates)
    {
        await AuditAsync(action, current, target, request, "refused", 0, string.Join("; ", gates.Where(g => !g.Passed).Select(g => g.Summary))).ConfigureAwait(false);
        var error = $"Readiness gates failed for '{request.Family}'; nothing changed (use force to override).";
        var failed = gates.Where(g => !g.Passed);
        return new SwitchOutcome(409, request.DryRun ? new { error, failed, gates, dryRun = true } : new { error, failed, gates });
    }

    /// <summary>
    /// Rehearses a switch: the same gates (409 when one fails, unless forced), then the family is held and drained
    /// for real, the committed offsets a flip would copy are read, and the hold is released to the unchanged route.
    /// No route, epoch, window or file changes; the pause is measured and audited as <c>rehearsal</c>. In a fleet only
    /// this instance holds (no control-log records are written): the answer says so.
    /// </summary>
    public async Task<SwitchOutcome> RehearseAsync(SwitchRequest request)
    {
        const string action = "rehearsal";
        if (_state.Routes.Current.Find(request.Family) is null)
        {
            return new SwitchOutcome(404, new { error = $"Unknown family '{request.Family}'." });
        }
        foreach (var cluster in new[] { request.Write, request.Read })
        {
            if (cluster is not null && !_admins.ContainsKey(cluster))
            {
                return new SwitchOutcome(400, new { error = $"Unknown cluster '{cluster}' (known: {string.Join(", ", _admins.Keys)})." });
            }
        }
        if (!await _oneAtATime.WaitAsync(request.Timeout).ConfigureAwait(false))
        {
            return new SwitchOutcome(503, new { error = "A switch is in progress and did not finish in time; nothing was rehearsed." });
        }
        try
        {
            var current = _state.Routes.Current.Find(request.Family)!;
            var target = new ClusterRoute(request.Write ?? current.Route.Write, request.Read ?? current.Route.Read);
            var scope = _fleet is null ? "this instance" : $"this instance only ({_fleet.InstanceId}): the other members of the fleet were not held";
            if (target == current.Route)
            {
                return new SwitchOutcome(400, new { error = $"Family '{request.Family}' already routes {target}: name another cluster to rehearse a switch to.", dryRun = true });
            }
            var groups = _state.Traffic.For(request.Family).GroupsOf();
            IReadOnlyList<GateResult> gates = [];
            if (!request.Force)
            {
                gates = await _gates.CheckAsync(request.Family, current.Route, target, groups).ConfigureAwait(false);
                if (gates.Any(g => !g.Passed))
                {
                    return await RefusedAsync(action, current, target, request, gates).ConfigureAwait(false);
                }
            }
            var writeMoves = target.Write != current.Route.Write;
            var readMoves = target.Read != current.Route.Read;
            using var deadline = new CancellationTokenSource(request.Timeout);
            var pause = Stopwatch.StartNew();
            using var hold = new FamilyHold(_state, request.Family, writeMoves, readMoves);
            try
            {
                await hold.DrainAsync(deadline.Token).ConfigureAwait(false);
                // What the copy step would read inside a real switch's hold.
                var offsets = readMoves ? await CommittedToCopyAsync(request.Family, groups, current.Route.Read, deadline.Token).ConfigureAwait(false) : [];
                pause.Stop();
                hold.Dispose();
                var producers = Scorecard.FamilyClients.Count(Scorecard.FamilyClients.Using(_state.Sessions.Inventory(), request.Family), request.Family,
                    Listening.ClientUse.Produce);
                var mirror = _mirrors?.Figures(request.Family);
                await AuditAsync(action, current, target, request, "ok", pause.Elapsed.TotalMilliseconds, $"rehearsed on {scope}").ConfigureAwait(false);
                return new SwitchOutcome(200, new
                {
                    dryRun = true,
                    family = current.Family,
                    epoch = current.Epoch,
                    write = current.Route.Write,
                    read = current.Route.Read,
                    changed = false,
                    wouldSwitchTo = new { write = target.Write, read = target.Read },
                    pauseMs = Math.Round(pause.Elapsed.TotalMilliseconds, 3),
                    scope,
                    gates,
                    wouldCopy = new
                    {
                        offsets,
                        producersRemapped = writeMoves ? producers : 0,
                        mirrorLagRecords = writeMoves && mirror is not null ? mirror.Totals.LagRecords : (long?)null,
                    },
                });
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or UpstreamUnavailableException or KafkaException)
            {
                var why = e is OperationCanceledException or TimeoutException
                    ? $"did not drain within {request.Timeout.TotalMilliseconds:0} ms ({hold.Describe()})"
                    : $"failed: {e.Message.TrimEnd('.')}";
                hold.Dispose();
                await AuditAsync(action, current, target, request, "failed", pause.Elapsed.TotalMilliseconds, why).ConfigureAwait(false);
                return new SwitchOutcome(503, new { error = $"The rehearsal of '{request.Family}' {why}; released, nothing changed.", family = request.Family, dryRun = true });
            }
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>Per group, how many committed offsets a read switch would copy from <paramref name="from"/>.</summary>
    private async Task<List<object>> CommittedToCopyAsync(string family, IReadOnlyCollection<string> groups, string from, CancellationToken cancellationToken)
    {
        if (groups.Count == 0)
        {
            return [];
        }
        var view = await _state.Cluster(from).GetViewAsync(cancellationToken).ConfigureAwait(false);
        var partitions = _gates.FamilyPartitions(family, [view]);
        var result = new List<object>();
        foreach (var group in groups.Order(StringComparer.Ordinal))
        {
            var offsets = await _admins[from].CommittedOffsetsAsync(group, partitions, ReadinessGates.SwitchCallTimeout).WaitAsync(cancellationToken).ConfigureAwait(false);
            result.Add(new { group, partitions = offsets.Count });
        }
        return result;
    }

    /// <summary>
    /// The route a switch (or rollback) to <paramref name="target"/> installs: the next epoch, the write epoch moved when
    /// writes move. A switch opens a rollback window when none is open, with the routes it replaces as the origin; a
    /// rollback leaves the window as it is (open: the family may move forward again within it).
    /// </summary>
    internal static FamilyRoute NextRoute(FamilyRoute current, ClusterRoute target, bool rollback)
    {
        var epoch = current.Epoch + 1;
        var now = DateTimeOffset.UtcNow;
        var window = rollback || current.Window is { IsOpen: true } ? current.Window : new RollbackWindow(current.Route, now, epoch);
        return new FamilyRoute(current.Family, target, epoch, now, window, target.Write != current.Route.Write ? epoch : current.WriteEpoch);
    }

    /// <summary>
    /// Closes the family's open rollback window: the new routes have earned trust, and a rollback is from now on a new
    /// migration (it needs force). No route changes, so nothing is held. 409 when no window is open; in a fleet the close
    /// is committed through the control log, so every member persists it.
    /// </summary>
    public async Task<SwitchOutcome> CloseAsync(string family, string? reason, string caller, TimeSpan timeout)
    {
        const string action = "close";
        if (_state.Routes.Current.Find(family) is null)
        {
            return new SwitchOutcome(404, new { error = $"Unknown family '{family}'." });
        }
        var request = new SwitchRequest(family, null, null, reason, Force: false, timeout, caller);
        if (!await _oneAtATime.WaitAsync(timeout).ConfigureAwait(false))
        {
            return new SwitchOutcome(503, new { error = "A switch is in progress and did not finish in time; nothing changed." });
        }
        try
        {
            using var deadline = new CancellationTokenSource(timeout);
            if (_fleet is { } fleet)
            {
                try
                {
                    // Decide on the fleet's latest route, not on what this instance had read when called.
                    await fleet.CaughtUpAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or KafkaException)
                {
                    return new SwitchOutcome(503, new { error = $"The close of '{family}' could not read the control log ({e.Message.TrimEnd('.')}); nothing changed.", family });
                }
                if (fleet.SwitchInProgress(family) is { } switchId)
                {
                    var current = _state.Routes.Current.Find(family)!;
                    await AuditAsync(action, current, current.Route, request, "refused", 0, $"switch {switchId} in progress").ConfigureAwait(false);
                    return new SwitchOutcome(409, new { error = $"A switch or rollback of '{family}' is in progress ({switchId}); close the window once it has ended.", family });
                }
            }
            var route = _state.Routes.Current.Find(family)!;
            if (route.Window is not { IsOpen: true } window)
            {
                var why = route.Window is { } shut
                    ? $"its rollback window was already closed at {shut.ClosedAt:O}{(shut.CloseReason is { } r ? $" ({r})" : "")}"
                    : "no switch has opened a rollback window";
                await AuditAsync(action, route, route.Route, request, "refused", 0, $"no open window: {why}").ConfigureAwait(false);
                return new SwitchOutcome(409, new { error = $"Family '{family}' has no open rollback window: {why}.", family, window = WindowView.Summary(route) });
            }
            var closed = route with { Window = window.Close(DateTimeOffset.UtcNow, reason) };
            if (_fleet is { } members)
            {
                try
                {
                    var applied = await members.CommitWindowAsync(closed, deadline.Token).ConfigureAwait(false);
                    if (applied.Epoch != closed.Epoch || applied.Window != closed.Window)
                    {
                        // A switch committed first: the close was skipped by every member.
                        await AuditAsync(action, route, route.Route, request, "refused", 0, $"a switch committed epoch {applied.Epoch} first").ConfigureAwait(false);
                        return new SwitchOutcome(409, new
                        {
                            error = $"A switch of '{family}' committed epoch {applied.Epoch} while the window was being closed; nothing was closed. Look at the window and close it again if you still mean to.",
                            family,
                            window = WindowView.Summary(applied),
                        });
                    }
                }
                catch (FleetSwitchException e) when (e.Committed is not null)
                {
                    await AuditAsync(action, route, route.Route, request, "unconfirmed", 0, e.Message).ConfigureAwait(false);
                    return new SwitchOutcome(503, new { error = $"The close of '{family}' {e.Message}.", family, committed = true });
                }
                catch (Exception e) when (e is FleetSwitchException or OperationCanceledException or KafkaException)
                {
                    await AuditAsync(action, route, route.Route, request, "failed", 0, e.Message).ConfigureAwait(false);
                    return new SwitchOutcome(503, new { error = $"The close of '{family}' did not complete: {e.Message.TrimEnd('.')}; nothing changed.", family });
                }
            }
            else
            {
                try
                {
                    await ApplyAsync(_state, _store, closed).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    await AuditAsync(action, route, route.Route, request, "failed", 0, e.Message).ConfigureAwait(false);
                    return new SwitchOutcome(503, new { error = $"The close of '{family}' could not be persisted ({e.Message.TrimEnd('.')}); nothing changed.", family });
                }
            }
            // From and to are the routes, which a close does not change; the detail names the window it closed.
            await AuditAsync(action, route, route.Route, request, "ok", 0, $"window opened at epoch {window.OpenedEpoch} from {window.Origin}").ConfigureAwait(false);
            LogWindowClosed(_logger, family, window.Origin.ToString(), route.Route.ToString(), reason ?? "");
            if (_mirrors is { } mirrors)
            {
                // The target has earned trust: the origin need not be kept equivalent any more.
                await mirrors.StopMirrorAsync(family).ConfigureAwait(false);
            }
            return new SwitchOutcome(200, WindowView.Describe(_state.Routes.Current.Find(family)!, figures: null));
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>Persists the table with <paramref name="next"/> (durable before anyone sees it), then swaps it in.</summary>
    internal static async Task ApplyAsync(ProxyState state, RouteStore store, FamilyRoute next)
    {
        var table = state.Routes.Current.With(next);
        // On the thread pool: this may be running on a socket event thread, and the save flushes to disk.
        await Task.Run(() => store.Save(table)).ConfigureAwait(false);
        Swap(state, table, next);
    }

    /// <summary>Swaps <paramref name="table"/> in; when <paramref name="next"/> moves reads, its groups' members there have moved.</summary>
    internal static void Swap(ProxyState state, RouteTable table, FamilyRoute next)
    {
        var before = state.Routes.Current.Find(next.Family);
        if (before is not null && before.Route.Read != next.Route.Read)
        {
            state.GroupMembers.ReadsMovedAway(before.Route.Read, state.Traffic.For(next.Family).GroupsOf());
        }
        state.Routes.Swap(table);
    }

    /// <summary>
    /// Copies each group's committed offsets from the old read cluster to the new one, translated by the family's
    /// strategy (<see cref="OffsetTranslators"/>; identity when replication keeps offsets). A translated offset never
    /// moves the group's offset on the new cluster backwards, and a partition that does not translate is not written
    /// (the answer says why). Groups are copied side by side; every group that could not be written is named, with its
    /// partitions and errors, in the exception.
    /// </summary>
    private async Task<List<object>> CopyGroupOffsetsAsync(string family, IReadOnlyCollection<string> groups, string from, string to,
        GroupWriteProgress progress, CancellationToken cancellationToken)
    {
        if (groups.Count == 0)
        {
            return [];
        }
        var views = new List<ClusterView>();
        foreach (var cluster in new[] { from, to })
        {
            views.Add(await _state.Cluster(cluster).GetViewAsync(cancellationToken).ConfigureAwait(false));
        }
        var partitions = _gates.FamilyPartitions(family, views);
        var timeout = TimeSpan.FromSeconds(10);
        var written = new ConcurrentDictionary<string, GroupOffsetsWritten>(StringComparer.Ordinal);
        var translations = new ConcurrentDictionary<string, IReadOnlyList<TranslatedOffset>>(StringComparer.Ordinal);
        var translator = _translators.For(family);
        await Parallel.ForEachAsync(groups, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (group, token) =>
        {
            Dictionary<TopicPartition, long> offsets;
            try
            {
                progress.Step(group, $"reading the committed offsets of group '{group}' on cluster '{from}'");
                offsets = await _admins[from].CommittedOffsetsAsync(group, partitions, timeout).WaitAsync(token).ConfigureAwait(false);
                progress.Done(group);
            }
            catch (KafkaException e)
            {
                progress.Done(group);
                written[group] = new GroupOffsetsWritten(group, from, 0, null, 0, [], $"its committed offsets could not be read: {e.Error.Reason}");
                return;
            }
            Dictionary<TopicPartition, long> translated;
            try
            {
                progress.Step(group, $"translating the offsets of group '{group}' from '{from}' to '{to}' ({translator.Strategy})");
                var translation = await translator.TranslateAsync(group, offsets, from, to, token).ConfigureAwait(false);
                if (translator is not IdentityTranslator)
                {
                    translation = await NeverBackwardsAsync(group, to, translation, timeout, token).ConfigureAwait(false);
                }
                progress.Done(group);
                translations[group] = translation;
                var untranslated = translation.Where(t => t.NewOffset is null).ToList();
                if (untranslated.Count > 0)
                {
                    LogNotTranslated(_logger, group, to, untranslated.Count, string.Join("; ", untranslated.Select(t => $"{t.Topic}[{t.Partition}]@{t.OldOffset}: {t.Note}")));
                }
                translated = translation.Where(t => t.NewOffset is not null && t.Method != TranslationMethod.Kept).ToDictionary(t => t.NewPartition, t => t.NewOffset!.Value);
            }
            catch (KafkaException e)
            {
                progress.Done(group);
                written[group] = new GroupOffsetsWritten(group, to, 0, null, 0, [], $"its offsets could not be translated: {e.Error.Reason}");
                return;
            }
            try
            {
                written[group] = await _groupOffsets.WriteAsync(to, group, translated, progress, token).ConfigureAwait(false);
            }
            catch (UpstreamUnavailableException e)
            {
                written[group] = new GroupOffsetsWritten(group, to, translated.Count, null, 0, [], e.Message.TrimEnd('.'));
            }
        }).ConfigureAwait(false);

        var results = groups.Select(g => written[g]).ToList();
        foreach (var result in results.Where(r => r.Succeeded && r.Partitions > 0))
        {
            LogOffsetsWritten(_logger, result.Group, result.Cluster, result.Partitions, result.WrittenAs ?? "", result.StaleMembersRemoved);
        }
        if (results.Any(r => !r.Succeeded))
        {
            throw new GroupOffsetsNotCopiedException(to, [.. results.Where(r => !r.Succeeded)]);
        }
        return [.. results.Select(r => (object)new
        {
            group = r.Group,
            partitions = r.Partitions,
            offsets = translations.GetValueOrDefault(r.Group, []).OrderBy(t => t.Topic, StringComparer.Ordinal).ThenBy(t => t.Partition).Select(t => new
            {
                topic = t.Topic,
                partition = t.Partition,
                newTopic = t.NewTopic == t.Topic ? null : t.NewTopic,
                oldOffset = t.OldOffset,
                newOffset = t.NewOffset,
                how = t.Method,
                note = t.Note,
            }),
        })];
    }

    /// <summary>
    /// A translation never moves a group's offset on the new cluster backwards (as MirrorMaker 2's checkpoint connector
    /// does not): where the group already stands further there, its offset is kept.
    /// </summary>
    private async Task<IReadOnlyList<TranslatedOffset>> NeverBackwardsAsync(string group, string to, IReadOnlyList<TranslatedOffset> translation,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        var partitions = translation.Where(t => t.NewOffset is not null).Select(t => t.NewPartition).ToList();
        if (partitions.Count == 0)
        {
            return translation;
        }
        var existing = await _admins[to].CommittedOffsetsAsync(group, partitions, timeout).WaitAsync(cancellationToken).ConfigureAwait(false);
        return [.. translation.Select(t => t.NewOffset is { } offset && existing.TryGetValue(t.NewPartition, out var there) && there >= offset
            ? t with { NewOffset = there, Method = TranslationMethod.Kept, Note = $"already at {there} on '{to}' ({t.Method} gave {offset})" }
            : t)];
    }

    /// <summary>
    /// After reads moved, removes from the old read cluster's groups the members the proxy saw there: their clients
    /// rejoin on the new cluster. It runs after the answer (an unreachable old cluster must not delay it) and never
    /// throws: a failure is logged (the route has changed), and a later write of offsets there removes what is still
    /// known first.
    /// </summary>
    private async Task RemoveMovedMembersAsync(IReadOnlyCollection<string> groups, string from)
    {
        await Task.Yield();
        using var timeout = new CancellationTokenSource(MemberRemovalTimeout);
        try
        {
            await Parallel.ForEachAsync(groups, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = timeout.Token }, async (group, token) =>
            {
                try
                {
                    var removal = await _groupOffsets.RemoveMembersAsync(from, group, token).ConfigureAwait(false);
                    if (removal.Removed + removal.AlreadyGone > 0)
                    {
                        LogMembersRemoved(_logger, group, from, removal.Removed, removal.AlreadyGone);
                    }
                    if (removal.Failures.Count > 0)
                    {
                        LogMembersNotRemoved(_logger, group, from, string.Join("; ", removal.Failures));
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogMembersNotRemoved(_logger, group, from, e.Message);
                }
            }).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            LogMembersNotRemoved(_logger, string.Join(", ", groups), from, $"not done within {MemberRemovalTimeout.TotalSeconds:0} s");
        }
    }

    private async Task<Dictionary<TopicPartition, long>?> EndOffsetsOrNullAsync(string family, string cluster)
    {
        try
        {
            var view = await _state.Cluster(cluster).GetViewAsync(CancellationToken.None).ConfigureAwait(false);
            return await _admins[cluster].EndOffsetsAsync(_gates.FamilyPartitions(family, [view]), TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is UpstreamUnavailableException or KafkaException)
        {
            return null; // a forced switch to an unhealthy cluster must not wait for evidence
        }
    }

    /// <summary>
    /// What a rollback leaves on the cluster it abandons: the records written there since writes moved to it (or,
    /// without that baseline, those beyond the other cluster's end offsets).
    /// </summary>
    private async Task<object?> LeftBehindAsync(string family, string leaving, string returningTo)
    {
        try
        {
            if (_writeBaselines.TryGetValue(family, out var baseline) && baseline.Cluster == leaving)
            {
                var now = await _admins[leaving].EndOffsetsAsync(baseline.Ends.Keys, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                var written = baseline.Ends
                    .Select(b => new { topic = b.Key.Topic, partition = b.Key.Partition.Value, records = now.GetValueOrDefault(b.Key, b.Value) - b.Value })
                    .Where(p => p.records > 0).ToList();
                return new { cluster = leaving, since = "switch", records = written.Sum(p => p.records), partitions = written };
            }
            var views = new[] { await _state.Cluster(leaving).RefreshAsync().ConfigureAwait(false), await _state.Cluster(returningTo).RefreshAsync().ConfigureAwait(false) };
            var partitions = _gates.FamilyPartitions(family, views);
            var leavingEnds = await _admins[leaving].EndOffsetsAsync(partitions, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            var returningEnds = await _admins[returningTo].EndOffsetsAsync(partitions, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            var only = partitions
                .Select(p => new { topic = p.Topic, partition = p.Partition.Value, records = leavingEnds.GetValueOrDefault(p, 0) - returningEnds.GetValueOrDefault(p, 0) })
                .Where(p => p.records > 0).ToList();
            return new { cluster = leaving, records = only.Sum(p => p.records), partitions = only };
        }
        catch (Exception e) when (e is UpstreamUnavailableException or KafkaException)
        {
            return new { cluster = leaving, unknown = e.Message };
        }
    }

    /// <summary>Appends to the audit trail on the thread pool: the disk flush must not block a socket event thread.</summary>
    private async Task AuditAsync(string action, FamilyRoute current, ClusterRoute target, SwitchRequest request, string outcome, double pauseMs, string? detail)
    {
        var entry = new AuditEntry(DateTimeOffset.UtcNow, action, request.Family, current.Route.ToString(), target.ToString(),
            request.Reason, request.Caller, outcome, Math.Round(pauseMs, 3), detail);
        await Task.Run(() => _audit.Append(entry)).ConfigureAwait(false);
        if (_fleet is not null)
        {
            await _fleet.AuditAsync(entry).ConfigureAwait(false); // the fleet-wide trail, in the control log
        }
    }

    private static object Describe(FamilyRoute route, bool changed, double pauseMs, IReadOnlyList<GateResult> gates, object extra) => new
    {
        family = route.Family,
        epoch = route.Epoch,
        write = route.Route.Write,
        read = route.Route.Read,
        changed,
        // Deprecated (use window.from): where a rollback returns to, as before rollback windows.
        previous = WindowView.Route(route.Window?.Origin),
        window = WindowView.Summary(route),
        pauseMs = Math.Round(pauseMs, 3),
        gates,
        details = extra,
    };

    /// <summary>
    /// A rollback's details: the offsets copied back, what the abandoned write cluster still holds that the origin lacks
    /// (<c>leftBehind</c>: 0 once a window's mirror has caught up), the mirror's end, and the stray writes it counted
    /// (null without a mirror: nothing watched the origin).
    /// </summary>
    private static object RollbackDetails(List<object> copied, object? leftBehind, MirrorOutcome? mirror = null) => new
    {
        offsetsCopied = copied,
        leftBehind,
        mirror = mirror?.Status ?? WindowView.MirrorNotRunning,
        strayWrites = mirror?.StrayWrites,
    };

    /// <summary>What became of the window's mirror with a switch: its status for the answer, and the stray writes it counted.</summary>
    private sealed record MirrorOutcome(string Status, object? StrayWrites);

    /// <summary>
    /// Inside the hold of a move back to the origin's write cluster: waits (bounded by the switch's deadline) until the
    /// mirror has copied everything the family wrote to the cluster it leaves, so nothing is left behind. With
    /// <c>force</c>, half the time left is given to it and whatever is still uncopied is reported as left behind.
    /// </summary>
    private async Task<object> WaitMirroredAsync(RollbackMirror mirror, string family, bool force, TimeSpan timeout, string leaving, CancellationToken cancellationToken)
    {
        // After the drain: nothing more of the family reaches the cluster being left while the hold lasts.
        var ends = await EndOffsetsOrNullAsync(family, leaving).WaitAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new UpstreamUnavailableException($"Cluster '{leaving}' did not tell its end offsets, so the mirror's progress cannot be checked.");
        var mirrored = ends.Where(e => mirror.Partitions.Contains(e.Key)).ToDictionary();
        using var forced = force ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken) : null;
        forced?.CancelAfter(timeout / 2);
        try
        {
            await mirror.WaitCopiedAsync(mirrored, forced?.Token ?? cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (forced is not null && !cancellationToken.IsCancellationRequested)
        {
            // Forced: go without the rest; it is reported.
        }
        var figures = mirror.Figures();
        var behind = figures.Partitions
            .Select(p => new { topic = p.Topic, partition = p.Partition, records = Math.Max(0, mirrored.GetValueOrDefault(new TopicPartition(p.Topic, p.Partition), p.Position) - p.Position) })
            .Where(p => p.records > 0).ToList();
        return new { cluster = leaving, since = "switch", records = behind.Sum(p => p.records), partitions = behind, mirrored = figures.Totals.Copied };
    }

    /// <summary>
    /// In a fleet, on the member that runs the family's mirror, for another instance's prepare that moves the family's
    /// writes back to where the mirror copies (a rollback): once the family is held and drained, waits until the
    /// mirror has copied back everything (forced: at most half the time left), then answers the rollback's
    /// <c>leftBehind</c> and the stray writes the mirror counted, for the coordinator's answer. Null: nothing to wait for.
    /// </summary>
    private async Task<JsonElement?> MemberMirrorCaughtUpAsync(Fleet.PrepareRecord prepare, CancellationToken cancellationToken)
    {
        if (!prepare.WriteMoves || prepare.Coordinator == _fleet!.InstanceId
            || _mirrors!.Mirror(prepare.Family) is not { } mirror || mirror.To != prepare.Write)
        {
            return null; // the coordinator waits for its own mirror inside the switch
        }
        var timeout = DateTimeOffset.FromUnixTimeMilliseconds(prepare.DeadlineUnixMs) - DateTimeOffset.UtcNow;
        var leftBehind = await WaitMirroredAsync(mirror, prepare.Family, prepare.Force, timeout, mirror.From, cancellationToken).ConfigureAwait(false);
        var figures = mirror.Figures();
        return JsonSerializer.SerializeToElement(new
        {
            leftBehind,
            strayWrites = new
            {
                records = figures.Totals.StrayWrites,
                partitions = figures.Partitions.Where(p => p.StrayWrites > 0).Select(p => new { topic = p.Topic, partition = p.Partition, records = p.StrayWrites }),
            },
        });
    }

    /// <summary>In a fleet: a commit another instance ran returned the family's writes to where this instance's mirror copies; the mirror has copied everything (it answered ready), so it ends.</summary>
    private void EndMirrorOfReturnedWrites(FamilyRoute previous, FamilyRoute next, bool coordinatedHere)
    {
        if (coordinatedHere || _mirrors?.Mirror(next.Family) is not { } mirror || next.Route.Write != mirror.To || previous.Route.Write == next.Route.Write)
        {
            return;
        }
        _ = Task.Run(async () =>
        {
            try
            {
                await _mirrors.StopMirrorAsync(next.Family).ConfigureAwait(false);
            }
            catch (Exception e) when (e is KafkaException or IOException or InvalidOperationException)
            {
                LogMirrorNotEnded(_logger, next.Family, e.Message);
            }
        });
    }

    /// <summary>
    /// After a switch: writes that left the window's origin start a mirror back to it (from the new cluster's end
    /// offsets when writes moved); writes that returned to it end the mirror, which has copied everything by then.
    /// Only for families with <c>MirrorBack</c> (a replication from the origin that keeps topic names would otherwise
    /// copy the copies forward again: the operator turns it on once that replication is stopped). A mirror that
    /// cannot start does not undo the switch: the answer and the log say so, and a rollback then counts what it
    /// leaves behind. Only the instance that ran the switch mirrors (in a fleet, see the README).
    /// </summary>
    private async Task<MirrorOutcome> FollowWithMirrorAsync(FamilyRoute next, FamilyRoute previous, RollbackMirror? ending, Dictionary<TopicPartition, long>? baseline)
    {
        if (_mirrors is not { } mirrors)
        {
            return new MirrorOutcome(WindowView.MirrorNotRunning, null);
        }
        try
        {
            if (ending is not null)
            {
                var figures = ending.Figures();
                await mirrors.StopMirrorAsync(next.Family).ConfigureAwait(false);
                return new MirrorOutcome("caught up and ended", new
                {
                    records = figures.Totals.StrayWrites,
                    partitions = figures.Partitions.Where(p => p.StrayWrites > 0).Select(p => new { topic = p.Topic, partition = p.Partition, records = p.StrayWrites }),
                });
            }
            if (next.Window is { IsOpen: true } window && window.Origin.Write != next.Route.Write && previous.Route.Write != next.Route.Write
                && _state.Config.Families.FirstOrDefault(f => f.Name == next.Family) is { MirrorBack: true })
            {
                if (baseline is null)
                {
                    throw new InvalidOperationException($"the end offsets of '{next.Route.Write}' at the switch are unknown, so where its new records begin is too");
                }
                var started = await mirrors.StartMirrorAsync(next.Family, next.Route.Write, window.Origin.Write, baseline).ConfigureAwait(false);
                return new MirrorOutcome($"copying {started.From} to {started.To}", null);
            }
            return new MirrorOutcome(mirrors.Mirror(next.Family) is { } running ? $"copying {running.From} to {running.To}" : WindowView.MirrorNotRunning, null);
        }
        catch (Exception e) when (e is KafkaException or InvalidOperationException or ArgumentException or IOException)
        {
            LogMirrorNotStarted(_logger, next.Family, e.Message);
            return new MirrorOutcome($"not running: {e.Message}", null);
        }
    }

    /// <summary>
    /// Starts and connects the control-plane client of <paramref name="cluster"/> (one partition per leading broker
    /// of its view is asked for its end offset), so that no switch pays for starting it: on a busy machine its
    /// threads, connections and first calls cost the data path tens of milliseconds.
    /// </summary>
    public async Task WarmAdminAsync(string cluster, CancellationToken cancellationToken)
    {
        var view = await _state.Cluster(cluster).GetViewAsync(cancellationToken).ConfigureAwait(false);
        var partitions = view.Topics.Values
            .Where(t => t.ErrorCode == 0 && !t.IsInternal)
            .SelectMany(t => t.Partitions.Where(p => p.ErrorCode == 0 && p.Leader >= 0).Select(p => (Topic: t.Name, p.Index, p.Leader)))
            .DistinctBy(p => p.Leader)
            .Select(p => new TopicPartition(p.Topic, p.Index))
            .ToList();
        await _admins[cluster].WarmAsync(partitions, ReadinessGates.SwitchCallTimeout).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        foreach (var admin in _admins.Values)
        {
            admin.Dispose();
        }
        _oneAtATime.Dispose();
        _translators.Dispose();
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "{Action} of family {Family}: {From} -> {To}, paused {PauseMs:0.###} ms")]
    private static partial void LogSwitched(ILogger logger, string action, string family, string from, string to, double pauseMs);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Information, Message = "Offsets of group {Group} written on cluster {Cluster}: {Partitions} partition(s), {WrittenAs}; {StaleMembers} stale member(s) removed first")]
    private static partial void LogOffsetsWritten(ILogger logger, string group, string cluster, int partitions, string writtenAs, int staleMembers);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Group {Group} on cluster {Cluster}: {Removed} moved member(s) removed, {AlreadyGone} already gone")]
    private static partial void LogMembersRemoved(ILogger logger, string group, string cluster, int removed, int alreadyGone);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Members of group {Group} on cluster {Cluster} could not be removed (they stay until their sessions time out): {Reason}")]
    private static partial void LogMembersNotRemoved(ILogger logger, string group, string cluster, string reason);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "Group {Group}: {Count} committed offset(s) not translated to cluster {Cluster}, so not written there: {Reasons}")]
    private static partial void LogNotTranslated(ILogger logger, string group, string cluster, int count, string reasons);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "The rollback window's mirror of family {Family} did not start (a rollback will count what it leaves behind): {Reason}")]
    private static partial void LogMirrorNotStarted(ILogger logger, string family, string reason);

    [LoggerMessage(EventId = 4015, Level = LogLevel.Warning, Message = "The rollback window's mirror of family {Family} did not end after a rollback run by another instance: {Reason}")]
    private static partial void LogMirrorNotEnded(ILogger logger, string family, string reason);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "Rollback window of family {Family} closed (origin {Origin}, routes {Routes}): {Reason}")]
    private static partial void LogWindowClosed(ILogger logger, string family, string origin, string routes, string reason);
}
