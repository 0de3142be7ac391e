using Confluent.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Metrics;

namespace Switchback.Proxy.Window;

/// <summary>
/// Runs the rollback windows' mirrors, at most one per family: started and ended by the switch, resumed from their
/// persisted progress when the proxy starts, stopped (progress kept) when it stops. Their figures are published to
/// <c>/metrics</c> when it is scraped.
/// </summary>
/// <remarks>
/// In a fleet every instance has one of these; only one instance may run a given family's mirror (two would each
/// copy every record), so whoever calls <see cref="StartMirrorAsync"/> must pick that instance.
/// </remarks>
public sealed partial class MirrorSupervisor : IHostedService, IAsyncDisposable
{
    private readonly Func<string, ClusterConfig?> _clusters;
    private readonly MirrorProgressStore _store;
    private readonly MirrorMetrics _metrics;
    private readonly MirrorOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, RollbackMirror> _mirrors = new(StringComparer.Ordinal);
    // Starts and stops of one supervisor never interleave: each checks and changes the set of mirrors whole.
    private readonly SemaphoreSlim _changes = new(1, 1);

    /// <summary>The supervisor of a proxy: clusters from its configuration, progress in its state directory.</summary>
    public MirrorSupervisor(ProxyConfig config, MirrorMetrics metrics, ILoggerFactory loggerFactory, CollectorRegistry? registry = null)
        : this(name => config.Clusters.FirstOrDefault(c => c.Name == name), new MirrorProgressStore(config.StateDirectory), metrics, MirrorOptions.Default, loggerFactory)
    {
        registry?.AddBeforeCollectCallback(PublishFigures);
    }

    /// <param name="clusters">Resolves a cluster name (null when unknown).</param>
    /// <param name="store">Where progress is kept.</param>
    /// <param name="metrics">Where figures are published (see <see cref="PublishFigures"/>).</param>
    /// <param name="options">Intervals and bounds of every mirror.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="time">Clock (tests).</param>
    public MirrorSupervisor(Func<string, ClusterConfig?> clusters, MirrorProgressStore store, MirrorMetrics metrics, MirrorOptions options,
        ILoggerFactory loggerFactory, TimeProvider? time = null)
    {
        _clusters = clusters;
        _store = store;
        _metrics = metrics;
        _options = options;
        _logger = loggerFactory.CreateLogger("Switchback.Window");
        _time = time ?? TimeProvider.System;
    }

    /// <summary>
    /// Starts mirroring <paramref name="family"/> from <paramref name="fromCluster"/> (its new write cluster) back to
    /// <paramref name="toCluster"/> (its old one) from <paramref name="startOffsets"/> (see
    /// <see cref="RollbackMirror.BeginAsync"/>); the progress is on disk when this returns. Starting again a mirror
    /// that runs between the same clusters changes nothing (a retried call).
    /// </summary>
    /// <exception cref="InvalidOperationException">The family is already mirrored between other clusters (end that first).</exception>
    /// <exception cref="ArgumentException">An unknown cluster, or bad start offsets.</exception>
    /// <exception cref="KafkaException">The old cluster's end offsets could not be read.</exception>
    public async Task<MirrorFigures> StartMirrorAsync(string family, string fromCluster, string toCluster, IReadOnlyDictionary<TopicPartition, long> startOffsets,
        CancellationToken cancellationToken = default)
    {
        var from = _clusters(fromCluster) ?? throw new ArgumentException($"Unknown cluster '{fromCluster}'.", nameof(fromCluster));
        var to = _clusters(toCluster) ?? throw new ArgumentException($"Unknown cluster '{toCluster}'.", nameof(toCluster));
        await _changes.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_mirrors.TryGetValue(family, out var running))
            {
                return running.From == fromCluster && running.To == toCluster
                    ? running.Figures()
                    : throw new InvalidOperationException($"Family '{family}' is already mirrored from '{running.From}' to '{running.To}'.");
            }
            var mirror = await RollbackMirror.BeginAsync(family, from, to, startOffsets, _store, _options, _logger, _time, cancellationToken).ConfigureAwait(false);
            lock (_mirrors)
            {
                _mirrors[family] = mirror;
            }
            return mirror.Figures();
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// Ends a family's mirror for good (its window closed or its rollback completed): copies in flight are awaited,
    /// then its progress and its series are removed. False when none ran.
    /// </summary>
    public async Task<bool> StopMirrorAsync(string family, CancellationToken cancellationToken = default)
    {
        await _changes.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            RollbackMirror? mirror;
            lock (_mirrors)
            {
                if (!_mirrors.Remove(family, out mirror))
                {
                    return false;
                }
            }
            await mirror.StopAsync().ConfigureAwait(false);
            _store.Delete(family);
            _metrics.Remove(family);
            return true;
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>A family's mirror figures, or null when it has none.</summary>
    public MirrorFigures? Figures(string family) => Mirror(family)?.Figures();

    /// <summary>A family's running mirror (for <see cref="RollbackMirror.WaitCopiedAsync"/>), or null.</summary>
    public RollbackMirror? Mirror(string family)
    {
        lock (_mirrors)
        {
            return _mirrors.GetValueOrDefault(family);
        }
    }

    /// <summary>
    /// Completes once the family's mirror has copied everything below <paramref name="endsOnNewCluster"/>
    /// (see <see cref="RollbackMirror.WaitCopiedAsync"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The family has no mirror.</exception>
    public Task WaitCopiedAsync(string family, IReadOnlyDictionary<TopicPartition, long> endsOnNewCluster, CancellationToken cancellationToken) =>
        (Mirror(family) ?? throw new InvalidOperationException($"Family '{family}' has no mirror.")).WaitCopiedAsync(endsOnNewCluster, cancellationToken);

    /// <summary>Publishes every mirror's figures to its series (called before each scrape).</summary>
    public void PublishFigures()
    {
        RollbackMirror[] mirrors;
        lock (_mirrors)
        {
            mirrors = [.. _mirrors.Values];
        }
        foreach (var mirror in mirrors)
        {
            _metrics.Publish(mirror.Figures());
        }
    }

    /// <summary>Resumes every mirror whose progress is on disk (they go on in the background).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var (path, progress, error) in _store.LoadAll())
            {
                if (progress is null)
                {
                    LogNotResumed(_logger, path, error ?? "unreadable");
                    continue;
                }
                if (_clusters(progress.From) is not { } from || _clusters(progress.To) is not { } to)
                {
                    LogNotResumed(_logger, path, $"cluster '{progress.From}' or '{progress.To}' is no longer configured");
                    continue;
                }
                if (!_mirrors.ContainsKey(progress.Family))
                {
                    lock (_mirrors)
                    {
                        _mirrors[progress.Family] = RollbackMirror.Resume(progress, from, to, _store, _options, _logger, _time);
                    }
                }
            }
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// Stops every mirror, keeping its progress for the next start. A cancelled token (the host stopping at once) does
    /// not wait for copies in flight: the next start reads back what landed after the last checkpoint.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            RollbackMirror[] mirrors;
            lock (_mirrors)
            {
                mirrors = [.. _mirrors.Values];
                _mirrors.Clear();
            }
            try
            {
                await Task.WhenAll(mirrors.Select(m => m.StopAsync())).WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Stopping at once: the mirrors finish stopping on their own.
            }
        }
        finally
        {
            _changes.Release();
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);

    [LoggerMessage(EventId = 4411, Level = LogLevel.Error, Message = "Mirror progress {Path} not resumed: {Reason}")]
    private static partial void LogNotResumed(ILogger logger, string path, string reason);
}
