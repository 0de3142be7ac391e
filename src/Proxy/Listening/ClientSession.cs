using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Listening;

/// <summary>
/// One client connection. The read loop takes whole frames and dispatches them in arrival order (dispatch is the
/// ordered part: routing and sending upstream); responses complete in any order but are written back in request
/// order by the write loop, as Kafka clients require. The bounded response queue caps requests in flight.
/// </summary>
public sealed partial class ClientSession
{
    private readonly ConnectionContext _connection;
    private readonly ProxyState _state;
    private readonly RequestDispatcher _dispatcher;
    private readonly ILogger _logger;
    private readonly Channel<PendingClientResponse> _responses;
    private string _closeReason = "client closed the connection";
    private string? _abortReason;
    // Idle tracking for the shared heartbeat: when a request last arrived or was answered, and how many are open.
    private long _lastActivity = Environment.TickCount64;
    private int _inFlight;

    public ClientSession(ConnectionContext connection, ProxyState state, ILogger logger, int? virtualNodeId = null)
    {
        VirtualNodeId = virtualNodeId;
        _connection = connection;
        _state = state;
        _logger = logger;
        Upstreams = new UpstreamPool(state.Config.Limits.UpstreamConnectTimeout, logger, state.Config.Clusters, connection.ConnectionClosed, state.Metrics);
        Principal = connection.Items.TryGetValue(Security.ClientTls.PrincipalItem, out var principal) && principal is string name ? name : AnonymousPrincipal;
        Activity = new ClientActivity(connection.RemoteEndPoint?.ToString() ?? "?");
        _dispatcher = new RequestDispatcher(state, this);
        _responses = Channel.CreateBounded<PendingClientResponse>(new BoundedChannelOptions(state.Config.Limits.MaxInFlightPerConnection)
        {
            SingleReader = true,
            SingleWriter = true,
            // The write loop wakes on the thread that queued the answer rather than on another worker.
            AllowSynchronousContinuations = true,
        });
    }

    public const string AnonymousPrincipal = "User:ANONYMOUS";

    public string Id => _connection.ConnectionId;

    /// <summary>Who the client is (<c>User:name</c>): set by SASL or a client certificate, anonymous otherwise.</summary>
    public string Principal { get; set; }

    /// <summary>Who is on this connection and where its requests went (the client inventory).</summary>
    public ClientActivity Activity { get; }

    /// <summary>This connection as the client inventory shows it; <paramref name="closedAt"/> once it has closed.</summary>
    public ClientSnapshot Snapshot(DateTimeOffset? closedAt = null)
    {
        var lastActiveAt = DateTimeOffset.UtcNow - TimeSpan.FromMilliseconds(Math.Max(0, Environment.TickCount64 - Volatile.Read(ref _lastActivity)));
        return new ClientSnapshot(Id, Principal, Activity.ClientId, Activity.SoftwareName, Activity.SoftwareVersion, Activity.Address,
            Activity.ConnectedAt, lastActiveAt, closedAt, Activity.Uses);
    }

    /// <summary>The client-visible broker this connection was opened to, or null for the bootstrap address.</summary>
    public int? VirtualNodeId { get; }
    public UpstreamPool Upstreams { get; }
    public CancellationToken Closed => _connection.ConnectionClosed;

    /// <summary>Closes the connection at once, with the reason recorded.</summary>
    public void Abort(string reason)
    {
        _abortReason ??= reason;
        _closeReason = reason;
        _connection.Abort(new ConnectionAbortedException(reason));
    }

    /// <summary>True when nothing is in flight and nothing arrived or left for <paramref name="idleTimeoutMs"/>.</summary>
    internal bool IsIdle(long now, long idleTimeoutMs) =>
        _abortReason is null && Volatile.Read(ref _inFlight) == 0 && now - Volatile.Read(ref _lastActivity) >= idleTimeoutMs;

