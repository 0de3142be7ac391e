using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;
using Switchback.Proxy.Window;

namespace Switchback.Proxy.Scorecard;

/// <summary>
/// Computes a family's <see cref="FamilyScorecard"/>. Data and offset parity are the switch's own evaluation
/// (<see cref="ReadinessGates"/>), measured towards the route a switch would take over; the other gates read the client
/// inventory, the rollback window's mirror, the old cluster and the audit log. Every call to a cluster is bounded, and
/// every gate is, so a card is ready within <see cref="GateTimeout"/> even when a cluster is down.
/// </summary>
public sealed class ScorecardEvaluator(ProxyState state, ReadinessGates gates, AuditLog audit, MirrorSupervisor? mirrors)
{
    /// <summary>Bound of each call to a cluster.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(3);

    /// <summary>Bound of each gate (its calls run one after another).</summary>
    public static readonly TimeSpan GateTimeout = TimeSpan.FromSeconds(5);

    private const int MaxClientsShown = 50;
    private const int MaxSwitchesShown = 20;

    /// <summary>
    /// The route a family would move to: its rollback window's origin when the family is away from it (an open window:
    /// where a rollback returns; a closed one: where it came from); otherwise the first configured cluster other than
    /// its write cluster, for writes and reads. Null when only one cluster is configured.
    /// </summary>
    public static ClusterRoute? TakeoverOf(FamilyRoute route, ProxyConfig config)
    {
        if (route.Window is { } window && window.Origin != route.Route)
        {
            return window.Origin;
        }
        var other = config.Clusters.FirstOrDefault(c => c.Name != route.Route.Write)?.Name;
        return other is null ? null : new ClusterRoute(other, other);
    }

    /// <summary>
    /// The cluster that must stay ready to return to: with an open rollback window, its origin's write cluster;
    /// otherwise the family's write cluster (the one a switch would leave).
    /// </summary>
    public static string OldClusterOf(FamilyRoute route) => route.Window is { IsOpen: true } window ? window.Origin.Write : route.Route.Write;

    public async Task<FamilyScorecard?> EvaluateAsync(string family)
    {
        if (state.Routes.Current.Find(family) is not { } route)
        {
            return null;
        }
        var config = state.Config.Families.First(f => f.Name == family);
        var takeover = TakeoverOf(route, state.Config);
        var old = OldClusterOf(route);
        var (entries, auditProblem) = await FamilyAuditAsync(family).ConfigureAwait(false);
        var cards = await Task.WhenAll(
            BoundedAsync(ScorecardGates.DataParity, () => DataParityAsync(family, route.Route, takeover)),
            BoundedAsync(ScorecardGates.OffsetParity, () => OffsetParityAsync(family, route.Route, takeover)),
            BoundedAsync(ScorecardGates.ClientRouting, () => Task.FromResult(ClientRouting(family, entries, auditProblem))),
            BoundedAsync(ScorecardGates.SourceReadiness, () => SourceReadinessAsync(family, config, route, old)),
            BoundedAsync(ScorecardGates.DecisionAuthority, () => Task.FromResult(DecisionAuthority(config, entries, auditProblem)))).ConfigureAwait(false);
        return new FamilyScorecard(family, DateTimeOffset.UtcNow, new { write = route.Route.Write, read = route.Route.Read, epoch = route.Epoch },
            takeover is null ? null : new { write = takeover.Write, read = takeover.Read }, old, cards);
    }

