using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Listening;

/// <summary>
/// One listening port per client-visible broker, bound when the broker is first handed to a client. Clients
/// (librdkafka in particular) identify brokers by address as well as by id, so each virtual broker needs its own
/// port. Ports come from <c>Listener:BrokerPortStart</c> upwards in order of first use (ascending node id at
/// start-up), or from the kernel when it is 0. Connections on any port are handled alike: requests are routed by
/// what they name, not by the port they arrive on.
/// </summary>
public sealed partial class BrokerListeners(ProxyState state, IConnectionListenerFactory listenerFactory, ILogger<BrokerListeners> logger)
    : IHostedService, IAsyncDisposable
{
    private readonly ConcurrentDictionary<int, Lazy<Task<int>>> _ports = new();
    private readonly ConcurrentDictionary<string, ClientSession> _sessions = new();
    private readonly List<IConnectionListener> _listeners = [];
    private readonly CancellationTokenSource _stopping = new();
    private int _nextSlot;

    /// <summary>The port clients reach virtual broker <paramref name="nodeId"/> on, binding it on first use.</summary>
    public ValueTask<int> PortOfAsync(int nodeId)
    {
        if (nodeId == state.BootstrapNodeId)
        {
            return ValueTask.FromResult(state.AdvertisedPort);
        }
        var port = _ports.GetOrAdd(nodeId, id => new Lazy<Task<int>>(() => BindAsync(id)));
        return port.Value.IsCompletedSuccessfully ? ValueTask.FromResult(port.Value.Result) : new ValueTask<int>(port.Value);
    }

    private async Task<int> BindAsync(int nodeId)
    {
        var config = state.Config;
        var slot = Interlocked.Increment(ref _nextSlot) - 1;
        if (slot >= config.Listener.MaxBrokers)
        {
            throw new InvalidOperationException($"More than {config.Listener.MaxBrokers} brokers to advertise; raise Switchback:Listener:MaxBrokers.");
        }
        var port = config.Listener.BrokerPortStart == 0 ? 0 : config.Listener.BrokerPortStart + slot;
        var listener = await listenerFactory.BindAsync(new IPEndPoint(config.ListenerEndPoint.Address, port), _stopping.Token).ConfigureAwait(false);
        lock (_listeners)
        {
            _listeners.Add(listener);
        }
        var bound = ((IPEndPoint)listener.EndPoint).Port;
        LogBound(logger, nodeId, bound);
        _ = AcceptLoopAsync(listener, nodeId);
        return bound;
    }

    private async Task AcceptLoopAsync(IConnectionListener listener, int nodeId)
    {
        while (!_stopping.IsCancellationRequested)
        {
            ConnectionContext? connection;
            try
            {
                connection = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            if (connection is null)
            {
                return;
            }
            _ = ServeAsync(connection, nodeId);
        }
    }

    private async Task ServeAsync(ConnectionContext connection, int nodeId)
    {
        IAsyncDisposable? tls = null;
        try
        {
            tls = await Security.ClientTls.SecureAsync(connection, state.Config.ListenerSecurity.Tls, logger).ConfigureAwait(false);
            if (tls is null)
            {
                return;
            }
            var session = new ClientSession(connection, state, logger, nodeId);
            _sessions[connection.ConnectionId] = session;
            await session.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            _sessions.TryRemove(connection.ConnectionId, out _);
            if (tls is not null)
            {
                await tls.DisposeAsync().ConfigureAwait(false);
            }
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }
        await _stopping.CancelAsync().ConfigureAwait(false);
        IConnectionListener[] listeners;
        lock (_listeners)
        {
            listeners = [.. _listeners];
        }
        foreach (var listener in listeners)
        {
            await listener.UnbindAsync(cancellationToken).ConfigureAwait(false);
        }
        foreach (var session in _sessions.Values)
        {
            session.Abort("proxy shutting down");
        }
    }

    public async ValueTask DisposeAsync()
    {
        IConnectionListener[] listeners;
        lock (_listeners)
        {
            listeners = [.. _listeners];
            _listeners.Clear();
        }
        foreach (var listener in listeners)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }
        _stopping.Dispose();
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "Broker {NodeId} advertised on port {Port}")]
    private static partial void LogBound(ILogger logger, int nodeId, int port);
}
