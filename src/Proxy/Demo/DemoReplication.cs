using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Switching;
using Switchback.Proxy.VirtualCluster;
using Switchback.Proxy.Window;

namespace Switchback.Proxy.Demo;

/// <summary>
/// The demo's stand-in for the replication a real migration runs before its cutover (an offset-keeping link): while
/// a family's writes go to <c>source</c>, its records are copied to <c>target</c> at the same offsets, by the same
/// mirror the rollback window uses, run forward. So the data-parity gate turns green and an unforced switch passes.
/// It stops once the family's writes route elsewhere (the window's mirror copies back from then on, the clusters
/// being aligned) and starts again, from target's ends, once they return to source.
/// </summary>
public sealed partial class DemoReplication : IAsyncDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);

    private readonly ProxyState _state;
    private readonly string _family;
    private readonly IReadOnlyList<(string Topic, int Partitions)> _topics;
    private readonly MirrorProgressStore _store;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private RollbackMirror? _mirror;

    public DemoReplication(ProxyState state, string family, IReadOnlyList<(string Topic, int Partitions)> topics)
    {
        _state = state;
        _family = family;
        _topics = topics;
        // Its own folder: the window's mirrors are resumed from StateDirectory/mirrors at start, this one never is.
        _store = new MirrorProgressStore(Path.Combine(state.Config.StateDirectory, "demo-replication"));
        _logger = state.LoggerFactory.CreateLogger("Switchback.Demo");
        _loop = Task.Run(RunAsync);
    }

    private ClusterConfig Source => _state.Config.Cluster("source");
    private ClusterConfig Target => _state.Config.Cluster("target");

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var writesToSource = _state.Routes.Current.Find(_family)?.Route.Write == "source";
                if (writesToSource && _mirror is null)
                {
                    _mirror = await StartAsync().ConfigureAwait(false);
                }
                else if (!writesToSource && _mirror is { } running)
                {
                    _mirror = null;
                    await running.StopAsync().ConfigureAwait(false);
                    _store.Delete(ReplicationName);
                    LogStopped(_logger, _family);
                }
                await Task.Delay(Poll, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is KafkaException or ArgumentException or IOException)
            {
                LogFailed(_logger, e, _family);
                await Task.Delay(TimeSpan.FromSeconds(1), _stop.Token).ConfigureAwait(false);
            }
        }
    }

    private string ReplicationName => $"{_family}-replication";

    /// <summary>From target's ends: the clusters are aligned (empty at the start, mirrored back after a rollback).</summary>
    private async Task<RollbackMirror> StartAsync()
    {
        var partitions = _topics.SelectMany(t => Enumerable.Range(0, t.Partitions).Select(p => new TopicPartition(t.Topic, p))).ToList();
        Dictionary<TopicPartition, long> targetEnds;
        using (var admin = new ClusterAdmin(Target))
        {
            targetEnds = await admin.EndOffsetsAsync(partitions, TimeSpan.FromSeconds(10)).WaitAsync(_stop.Token).ConfigureAwait(false);
        }
        var mirror = await RollbackMirror.BeginAsync(ReplicationName, Source, Target, targetEnds, _store, MirrorOptions.Default, _logger,
            cancellationToken: _stop.Token).ConfigureAwait(false);
        LogStarted(_logger, _family);
        return mirror;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        if (_mirror is { } mirror)
        {
            await mirror.StopAsync().ConfigureAwait(false);
        }
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "Demo replication of family {Family} from source to target started")]
    private static partial void LogStarted(ILogger logger, string family);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Information, Message = "Demo replication of family {Family} stopped: its writes no longer go to source")]
    private static partial void LogStopped(ILogger logger, string family);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "Demo replication of family {Family} could not start; trying again")]
    private static partial void LogFailed(ILogger logger, Exception exception, string family);
}
