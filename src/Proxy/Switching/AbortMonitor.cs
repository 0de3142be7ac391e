using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Metrics;
using Switchback.Proxy.Routing;
using Switchback.Proxy.VirtualCluster;
using Switchback.Proxy.Window;

namespace Switchback.Proxy.Switching;

/// <summary>
/// Acts on each family's abort criteria (<c>Families[].AbortWhen</c>): once a second, while the family's rollback
/// window is open and its routes differ from the window's origin, it judges the proxy's own measurements since the
/// last route change; when one criterion has held without a break for <c>ForSeconds</c>, it rolls the family back
/// (caller <c>abort-criteria</c>, the measurements as the reason), so the abort decision is the one written down
/// before the cutover, not one argued over during an incident.
/// </summary>
public sealed partial class AbortMonitor(ProxyState state, SwitchCoordinator coordinator, ILogger<AbortMonitor> logger, MirrorSupervisor? mirrors = null)
    : BackgroundService
{
    public const string Caller = "abort-criteria";

    /// <summary>The trailing span a rate or percentile is measured over: long enough to smooth a burst, short enough to see a recovery.</summary>
    private static readonly TimeSpan MeasuredOver = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RollbackTimeout = TimeSpan.FromSeconds(60);

    // Touched by the monitoring loop only: one check at a time.
    private readonly Dictionary<string, FamilyWatch> _watches = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var families = state.Config.Families.Where(f => f.AbortWhen is not null).ToList();
        if (families.Count == 0)
        {
            return;
        }
        foreach (var family in families)
        {
            var criteria = family.AbortWhen!;
            state.Metrics.AbortCriteriaConfigured(family.Name, [
                .. criteria.ProduceErrorRatePercent is null ? [] : new[] { "ProduceErrorRatePercent" },
                .. criteria.ProduceLatencyP99Ms is null ? [] : new[] { "ProduceLatencyP99Ms" },
                .. criteria.StrayWrites is null ? [] : new[] { "StrayWrites" }]);
        }
        using var timer = new PeriodicTimer(Tick);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            foreach (var family in families)
            {
                try
                {
                    await CheckAsync(family, DateTimeOffset.UtcNow, stoppingToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogCheckFailed(logger, e, family.Name);
                }
            }
        }
    }

    private async Task CheckAsync(FamilyConfig family, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var criteria = family.AbortWhen!;
        var route = state.Routes.Current.Find(family.Name);
        if (!_watches.TryGetValue(family.Name, out var watch) || route is null || watch.Epoch != route.Epoch)
        {
            // Measurements from before the last route change judge the other cluster: start over.
            watch = _watches[family.Name] = new FamilyWatch(route?.Epoch ?? -1, now);
        }
        var armed = route?.Window is { IsOpen: true } window && window.Origin != route.Route;
        var measured = Measure(family.Name, criteria, now - watch.Started);
        foreach (var (criterion, breached, evidence) in measured)
        {
            var holding = armed && breached;
            if (holding)
            {
                watch.Since.TryAdd(criterion, now);
                watch.Evidence[criterion] = evidence;
            }
            else
            {
                watch.Since.Remove(criterion);
                watch.Evidence.Remove(criterion);
            }
            state.Metrics.AbortCriterion(family.Name, criterion, holding);
        }
        var held = watch.Since.FirstOrDefault(s => now - s.Value >= criteria.For);
        if (held.Key is null)
        {
            return;
        }

        var reason = $"abort criteria held for {criteria.For.TotalSeconds:0} s since {held.Value:O}: "
            + string.Join("; ", watch.Since.Keys.Select(k => $"{k}: {watch.Evidence[k]}"));
        LogRollingBack(logger, family.Name, reason);
        var outcome = await coordinator.RollbackAsync(family.Name, reason, Caller, RollbackTimeout).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        if (outcome.Status == 200)
        {
            state.Metrics.AutomaticRollback(family.Name, "ok");
            LogRolledBack(logger, family.Name);
        }
        else
        {
            state.Metrics.AutomaticRollback(family.Name, "failed");
            LogRollbackFailed(logger, family.Name, outcome.Status, System.Text.Json.JsonSerializer.Serialize(outcome.Body));
        }
        // Judged afresh from now: after a refused rollback the criteria must hold for their whole span again.
        _watches[family.Name] = new FamilyWatch(state.Routes.Current.Find(family.Name)?.Epoch ?? -1, DateTimeOffset.UtcNow);
    }

    /// <summary>Each configured criterion: whether it holds now, and the measurement that says so.</summary>
    private List<(string Criterion, bool Breached, string Evidence)> Measure(string family, AbortCriteria criteria, TimeSpan sinceRouteChange)
    {
        var results = new List<(string, bool, string)>(3);
        var span = sinceRouteChange < MeasuredOver ? sinceRouteChange : MeasuredOver;
        var produce = span >= Tick ? state.Metrics.ProduceOutcomes.Summarize(family, span) : default;
        if (criteria.ProduceErrorRatePercent is { } maxRate)
        {
            var rate = produce.ErrorRatePercent;
            results.Add(("ProduceErrorRatePercent", rate >= maxRate, rate is null
                ? "no produce traffic"
                : Invariant($"produce error rate {rate:0.##}% ({produce.ErrorPartitions} of {produce.Partitions} partitions over {span.TotalSeconds:0} s), limit {maxRate}%")));
        }
        if (criteria.ProduceLatencyP99Ms is { } maxLatency)
        {
            var p99 = produce.LatencyP99Ms;
            results.Add(("ProduceLatencyP99Ms", p99 >= maxLatency, p99 is null
                ? "no produce traffic"
                : Invariant($"produce latency p99 {p99:0.#} ms ({produce.Requests} requests over {span.TotalSeconds:0} s), limit {maxLatency} ms")));
        }
        if (criteria.StrayWrites is { } maxStray)
        {
            var stray = mirrors?.Figures(family)?.Totals.StrayWrites;
            results.Add(("StrayWrites", stray >= maxStray, stray is null
                ? "no mirror runs for the family here"
                : Invariant($"{stray} record(s) written to the old write cluster around the proxy, limit {maxStray}")));
        }
        return results;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed class FamilyWatch(long epoch, DateTimeOffset started)
    {
        public long Epoch { get; } = epoch;
        public DateTimeOffset Started { get; } = started;
        public Dictionary<string, DateTimeOffset> Since { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, string> Evidence { get; } = new(StringComparer.Ordinal);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rolling family '{Family}' back by itself: {Reason}")]
    private static partial void LogRollingBack(ILogger logger, string family, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Family '{Family}' rolled back by its abort criteria")]
    private static partial void LogRolledBack(ILogger logger, string family);

    [LoggerMessage(Level = LogLevel.Error, Message = "The automatic rollback of family '{Family}' failed ({Status}): {Body}")]
    private static partial void LogRollbackFailed(ILogger logger, string family, int status, string body);

    [LoggerMessage(Level = LogLevel.Error, Message = "Checking the abort criteria of family '{Family}' failed")]
    private static partial void LogCheckFailed(ILogger logger, Exception exception, string family);
}
