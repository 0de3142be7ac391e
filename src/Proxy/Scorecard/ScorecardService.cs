using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Switching;
using Switchback.Proxy.VirtualCluster;
using Switchback.Proxy.Window;

namespace Switchback.Proxy.Scorecard;

/// <summary>
/// Keeps every family's scorecard: recomputed in the background every <c>Scorecard.IntervalSeconds</c>, and on
/// request. Concurrent requests for one family share one computation.
/// </summary>
public sealed partial class ScorecardService : BackgroundService
{
    private readonly ProxyState _state;
    private readonly ScorecardEvaluator _evaluator;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, FamilyScorecard> _latest = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Task<FamilyScorecard?>> _running = new(StringComparer.Ordinal);

    public ScorecardService(ProxyState state, SwitchCoordinator switches, AuditLog audit, IServiceProvider services, ILogger<ScorecardService> logger)
    {
        _state = state;
        _logger = logger;
        _evaluator = new ScorecardEvaluator(state, switches.Gates, audit, services.GetService<MirrorSupervisor>());
    }

    /// <summary>The family's last computed scorecard, or null when none was computed yet.</summary>
    public FamilyScorecard? Latest(string family) => _latest.GetValueOrDefault(family);

    /// <summary>Computes the family's scorecard now (joining a computation already running); null for an unknown family.</summary>
    public Task<FamilyScorecard?> RefreshAsync(string family)
    {
        lock (_running)
        {
            if (_running.TryGetValue(family, out var running) && !running.IsCompleted)
            {
                return running;
            }
            var computing = ComputeAsync(family);
            _running[family] = computing;
            return computing;
        }
    }

    private async Task<FamilyScorecard?> ComputeAsync(string family)
    {
        await Task.Yield();
        var card = await _evaluator.EvaluateAsync(family).ConfigureAwait(false);
        if (card is not null)
        {
            _latest[family] = card;
        }
        return card;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_state.Config.ScorecardRefresh);
        // The first card of a family is computed when asked for; the background starts one interval after start-up.
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            foreach (var family in _state.Routes.Current.Families)
            {
                try
                {
                    await RefreshAsync(family.Family).WaitAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogNotComputed(_logger, family.Family, e.Message);
                }
            }
        }
    }

    [LoggerMessage(EventId = 4601, Level = LogLevel.Warning, Message = "Scorecard of family {Family} not computed: {Reason}")]
    private static partial void LogNotComputed(ILogger logger, string family, string reason);
}
