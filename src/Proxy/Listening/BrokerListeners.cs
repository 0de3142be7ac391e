using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Listening;

/// <summary>
/// One listening port per client-visible broker. Clients (librdkafka in particular) identify brokers by address as
/// well as by id, so each virtual broker needs its own port. Ports come from <c>Listener:BrokerPortStart</c> upwards
/// in order of first binding (ascending node id at start-up), or from the kernel when it is 0. Connections on any
/// port are handled alike: requests are routed by what they name, not by the port they arrive on.
/// </summary>
/// <remarks>
/// The brokers known at start-up are bound before the proxy starts serving, and a port that cannot be bound stops
/// start-up (<see cref="BrokerPortException"/>). A broker found later is bound when a refresh or an answer first
/// needs it; when that fails the broker has no port: it is left out of every answer (<see cref="PortOfAsync"/> gives
/// null), readiness lists it, the failure is logged once, and binding is tried again after each periodic refresh.
/// </remarks>
public sealed partial class BrokerListeners(ProxyState state, IConnectionListenerFactory listenerFactory, ILogger<BrokerListeners> logger)
    : IHostedService, IAsyncDisposable
{
    private readonly ConcurrentDictionary<int, BrokerPort> _ports = new();
    private readonly ConcurrentDictionary<string, ClientSession> _sessions = new();
    private readonly List<IConnectionListener> _listeners = [];
    private readonly CancellationTokenSource _stopping = new();
    private int _nextSlot;
    // Until start-up binding is done a failure is the start-up's error, not a warning of a running proxy.
    private volatile bool _started;

    /// <summary>
    /// The port clients reach virtual broker <paramref name="nodeId"/> on, binding it on first use; null when the
    /// broker has no port (its port could not be bound), so it must be left out of the answer.
    /// </summary>
    public ValueTask<int?> PortOfAsync(int nodeId)
    {
        if (nodeId == state.BootstrapNodeId)
        {
            return ValueTask.FromResult<int?>(state.AdvertisedPort);
        }
        var binding = _ports.GetOrAdd(nodeId, static id => new BrokerPort(id)).Current(this);
        return binding.IsCompletedSuccessfully ? ValueTask.FromResult(binding.Result.Port) : AwaitPortAsync(binding);
    }

    private static async ValueTask<int?> AwaitPortAsync(Task<Binding> binding) => (await binding.ConfigureAwait(false)).Port;

    /// <summary>
    /// Binds the port of every broker in the clusters' first views, in ascending node id order, before the proxy
    /// reports ready. Throws <see cref="BrokerPortException"/>, naming the port and the setting to change, when one
    /// cannot be bound.
    /// </summary>
    public async Task BindStartupBrokersAsync()
    {
        foreach (var nodeId in KnownBrokers().Order())
        {
            if (nodeId == state.BootstrapNodeId)
            {
                continue;
            }
            var binding = await _ports.GetOrAdd(nodeId, static id => new BrokerPort(id)).Current(this).ConfigureAwait(false);
            if (binding.Problem is { } problem)
            {
                throw new BrokerPortException(problem);
            }
        }
        _started = true;
    }

    /// <summary>
    /// Binds the ports of brokers the latest views show and no answer has needed yet, and tries again those that
    /// could not be bound (the port may have been freed). Called after each periodic refresh.
    /// </summary>
    public async Task BindDiscoveredBrokersAsync()
    {
        foreach (var nodeId in KnownBrokers().Order())
        {
            if (nodeId == state.BootstrapNodeId)
            {
                continue;
            }
            await _ports.GetOrAdd(nodeId, static id => new BrokerPort(id)).RetryIfUnbound(this).ConfigureAwait(false);
        }
    }

    /// <summary>Why each broker of the current views that has no port is left out (empty when every one has a port).</summary>
    public IReadOnlyList<string> UnboundBrokers()
    {
        List<string>? problems = null;
        var known = KnownBrokers();
        foreach (var port in _ports.Values.OrderBy(p => p.NodeId))
        {
            if (port.Problem is { } problem && known.Contains(port.NodeId))
            {
                (problems ??= []).Add(problem);
            }
        }
        return problems ?? (IReadOnlyList<string>)[];
    }

    private HashSet<int> KnownBrokers()
    {
        var known = new HashSet<int>();
        foreach (var cluster in state.ClustersByOrdinal)
        {
            if (cluster.View is { } view)
            {
                foreach (var broker in view.Brokers)
                {
                    known.Add(state.NodeIds.ToVirtual(view.Ordinal, broker.NodeId));
                }
            }
        }
        return known;
    }

    private async Task<Binding> BindAsync(BrokerPort broker)
    {
        var listener = state.Config.Listener;
        if (broker.Slot < 0)
        {
            var slot = Interlocked.Increment(ref _nextSlot) - 1;
            if (slot >= listener.MaxBrokers)
            {
                return Unbound(broker, TooManyBrokers(broker.NodeId), retriable: false);
            }
            broker.Slot = slot;
        }
        var port = listener.BrokerPortStart == 0 ? 0 : listener.BrokerPortStart + broker.Slot;
        var address = state.Config.ListenerEndPoint.Address;
        IConnectionListener bound;
        try
        {
            bound = await listenerFactory.BindAsync(new IPEndPoint(address, port), _stopping.Token).ConfigureAwait(false);
        }
        catch (AddressInUseException)
        {
            return Unbound(broker, InUse(broker.NodeId, port), retriable: true);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Unbound(broker, CannotBind(broker.NodeId, port, address, e.Message), retriable: true);
        }
        lock (_listeners)
        {
            _listeners.Add(bound);
        }
        var boundPort = ((IPEndPoint)bound.EndPoint).Port;
        if (broker.Problem is not null)
        {
            LogBoundAtLast(logger, broker.NodeId, boundPort);
            broker.Problem = null;
        }
        else
        {
            LogBound(logger, broker.NodeId, boundPort);
        }
        _ = AcceptLoopAsync(bound, broker.NodeId);
        return new Binding(boundPort, null, Retriable: false);
    }

    private Binding Unbound(BrokerPort broker, string problem, bool retriable)
    {
        // Once per broker, not per answer that leaves it out nor per retry.
        if (_started && broker.Problem is null)
        {
            LogUnbound(logger, broker.NodeId, problem);
        }
        broker.Problem = problem;
        return new Binding(null, problem, retriable);
    }

    private string Describe(int nodeId)
    {
        var cluster = state.NodeIds.TryFromVirtual(nodeId, out var ordinal, out _) && ordinal < state.ClustersByOrdinal.Count
            ? state.ClustersByOrdinal[ordinal].Name
            : "?";
        return $"virtual broker {nodeId} of cluster '{cluster}'";
    }

    private string InUse(int nodeId, int port)
    {
        var start = state.Config.Listener.BrokerPortStart;
        return state.Config.Listener.BrokerPortStartDefaulted
            ? $"Port {port} ({Describe(nodeId)}, from Switchback:Listener:BrokerPortStart={start}, which is not set and follows the Switchback:Listener:Bind port) is already in use; set Switchback:Listener:BrokerPortStart (or change Switchback:Listener:Bind) or free the port."
            : $"Port {port} ({Describe(nodeId)}, from Switchback:Listener:BrokerPortStart={start}) is already in use; choose another Switchback:Listener:BrokerPortStart or free the port.";
    }

    private string CannotBind(int nodeId, int port, IPAddress address, string reason) =>
        port == 0
            ? $"No port for {Describe(nodeId)} (kernel-chosen, Switchback:Listener:BrokerPortStart=0) could be bound on {address}: {reason}; check Switchback:Listener:Bind."
            : $"Port {port} ({Describe(nodeId)}, from Switchback:Listener:BrokerPortStart={state.Config.Listener.BrokerPortStart}) cannot be bound on {address}: {reason}; check Switchback:Listener:Bind and Switchback:Listener:BrokerPortStart.";

    private string TooManyBrokers(int nodeId)
    {
        var listener = state.Config.Listener;
        var range = listener.BrokerPortStart == 0 ? "" : $" (ports {listener.BrokerPortStart}-{listener.BrokerPortStart + listener.MaxBrokers - 1})";
        return $"No port for {Describe(nodeId)}: every one of the {listener.MaxBrokers} ports of Switchback:Listener:MaxBrokers{range} is taken by another broker; raise Switchback:Listener:MaxBrokers.";
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

    /// <summary>The outcome of one attempt to bind a broker's port: the port, or why there is none.</summary>
    private sealed record Binding(int? Port, string? Problem, bool Retriable);

    /// <summary>One virtual broker's port: its slot in the range, kept across attempts, and the latest attempt.</summary>
    private sealed class BrokerPort(int nodeId)
    {
        private readonly Lock _lock = new();
        private Task<Binding>? _current;
        private string? _problem;

        public int NodeId => nodeId;

        /// <summary>Its place in the port range, assigned at the first attempt; -1 before, or when none was left.</summary>
        public int Slot { get; set; } = -1;

        /// <summary>Why the broker has no port (kept while a retry runs); null when bound or not yet tried.</summary>
        public string? Problem
        {
            get => Volatile.Read(ref _problem);
            set => Volatile.Write(ref _problem, value);
        }

        /// <summary>The latest attempt, making the first one if there is none: answers never bind a port twice.</summary>
        public Task<Binding> Current(BrokerListeners owner)
        {
            if (Volatile.Read(ref _current) is { } current)
            {
                return current;
            }
            lock (_lock)
            {
                return _current ??= owner.BindAsync(this);
            }
        }

        /// <summary>A fresh attempt when the latest one failed in a way another try may cure.</summary>
        public Task<Binding> RetryIfUnbound(BrokerListeners owner)
        {
            lock (_lock)
            {
                if (_current is { IsCompletedSuccessfully: true, Result: { Port: null, Retriable: true } })
                {
                    _current = owner.BindAsync(this);
                }
                return _current ??= owner.BindAsync(this);
            }
        }
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "Broker {NodeId} advertised on port {Port}")]
    private static partial void LogBound(ILogger logger, int nodeId, int port);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning,
        Message = "Broker {NodeId} has no port and is left out of Metadata, DescribeCluster and FindCoordinator answers until one is bound (tried again after each metadata refresh): {Problem}")]
    private static partial void LogUnbound(ILogger logger, int nodeId, string problem);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "Broker {NodeId} advertised on port {Port}, which could not be bound before")]
    private static partial void LogBoundAtLast(ILogger logger, int nodeId, int port);
}