    public async Task RunAsync()
    {
        var remote = _connection.RemoteEndPoint?.ToString() ?? "?";
        if (!_state.Sessions.TryOpen(this))
        {
            LogRefused(_logger, Id, remote, _state.Sessions.MaxConnections);
            _connection.Abort(new ConnectionAbortedException("connection limit reached"));
            return;
        }
        try
        {
            await ServeAsync(remote).ConfigureAwait(false);
        }
        finally
        {
            _state.Sessions.Close(this);
        }
    }

    private async Task ServeAsync(string remote)
    {
        LogOpened(_logger, Id, remote);
        _state.Metrics.ConnectionOpened();
        // On shutdown, stop taking requests; those in flight are still answered before the connection closes.
        using var stopping = _state.Stopping.Register(static s =>
        {
            var session = (ClientSession)s!;
            session._closeReason = "proxy shutting down";
            session._connection.Transport.Input.CancelPendingRead();
        }, this);
        var writeLoop = WriteLoopAsync();
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (KafkaProtocolException e)
        {
            _closeReason = $"protocol error: {e.Message}";
        }
        catch (ConnectionResetException)
        {
            _closeReason = "connection reset by client";
        }
        catch (ChannelClosedException)
        {
            // The write loop ended first (the client went away or an answer failed); it recorded why.
        }
        catch (OperationCanceledException)
        {
            _closeReason = _abortReason ?? "connection aborted";
        }
        catch (Exception e) when (e is UpstreamUnavailableException or CoordinatorUnavailableException)
        {
            // No broker-style error answer exists for this request; closing is what a failed broker looks like.
            _closeReason = $"upstream unavailable: {e.Message}";
        }
        catch (Exception e)
        {
            _closeReason = $"internal error: {e.GetType().Name}: {e.Message}";
            LogUnexpected(_logger, Id, e);
        }
        finally
        {
            _responses.Writer.TryComplete();
        }
        try
        {
            await writeLoop.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _closeReason += $"; writing responses failed: {e.Message}";
        }
        await Upstreams.DisposeAsync().ConfigureAwait(false);
        _state.Metrics.ConnectionClosed();
        LogClosed(_logger, Id, _closeReason);
    }

    private async Task ReadLoopAsync()
    {
        var input = _connection.Transport.Input;
        var maxFrame = _state.Config.Limits.MaxFrameBytes;
        while (true)
        {
            var result = await input.ReadAsync(_connection.ConnectionClosed).ConfigureAwait(false);
            var buffer = result.Buffer;
            try
            {
                // Until SASL completes only small handshake frames are accepted, so an unauthenticated peer cannot
                // make the proxy buffer large frames.
                while (FrameReader.TryReadFrame(ref buffer, _dispatcher.AwaitingAuthentication ? Math.Min(maxFrame, Security.SaslAuthenticator.MaxFrameBytes) : maxFrame, out var frameBytes))
                {
                    // After a SaslHandshake v0 the client sends a raw SASL token, which has no request header.
                    var rawSaslToken = _dispatcher.ExpectsRawSaslToken;
                    if (frameBytes.Length < 8 && !rawSaslToken)
                    {
                        throw new KafkaProtocolException($"Request frame of {frameBytes.Length} bytes is shorter than a request header.");
                    }
                    Volatile.Write(ref _lastActivity, Environment.TickCount64);
                    var frame = PooledFrame.CopyOf(frameBytes);
                    var started = Stopwatch.GetTimestamp();
                    var apiKey = ApiKey.SaslAuthenticate;
                    if (!rawSaslToken)
                    {
                        RequestHeader.TryPeek(frame.Span, out apiKey, out _, out _);
                    }
                    _state.Metrics.RequestReceived(frame.Length);
                    ValueTask<PooledFrame>? response;
                    try
                    {
                        response = await _dispatcher.DispatchAsync(frame).ConfigureAwait(false);
                    }
                    catch
                    {
                        _state.Metrics.RequestDropped();
                        throw;
                    }
                    if (response is null)
                    {
                        _state.Metrics.RequestDropped();
                        continue;
                    }
                    Interlocked.Increment(ref _inFlight);
                    var pendingResponse = new PendingClientResponse(apiKey, started, response.Value);
                    try
                    {
                        await _responses.Writer.WriteAsync(pendingResponse, _connection.ConnectionClosed).ConfigureAwait(false);
                    }
                    catch
                    {
                        Abandon(pendingResponse);
                        throw;
                    }
                }
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
            }
            if (result.IsCompleted || result.IsCanceled)
            {
                return;
            }
        }
    }

