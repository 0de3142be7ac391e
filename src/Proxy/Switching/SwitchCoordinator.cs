using System.Diagnostics;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Fleet;
using Switchback.Proxy.Metrics;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>What an operator asked for.</summary>
public sealed record SwitchRequest(string Family, string? Write, string? Read, string? Reason, bool Force, TimeSpan Timeout, string Caller);

/// <summary>How a switch or rollback ended: an HTTP status and the body that explains it.</summary>
public sealed record SwitchOutcome(int Status, object Body);

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
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly Dictionary<string, ClusterAdmin> _admins;
    private readonly ReadinessGates _gates;
    private readonly FleetCoordinator? _fleet;
    // End offsets of a family's new write cluster when writes moved there: what a rollback leaves behind is measured against them.
    private readonly Dictionary<string, (string Cluster, Dictionary<TopicPartition, long> Ends)> _writeBaselines = new(StringComparer.Ordinal);

    public SwitchCoordinator(ProxyState state, RouteStore store, AuditLog audit, ProxyMetrics metrics, ILogger<SwitchCoordinator> logger,
        FleetCoordinator? fleet = null)
    {
        _fleet = fleet;
        _state = state;
        _store = store;
        _audit = audit;
        _metrics = metrics;
        _logger = logger;
        _admins = state.Config.Clusters.ToDictionary(c => c.Name, c => new ClusterAdmin(c), StringComparer.Ordinal);
        _gates = new ReadinessGates(state, name => _admins[name]);
    }

    public Task<SwitchOutcome> SwitchAsync(SwitchRequest request) => RunAsync(request, rollback: false);

    public Task<SwitchOutcome> RollbackAsync(string family, string? reason, string caller, TimeSpan timeout) =>
        RunAsync(new SwitchRequest(family, null, null, reason, Force: true, timeout, caller), rollback: true);

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
            var current = _state.Routes.Current.Find(request.Family)!;
            ClusterRoute target;
            if (rollback)
            {
                if (current.Previous is null)
                {
                    await AuditAsync(action, current, current.Route, request, "refused", 0, "nothing to roll back").ConfigureAwait(false);
                    return new SwitchOutcome(409, new { error = $"Family '{request.Family}' has no earlier route to roll back to." });
                }
                target = current.Previous;
            }
            else
            {
                target = new ClusterRoute(request.Write ?? current.Route.Write, request.Read ?? current.Route.Read);
            }
            if (target == current.Route)
            {
                return new SwitchOutcome(200, Describe(current, pauseMs: 0, gates: [], extra: new { unchanged = true }));
            }

            var traffic = _state.Traffic.For(request.Family);
            var groups = traffic.GroupsOf();
            IReadOnlyList<GateResult> gates = [];
            if (!request.Force)
            {
                gates = await _gates.CheckAsync(request.Family, current.Route, target, groups).ConfigureAwait(false);
                if (gates.Any(g => !g.Passed))
                {
                    await AuditAsync(action, current, target, request, "refused", 0, string.Join("; ", gates.Where(g => !g.Passed).Select(g => g.Summary))).ConfigureAwait(false);
                    return new SwitchOutcome(409, new
                    {
                        error = $"Readiness gates failed for '{request.Family}'; nothing changed (use force to override).",
                        failed = gates.Where(g => !g.Passed),
                        gates,
                    });
                }
            }

            var writeMoves = target.Write != current.Route.Write;
            var readMoves = target.Read != current.Route.Read;
            var leftBehind = rollback && writeMoves ? await LeftBehindAsync(request.Family, current.Route.Write, target.Write).ConfigureAwait(false) : null;
            var baseline = writeMoves ? await EndOffsetsOrNullAsync(request.Family, target.Write).ConfigureAwait(false) : null;

            using var deadline = new CancellationTokenSource(request.Timeout);
            var pause = Stopwatch.StartNew();
            var copied = new List<object>();
            FamilyHold? hold = null;
            try
            {
                FamilyRoute next;
                if (_fleet is { } fleet)
                {
                    // Every live instance holds and drains; this one copies the offsets; the log's commit swaps them all.
                    next = await fleet.SwitchAsync(action, current, target, async cancellationToken =>
                    {
                        if (readMoves)
                        {
                            copied = await CopyGroupOffsetsAsync(request.Family, groups, current.Route.Read, target.Read, cancellationToken).ConfigureAwait(false);
                        }
                    }, deadline.Token).ConfigureAwait(false);
                }
                else
                {
                    hold = new FamilyHold(_state, request.Family, writeMoves, readMoves);
                    await hold.DrainAsync(deadline.Token).ConfigureAwait(false);
                    if (readMoves)
                    {
                        copied = await CopyGroupOffsetsAsync(request.Family, groups, current.Route.Read, target.Read, deadline.Token).ConfigureAwait(false);
                    }
                    next = NextRoute(current, target);
                    await ApplyAsync(_state, _store, next).ConfigureAwait(false);
                }
                if (baseline is not null)
                {
                    _writeBaselines[request.Family] = (target.Write, baseline);
                }
                pause.Stop();
                hold?.Dispose();

                _metrics.SwitchCompleted(request.Family, action, pause.Elapsed);
                await AuditAsync(action, current, target, request, "ok", pause.Elapsed.TotalMilliseconds, null).ConfigureAwait(false);
                LogSwitched(_logger, action, request.Family, current.Route.ToString(), target.ToString(), pause.Elapsed.TotalMilliseconds);
                return new SwitchOutcome(200, Describe(next, pause.Elapsed.TotalMilliseconds, gates, new { offsetsCopied = copied, leftBehind }));
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or UpstreamUnavailableException or KafkaException or IOException
                or FleetSwitchException)
            {
                hold?.Dispose();
                var why = e switch
                {
                    FleetSwitchException => e.Message,
                    OperationCanceledException or TimeoutException =>
                        $"did not complete within {request.Timeout.TotalMilliseconds:0} ms ({hold?.Describe() ?? "the fleet did not answer in time"})",
                    _ => e.Message,
                };
                _metrics.SwitchFailed(request.Family, action);
                await AuditAsync(action, current, target, request, "failed", pause.Elapsed.TotalMilliseconds, why).ConfigureAwait(false);
                return new SwitchOutcome(503, new { error = $"The {action} of '{request.Family}' {why}; nothing changed.", family = request.Family });
            }
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>The route a switch to <paramref name="target"/> installs: the next epoch, the write epoch moved when writes move.</summary>
    internal static FamilyRoute NextRoute(FamilyRoute current, ClusterRoute target)
    {
        var epoch = current.Epoch + 1;
        return new FamilyRoute(current.Family, target, epoch, DateTimeOffset.UtcNow, current.Route,
            target.Write != current.Route.Write ? epoch : current.WriteEpoch);
    }

    /// <summary>Persists the table with <paramref name="next"/> (durable before anyone sees it), then swaps it in.</summary>
    internal static async Task ApplyAsync(ProxyState state, RouteStore store, FamilyRoute next)
    {
        var table = state.Routes.Current.With(next);
        // On the thread pool: this may be running on a socket event thread, and the save flushes to disk.
        await Task.Run(() => store.Save(table)).ConfigureAwait(false);
        state.Routes.Swap(table);
    }

    private async Task<List<object>> CopyGroupOffsetsAsync(string family, IReadOnlyCollection<string> groups, string from, string to, CancellationToken cancellationToken)
    {
        var copied = new List<object>();
        if (groups.Count == 0)
        {
            return copied;
        }
        var views = new List<ClusterView>();
        foreach (var cluster in new[] { from, to })
        {
            views.Add(await _state.Cluster(cluster).GetViewAsync(cancellationToken).ConfigureAwait(false));
        }
        var partitions = _gates.FamilyPartitions(family, views);
        var timeout = TimeSpan.FromSeconds(10);
        foreach (var group in groups)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Identity translation: replication is expected to keep offsets; other strategies plug in here.
            var offsets = await _admins[from].CommittedOffsetsAsync(group, partitions, timeout).ConfigureAwait(false);
            await _admins[to].CommitOffsetsAsync(group, offsets, timeout).ConfigureAwait(false);
            copied.Add(new { group, partitions = offsets.Count });
        }
        return copied;
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

    private static object Describe(FamilyRoute route, double pauseMs, IReadOnlyList<GateResult> gates, object extra) => new
    {
        family = route.Family,
        epoch = route.Epoch,
        write = route.Route.Write,
        read = route.Route.Read,
        previous = route.Previous is null ? null : new { write = route.Previous.Write, read = route.Previous.Read },
        pauseMs = Math.Round(pauseMs, 3),
        gates,
        details = extra,
    };

    public void Dispose()
    {
        foreach (var admin in _admins.Values)
        {
            admin.Dispose();
        }
        _oneAtATime.Dispose();
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "{Action} of family {Family}: {From} -> {To}, paused {PauseMs:0.###} ms")]
    private static partial void LogSwitched(ILogger logger, string action, string family, string from, string to, double pauseMs);
}
