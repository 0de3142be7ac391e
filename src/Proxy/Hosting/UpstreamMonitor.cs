using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Hosting;

/// <summary>
/// Loads every cluster's view at start-up and refreshes them periodically (one timer for all); after each load the
/// ports of the brokers it shows are bound (<see cref="BrokerListeners"/>).
/// </summary>
public sealed partial class UpstreamMonitor(ProxyState state, BrokerListeners listeners, ILogger<UpstreamMonitor> logger) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Best effort before accepting clients, so the first ApiVersions already reflects every cluster.
        await RefreshAllAsync().WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        // The brokers known now get their ports before the proxy reports ready; one that cannot be bound stops start-up.
        await listeners.BindStartupBrokersAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(state.Config.Limits.MetadataRefreshInterval / 2);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                await RefreshAllAsync().ConfigureAwait(false);
                // Brokers that appeared since, and those whose port could not be bound before (it may be free now).
                await listeners.BindDiscoveredBrokersAsync().ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task RefreshAllAsync()
    {
        var refreshes = state.Clusters.Select(async cluster =>
        {
            try
            {
                var view = await cluster.RefreshAsync().ConfigureAwait(false);
                LogClusterView(logger, cluster.Name, view.Brokers.Count, view.Topics.Count);
            }
            catch (UpstreamUnavailableException)
            {
                // Logged by the cluster; readiness reports it.
            }
        });
        await Task.WhenAll(refreshes).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Cluster {Cluster}: {Brokers} broker(s), {Topics} topic(s)")]
    private static partial void LogClusterView(ILogger logger, string cluster, int brokers, int topics);
}
