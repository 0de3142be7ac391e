using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Switching;

/// <summary>
/// Once the proxy has started (listeners up), starts and connects every cluster's control-plane client in the
/// background, so the first switch does not start librdkafka's threads and connections while producers wait, and
/// builds the serializers' metadata of the state a switch writes inside its hold or a first mapped batch waits for
/// (the route file, the producer and transactional-id logs, the audit trail, the control log): measured on the
/// bench, the first route-file write of a process held the family 35-130 ms against 2 ms later. It also sends the
/// admin endpoint (plain HTTP only) one read and one refused switch (an empty body: 400, nothing changes, nothing is
/// audited): the first admin request of a process compiles the HTTP pipeline, and on the 2-core bench the producers
/// of a first switch stalled 100-200 ms while it did, in most runs. Never on a request path and never in the way of
/// start-up; whatever fails is logged and left to the first switch.
/// </summary>
public sealed partial class ControlPlaneWarmup(ProxyState state, SwitchCoordinator switches, AdminAddress admin, IHostApplicationLifetime lifetime,
    ILogger<ControlPlaneWarmup> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(static s => ((TaskCompletionSource)s!).TrySetResult(), started))
        {
            try
            {
                await started.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
        WarmStateSerializers();
        await Task.WhenAll(state.Clusters.Select(c => WarmAsync(c.Name, stoppingToken)).Append(WarmAdminPipelineAsync(stoppingToken))).ConfigureAwait(false);
    }

    private async Task WarmAdminPipelineAsync(CancellationToken stoppingToken)
    {
        if (state.Config.AdminTls is not null || admin.EndPoint is not { } bound || state.Routes.Current.Families.FirstOrDefault() is not { } family)
        {
            return;
        }
        var address = bound.Address.Equals(IPAddress.Any) ? IPAddress.Loopback : bound.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : bound.Address;
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://{new IPEndPoint(address, bound.Port)}/"), Timeout = TimeSpan.FromSeconds(10) };
            if (state.Config.AdminToken is { } token)
            {
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }
            using var read = await http.GetAsync("v1/families", stoppingToken).ConfigureAwait(false);
            // Neither 'write' nor 'read': refused before anything is looked at or held.
            using var body = new StringContent("{}", Encoding.UTF8, "application/json");
            using var refused = await http.PostAsync($"v1/families/{Uri.EscapeDataString(family.Family)}/switch", body, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            LogAdminNotWarmed(logger, e.Message);
        }
    }

    private void WarmStateSerializers()
    {
        try
        {
            RouteStore.Serialize(state.Routes.Current);
            var segment = new ProducerSegmentEntry(0, 0, "topic", 0, "family", "cluster", 0, 0, 0, 0);
            JsonLinesLog<ProducerSegmentEntry>.WarmSerializer(segment);
            JsonLinesLog<TransactionalIdEntry>.WarmSerializer(new TransactionBegunEntry("id", 0, null, "cluster", ["family"], []));
            System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(
                new AuditEntry(DateTimeOffset.UnixEpoch, "switch", "family", "a", "b", null, "caller", "ok", 0, null), StateJson.Options);
            System.Text.Json.JsonSerializer.SerializeToUtf8Bytes<Fleet.ControlRecord>(new Fleet.ProducerMappingRecord("instance", segment), Fleet.ControlJson.Options);
        }
        catch (Exception e) when (e is NotSupportedException or System.Text.Json.JsonException)
        {
            // Only the first switch pays for it then.
            LogSerializersNotWarmed(logger, e.Message);
        }
    }

    private async Task WarmAsync(string cluster, CancellationToken stoppingToken)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await switches.WarmAdminAsync(cluster, stoppingToken).ConfigureAwait(false);
            LogWarmed(logger, cluster, clock.Elapsed.TotalMilliseconds);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // Whatever went wrong, a switch creates and connects the client itself; only say so.
            LogNotWarmed(logger, cluster, e.Message);
        }
    }

    [LoggerMessage(EventId = 4008, Level = LogLevel.Information, Message = "Control-plane client of cluster {Cluster} connected in {Ms:0} ms")]
    private static partial void LogWarmed(ILogger logger, string cluster, double ms);

    [LoggerMessage(EventId = 4017, Level = LogLevel.Warning, Message = "Admin endpoint not called at start-up (the first admin call will compile its pipeline): {Reason}")]
    private static partial void LogAdminNotWarmed(ILogger logger, string reason);

    [LoggerMessage(EventId = 4016, Level = LogLevel.Warning, Message = "State serializers not prepared at start-up (the first switch will): {Reason}")]
    private static partial void LogSerializersNotWarmed(ILogger logger, string reason);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Warning, Message = "Control-plane client of cluster {Cluster} not connected at start-up (the first switch will connect it): {Reason}")]
    private static partial void LogNotWarmed(ILogger logger, string cluster, string reason);
}