    private async Task WriteLoopAsync()
    {
        try
        {
            await WriteResponsesAsync().ConfigureAwait(false);
        }
        finally
        {
            // Whatever ended the loop, answers still queued are released and no longer counted in flight.
            DrainAbandoned();
        }
    }

    private async Task WriteResponsesAsync()
    {
        var output = _connection.Transport.Output;
        await foreach (var pending in _responses.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            PooledFrame frame;
            try
            {
                frame = await pending.Response.ConfigureAwait(false);
                _state.Metrics.RequestAnswered(pending.ApiKey, Stopwatch.GetElapsedTime(pending.Started), frame.Length);
            }
            catch (OperationCanceledException) when (_connection.ConnectionClosed.IsCancellationRequested)
            {
                // The client went away while this request was in flight: nobody is left to answer.
                _closeReason = _abortReason ?? $"connection closed with requests in flight ({pending.ApiKey} first)";
                _state.Metrics.RequestDropped();
                return;
            }
            catch (Exception e)
            {
                // No answer can be built for this request; closing is what a broker does and clients retry.
                _closeReason = $"could not answer a request: {e.Message}";
                if (e is not UpstreamUnavailableException and not KafkaProtocolException)
                {
                    LogUnexpected(_logger, Id, e);
                }
                _state.Metrics.RequestDropped();
                _connection.Abort(new ConnectionAbortedException(_closeReason));
                return;
            }
            using (frame)
            {
                var span = output.GetSpan(frame.Length + 4);
                BinaryPrimitives.WriteInt32BigEndian(span, frame.Length);
                frame.Span.CopyTo(span[4..]);
                output.Advance(frame.Length + 4);
            }
            Volatile.Write(ref _lastActivity, Environment.TickCount64);
            Interlocked.Decrement(ref _inFlight);
            // Batch writes: flush only when no further response is ready.
            if (!_responses.Reader.TryPeek(out var next) || !next.Response.IsCompleted)
            {
                var flush = await output.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    return;
                }
            }
        }
        await output.FlushAsync().ConfigureAwait(false);
    }

    private void DrainAbandoned()
    {
        _responses.Writer.TryComplete();
        while (_responses.Reader.TryRead(out var abandoned))
        {
            Abandon(abandoned);
        }
    }

    private void Abandon(PendingClientResponse abandoned)
    {
        _state.Metrics.RequestDropped();
        _ = abandoned.Response.AsTask().ContinueWith(static t =>
        {
            if (t.IsCompletedSuccessfully)
            {
                t.Result.Dispose();
            }
            else
            {
                _ = t.Exception; // observed: the client is gone
            }
        }, TaskScheduler.Default);
    }

    /// <summary>
    /// A queued answer. <see cref="Response"/> may be pooled: it is awaited (or turned into a task) exactly once, by
    /// the write loop or when abandoned; before that, only its completion is looked at.
    /// </summary>
    private readonly record struct PendingClientResponse(ApiKey ApiKey, long Started, ValueTask<PooledFrame> Response);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Debug, Message = "Client connection {ConnectionId} from {Remote} opened")]
    private static partial void LogOpened(ILogger logger, string connectionId, string remote);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Client connection {ConnectionId} closed: {Reason}")]
    private static partial void LogClosed(ILogger logger, string connectionId, string reason);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Client connection {ConnectionId} from {Remote} refused: {MaxConnections} connections are open (Limits:MaxConnections)")]
    private static partial void LogRefused(ILogger logger, string connectionId, string remote, int maxConnections);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Client connection {ConnectionId}: unexpected failure")]
    private static partial void LogUnexpected(ILogger logger, string connectionId, Exception exception);
}
