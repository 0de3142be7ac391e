using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Admin;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Fleet;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Metrics;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Scorecard;
using Switchback.Proxy.Switching;
using Switchback.Proxy.VirtualCluster;
using Switchback.Proxy.Window;

namespace Switchback.Proxy.Hosting;

/// <summary>
/// One running proxy: the Kafka listener and the admin HTTP endpoint on one Kestrel server, sharing one
/// <see cref="ProxyState"/>. Used by <c>switchback run</c>, by <c>switchback demo</c> and by the tests.
/// </summary>
public sealed class ProxyHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Func<ListenOptions?> _kafkaListener;
    private readonly Func<ListenOptions?> _adminListener;

    private ProxyHost(WebApplication app, Func<ListenOptions?> kafkaListener, Func<ListenOptions?> adminListener)
    {
        _app = app;
        _kafkaListener = kafkaListener;
        _adminListener = adminListener;
    }

    public ProxyState State => _app.Services.GetRequiredService<ProxyState>();
    public IServiceProvider Services => _app.Services;

    /// <summary>The address clients use as <c>bootstrap.servers</c>.</summary>
    public string BootstrapServers => $"{State.Config.AdvertisedHost}:{State.AdvertisedPort}";

    public Uri AdminUri => _adminListener()?.EndPoint is IPEndPoint admin
        ? new Uri($"{(State.Config.AdminTls is null ? "http" : "https")}://{admin.Address}:{admin.Port}/")
        : throw new InvalidOperationException("The admin endpoint is not bound yet.");

    /// <summary>Builds a proxy from configuration (JSON file, environment, command line), validating it first.</summary>
    public static ProxyHost Create(IConfiguration configuration, Action<ILoggingBuilder>? logging = null)
    {
        var config = ConfigValidator.Load(configuration);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddConfiguration(configuration);
        if (logging is not null)
        {
            logging(builder.Logging);
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            });
            builder.Logging.SetMinimumLevel(LogLevel.Information);
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        }
        builder.Services.AddSingleton(config);
        // Routes persisted by earlier switches win over the file's initial routes.
        var store = new RouteStore(config.StateDirectory);
        builder.Services.AddSingleton(store);
        builder.Services.AddSingleton(new AuditLog(config.StateDirectory));
        builder.Services.AddSingleton(new RouteTableHolder(store.Load(config, RouteTable.FromConfig(config))));
        var registry = Prometheus.Metrics.NewCustomRegistry();
        Prometheus.DotNetStats.Register(registry); // process_* and dotnet_* series: memory, GC, threads, descriptors
        builder.Services.AddSingleton(registry);
        builder.Services.AddSingleton(new ProxyMetrics(registry));
        builder.Services.AddSingleton(new MirrorMetrics(registry));
        if (config.Fleet is { } fleet)
        {
            builder.Services.AddSingleton(sp => new ControlLog(fleet, config.Cluster(fleet.Cluster), sp.GetRequiredService<ILoggerFactory>().CreateLogger("Switchback.Fleet")));
            builder.Services.AddSingleton<IFleetLiveness>(sp => FleetLiveness.Create(sp.GetRequiredService<ProxyState>(), fleet,
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("Switchback.Fleet")));
            builder.Services.AddSingleton<FleetCoordinator>();
        }
        builder.Services.AddSingleton<SwitchCoordinator>();
        builder.Services.AddSingleton<ProxyState>();
        builder.Services.AddHostedService<UpstreamMonitor>();
        // Rollback windows' mirrors: resumed from their progress at start, stopped (progress kept) at shutdown.
        builder.Services.AddSingleton(sp => new MirrorSupervisor(config, sp.GetRequiredService<MirrorMetrics>(), sp.GetRequiredService<ILoggerFactory>(), registry));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<MirrorSupervisor>());
        // Every family's five gates, recomputed in the background and on request.
        builder.Services.AddSingleton<ScorecardService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ScorecardService>());
        builder.Services.AddSingleton<BrokerListeners>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<BrokerListeners>());
        builder.Services.AddHostedService<AbortMonitor>();
        builder.Services.AddHostedService<ControlPlaneWarmup>();
        builder.Services.AddRouting();

        // Client connections receive in 32 KiB blocks (see ClientBufferPool), not Kestrel's 4 KiB ones.
        builder.Services.AddSingleton<IMemoryPoolFactory<byte>, ClientBufferPool.Factory>();

        ListenOptions? kafka = null;
        ListenOptions? admin = null;
        builder.Services.AddSingleton(new AdminAddress(() => admin?.EndPoint as IPEndPoint));
        builder.WebHost.UseSockets(sockets =>
        {
            // A request frame must fit the input pipe before it is consumed, so its bound follows the frame limit.
            sockets.MaxReadBufferSize = config.Limits.MaxFrameBytes + 64 * 1024;
            sockets.MaxWriteBufferSize = 1024 * 1024;
            // Connection code runs where the socket completes instead of hopping to the thread pool (see
            // SocketEventThreads); safe because nothing on the request path blocks.
            sockets.UnsafePreferInlineScheduling = true;
        });
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxConcurrentConnections = config.Limits.MaxConnections;
            kestrel.Listen(config.ListenerEndPoint, listen =>
            {
                listen.UseConnectionHandler<KafkaConnectionHandler>();
                kafka = listen;
            });
            kestrel.Listen(config.AdminEndPoint, listen =>
            {
                listen.Protocols = HttpProtocols.Http1;
                if (config.AdminTls is { } adminTls)
                {
                    listen.UseHttps(adminTls.Certificate);
                }
                admin = listen;
            });
        });
        var app = builder.Build();
        var state = app.Services.GetRequiredService<ProxyState>();
        state.BrokerPort = app.Services.GetRequiredService<BrokerListeners>().PortOfAsync;
        state.Stopping = app.Lifetime.ApplicationStopping;
        registry.AddBeforeCollectCallback(() => state.Metrics.PublishRoutes(
            state.Routes.Current.Families.Select(f => (f.Family, f.Route.Write, f.Route.Read)),
            [.. state.Clusters.Select(c => (c.Name, c.View is not null && c.LastError is null))]));
        AdminEndpoints.Map(app);
        // Kestrel configures endpoints when it starts; the option objects are captured by then.
        return new ProxyHost(app, () => kafka, () => admin);
    }

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_app.Services.GetService<FleetCoordinator>() is { } fleet)
        {
            // A fleet member reads the control log (and joins the fleet) before it serves any family.
            await fleet.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        if (_kafkaListener()?.EndPoint is IPEndPoint bound)
        {
            State.AdvertisedPort = bound.Port;
        }
        // The start may complete on an upstream control connection's read loop (upstream answers continue
        // synchronously there): leave it, so a caller that blocks right after starting cannot hold that loop up.
        await Task.Yield();
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await _app.StopAsync().ConfigureAwait(false);
        if (_app.Services.GetService<FleetCoordinator>() is { } fleet)
        {
            await fleet.DisposeAsync().ConfigureAwait(false); // leaves the group
        }
        await State.DisposeAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>Where the admin endpoint listens, once Kestrel has bound it (null before).</summary>
public sealed class AdminAddress(Func<IPEndPoint?> endPoint)
{
    public IPEndPoint? EndPoint => endPoint();
}