    private static async Task<ScorecardGate> BoundedAsync(string gate, Func<Task<ScorecardGate>> evaluate)
    {
        try
        {
            return await Task.Run(evaluate).WaitAsync(GateTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return new ScorecardGate(gate, GateStatus.Unknown, $"not evaluated within {GateTimeout.TotalSeconds:0} s (a cluster is slow to answer)", null);
        }
        catch (Exception e) when (e is KafkaException or UpstreamUnavailableException or IOException or OperationCanceledException)
        {
            return new ScorecardGate(gate, GateStatus.Unknown, $"could not be evaluated: {e.Message.TrimEnd('.')}", null);
        }
    }

    private async Task<ScorecardGate> DataParityAsync(string family, ClusterRoute current, ClusterRoute? takeover)
    {
        const string gate = ScorecardGates.DataParity;
        if (takeover is null)
        {
            return new ScorecardGate(gate, GateStatus.Unknown, "only one cluster is configured: there is nothing to take over", null);
        }
        var clusters = new[] { current.Write, current.Read, takeover.Write, takeover.Read }.Distinct(StringComparer.Ordinal).ToList();
        var (views, unreachable) = await gates.ViewsAsync(clusters, CallTimeout).ConfigureAwait(false);
        if (unreachable.Count > 0)
        {
            return new ScorecardGate(gate, GateStatus.Unknown, $"cannot compare: {string.Join("; ", unreachable)}", null);
        }
        var partitions = gates.FamilyPartitions(family, views.Values);
        var limits = gates.LimitsOf(family);
        var pairs = new List<(string Gate, string From, string To)> { ("data-parity-write", current.Write, takeover.Write) };
        if (current.Read != takeover.Read && (current.Read, takeover.Read) != (current.Write, takeover.Write))
        {
            pairs.Add(("data-parity-read", current.Read, takeover.Read));
        }
        var results = new List<GateResult>();
        foreach (var (name, from, to) in pairs.Where(p => p.From != p.To))
        {
            results.Add(await gates.FamilyDataParityAsync(name, family, from, to, partitions, limits, CallTimeout).ConfigureAwait(false));
        }
        if (results.Count == 0)
        {
            return new ScorecardGate(gate, GateStatus.Green, "writes and reads stay where they are: nothing to take over", null);
        }
        return new ScorecardGate(gate, StatusOf(results), string.Join("; ", results.Select(r => r.Summary)),
            new
            {
                limits = new { maxLagRecords = limits.MaxRecords, maxLagMs = limits.MaxMs },
                partitions = partitions.Count,
                checks = results.Select(r => new { check = r.Gate, passed = r.Passed, behind = r.Evidence }),
            });
    }

    private async Task<ScorecardGate> OffsetParityAsync(string family, ClusterRoute current, ClusterRoute? takeover)
    {
        const string gate = ScorecardGates.OffsetParity;
        if (takeover is null)
        {
            return new ScorecardGate(gate, GateStatus.Unknown, "only one cluster is configured: there is nothing to take over", null);
        }
        if (current.Read == takeover.Read)
        {
            return new ScorecardGate(gate, GateStatus.Green, $"reads stay on {current.Read}: no group offsets move", null);
        }
        var groups = state.Traffic.For(family).GroupsOf().Order(StringComparer.Ordinal).ToList();
        if (groups.Count == 0)
        {
            return new ScorecardGate(gate, GateStatus.Green, "no consumer group of the family has been seen through the proxy: no offsets to carry over", new { groups });
        }
        var (views, unreachable) = await gates.ViewsAsync([current.Read, takeover.Read], CallTimeout).ConfigureAwait(false);
        if (unreachable.Count > 0)
        {
            return new ScorecardGate(gate, GateStatus.Unknown, $"cannot compare: {string.Join("; ", unreachable)}", new { groups });
        }
        var partitions = gates.FamilyPartitions(family, views.Values);
        var result = await gates.OffsetParityAsync(current.Read, takeover.Read, groups, partitions, CallTimeout, requireCommittedThere: true).ConfigureAwait(false);
        return new ScorecardGate(gate, StatusOf([result]), result.Summary, new { from = current.Read, to = takeover.Read, groups, offsets = result.Evidence });
    }

    private ScorecardGate ClientRouting(string family, IReadOnlyList<AuditEntry> entries, string? auditProblem)
    {
        const string gate = ScorecardGates.ClientRouting;
        var clients = FamilyClients.Using(state.Sessions.Inventory(), family);
        int Using(ClientUse use) => FamilyClients.Count(clients, family, use);
        var groups = state.Traffic.For(family).GroupsOf().Order(StringComparer.Ordinal).ToList();
        var software = clients.Select(Software).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var inventory = clients.Count == 0
            ? "no open client connection uses the family"
            : $"{Using(ClientUse.Produce)} producer(s), {Using(ClientUse.Fetch)} consumer(s), {groups.Count} group(s); client software {string.Join(", ", software)}";

        var figures = mirrors?.Figures(family);
        var stray = figures?.Totals.StrayWrites;
        var lastChange = entries.LastOrDefault(e => e.Action is "switch" or "rollback" && e.Outcome is "ok" or "unconfirmed");
        var rehearsal = entries.LastOrDefault(e => e.Action == "rehearsal" && e.Outcome == "ok" && (lastChange is null || e.Time >= lastChange.Time));
        var evidence = new
        {
            producers = Using(ClientUse.Produce),
            consumers = Using(ClientUse.Fetch),
            groups,
            software,
            clients = clients.Take(MaxClientsShown).Select(c => new
            {
                clientId = c.ClientId,
                software = Software(c),
                address = c.Address,
                uses = c.Uses.Where(u => u.Family == family).Select(u => $"{u.Use.ToString().ToLowerInvariant()}:{u.Cluster}"),
            }),
            strayWrites = stray,
            strayWritesTo = figures?.To,
            rehearsal = rehearsal is null ? null : new { at = rehearsal.Time, pauseMs = rehearsal.PauseMs, to = rehearsal.To, caller = rehearsal.Caller, detail = rehearsal.Detail },
            lastRouteChange = lastChange is null ? null : new { at = lastChange.Time, action = lastChange.Action, to = lastChange.To },
            audit = auditProblem,
        };
        if (stray > 0)
        {
            return new ScorecardGate(gate, GateStatus.Red, $"{stray} stray write(s) to {figures!.To} bypassed the proxy while the window is open; {inventory}", evidence);
        }
        var strays = figures is null ? "stray writes not watched (no rollback-window mirror runs here)" : "no stray writes";
        if (rehearsal is null)
        {
            var why = auditProblem ?? (lastChange is null ? "not rehearsed (switch --dry-run)" : $"not rehearsed since the last {lastChange.Action} at {lastChange.Time:u} (switch --dry-run)");
            return new ScorecardGate(gate, GateStatus.Unknown, $"{why}; {strays}; {inventory}", evidence);
        }
        return new ScorecardGate(gate, GateStatus.Green,
            $"rehearsed at {rehearsal.Time:u} (paused {rehearsal.PauseMs.ToString("0.#", CultureInfo.InvariantCulture)} ms); {strays}; {inventory}", evidence);

        static string Software(ClientSnapshot c) =>
            c.SoftwareName is null ? $"unnamed ({c.ClientId ?? "no client id"})" : $"{c.SoftwareName} {c.SoftwareVersion}".Trim();
    }

    private async Task<ScorecardGate> SourceReadinessAsync(string family, FamilyConfig config, FamilyRoute route, string old)
    {
        const string gate = ScorecardGates.SourceReadiness;
        var window = route.Window is { IsOpen: true } open ? open : null;
        var figures = mirrors?.Figures(family);
        var mirror = figures is null ? null : new
        {
            state = figures.State.ToString().ToLowerInvariant(),
            from = figures.From,
            to = figures.To,
            lagRecords = figures.Totals.LagRecords,
            lagMs = figures.Totals.MaxLagMs,
            strayWrites = figures.Totals.StrayWrites,
            error = figures.Error,
        };
        var (views, unreachable) = await gates.ViewsAsync([old], CallTimeout).ConfigureAwait(false);
        if (unreachable.Count > 0)
        {
            return new ScorecardGate(gate, GateStatus.Red, $"old cluster unreachable: {string.Join("; ", unreachable)}", new { cluster = old, reachable = false, mirror });
        }
        var view = views[old];
        var routes = state.Routes.Current;
        var topics = view.Topics.Keys.Where(t => routes.ForTopic(t).Family == family).Order(StringComparer.Ordinal).ToList();
        var windowAge = window is null ? TimeSpan.Zero : DateTimeOffset.UtcNow - window.OpenedAt;

        var red = new List<string>();
        var unknown = new List<string>();
        var notes = new List<string> { $"{old} reachable ({view.Brokers.Count} broker(s))" };
        if (figures is not null)
        {
            if (figures.State == MirrorState.Retrying)
            {
                red.Add($"the window's mirror is failing: {figures.Error}");
            }
            // The lag of a mirror under load is judged only against limits the operator set.
            else if (config.Gates is { } limits
                && ((limits.MaxRecords is { } maxRecords && figures.Partitions.Any(p => p.LagRecords > maxRecords))
                    || (limits.MaxMs is { } maxMs && figures.Partitions.Any(p => p.LagMs > maxMs))))
            {
                red.Add($"the window's mirror lags {figures.Totals.LagRecords} record(s) ({figures.Totals.MaxLagMs?.ToString(CultureInfo.InvariantCulture) ?? "?"} ms), over the family's limits");
            }
            else
            {
                notes.Add($"mirror {figures.State.ToString().ToLowerInvariant()}, {figures.Totals.LagRecords} record(s) behind");
            }
        }
        else if (window is not null && route.Route.Write != old)
        {
            notes.Add($"no mirror copies {route.Route.Write} back to {old} here: a rollback would leave the new records behind");
        }

        Dictionary<string, long>? retention = null;
        string? retentionError = null;
        try
        {
            retention = await state.Cluster(old).TopicRetentionMsAsync(topics).WaitAsync(CallTimeout).ConfigureAwait(false);
        }
        catch (UpstreamUnavailableException e)
        {
            retentionError = e.Message.TrimEnd('.');
        }
        catch (TimeoutException)
        {
            retentionError = $"not described within {CallTimeout.TotalSeconds:0} s";
        }
        var shortest = retention?.Where(r => r.Value >= 0).OrderBy(r => r.Value).Select(r => (KeyValuePair<string, long>?)r).FirstOrDefault();
        if (topics.Count == 0)
        {
            notes.Add($"no topic of the family on {old}");
        }
        else if (retention is null || retention.Count < topics.Count)
        {
            unknown.Add($"retention of {topics.Count - (retention?.Count ?? 0)} topic(s) on {old} unknown ({retentionError ?? "not described"})");
        }
        else if (shortest is { } s && window is not null && TimeSpan.FromMilliseconds(s.Value) < windowAge)
        {
            red.Add($"retention of {s.Key} ({Duration(TimeSpan.FromMilliseconds(s.Value))}) no longer covers the window, open for {Duration(windowAge)}: its first records may be gone");
        }
        else
        {
            notes.Add(shortest is { } k
                ? $"retention {Duration(TimeSpan.FromMilliseconds(k.Value))} ({k.Key}) covers {(window is null ? "a window yet to open" : $"the window, open for {Duration(windowAge)}")}"
                : "topics kept without a time limit");
        }
        var evidence = new
        {
            cluster = old,
            reachable = true,
            brokers = view.Brokers.Count,
            window = window is null ? null : new { openedAt = window.OpenedAt, ageMs = (long)windowAge.TotalMilliseconds },
            mirror,
            retentionMs = retention,
            retentionError,
        };
        var status = red.Count > 0 ? GateStatus.Red : unknown.Count > 0 ? GateStatus.Unknown : GateStatus.Green;
        return new ScorecardGate(gate, status, string.Join("; ", red.Concat(unknown).Concat(notes)), evidence);
    }

    private static ScorecardGate DecisionAuthority(FamilyConfig config, IReadOnlyList<AuditEntry> entries, string? auditProblem)
    {
        const string gate = ScorecardGates.DecisionAuthority;
        var criteria = AbortCriteriaOf(config);
        var decisions = entries.Where(e => e.Action is "switch" or "rollback" or "close" && e.Outcome is "ok" or "unconfirmed").ToList();
        var callers = decisions.Select(e => e.Caller).Distinct(StringComparer.Ordinal).Count();
        var summary = $"{(config.Owner is { } owner ? $"owner {owner}" : "no owner")}; {(criteria is null ? "no abort criteria" : "abort criteria set")}; "
            + (auditProblem ?? $"{decisions.Count} switch(es), rollback(s) or close(s) by {callers} caller(s)");
        return new ScorecardGate(gate, config.Owner is not null && criteria is not null ? GateStatus.Green : GateStatus.Red, summary, new
        {
            owner = config.Owner,
            abortWhen = criteria,
            decisions = decisions.TakeLast(MaxSwitchesShown).Select(e => new { at = e.Time, action = e.Action, from = e.From, to = e.To, caller = e.Caller, reason = e.Reason, outcome = e.Outcome }),
        });
    }

    /// <summary>The family's abort criteria (<c>Families[].AbortWhen</c>) as configured, or null.</summary>
    private static object? AbortCriteriaOf(FamilyConfig config) =>
        config.AbortWhen is { } criteria
            ? new
            {
                produceErrorRatePercent = criteria.ProduceErrorRatePercent,
                produceLatencyP99Ms = criteria.ProduceLatencyP99Ms,
                strayWrites = criteria.StrayWrites,
                forSeconds = criteria.For.TotalSeconds,
            }
            : null;

    private async Task<(IReadOnlyList<AuditEntry> Entries, string? Problem)> FamilyAuditAsync(string family)
    {
        try
        {
            var all = await Task.Run(audit.ReadAll).ConfigureAwait(false);
            return ([.. all.Where(e => e.Family == family)], null);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return ([], $"the audit log could not be read ({e.Message.TrimEnd('.')})");
        }
    }

    private static string StatusOf(IReadOnlyCollection<GateResult> results) =>
        results.Any(r => !r.Passed && !r.Undetermined) ? GateStatus.Red
        : results.Any(r => r.Undetermined) ? GateStatus.Unknown
        : GateStatus.Green;

    private static string Duration(TimeSpan span) =>
        span.TotalDays >= 1 ? $"{span.TotalDays:0.#} d" : span.TotalHours >= 1 ? $"{span.TotalHours:0.#} h" : span.TotalMinutes >= 1 ? $"{span.TotalMinutes:0.#} min" : $"{span.TotalSeconds:0.#} s";
}
