using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Proxy.Security;

namespace Switchback.Proxy.Upstream;

/// <summary>
/// A pipelined connection to one upstream broker. Requests are written in call order with correlation ids the
/// proxy assigns; Kafka answers in order on a connection, so responses are matched to a FIFO of pending requests.
/// One logical writer at a time (the owning client session dispatches sequentially). Waits end without a timer or a
/// cancellation registration of their own: the connection keeps each wait's deadline and one timer, armed for the
/// earliest, fails the overdue ones; its owner's close token cancels them all.
/// </summary>
public sealed partial class UpstreamConnection : IAsyncDisposable
{
    private const int MaxResponseFrameBytes = 256 * 1024 * 1024;
    // Pending responses kept for reuse; beyond this (a burst of requests in flight) they are left to the GC.
    private const int MaxFreePending = 32;

    private readonly Socket _socket;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly Queue<PendingResponse> _pending = new();
    private readonly Stack<PendingResponse> _freePending = new();
    private readonly Lock _pendingLock = new();
    private readonly ILogger _logger;
    private readonly Task _readLoop;
    private readonly Timer _deadlines;
    private readonly CancellationTokenRegistration _ownerClosedRegistration;
    private int _nextCorrelationId;
    private Exception? _failure;
    // When the deadline timer fires next (Environment.TickCount64), long.MaxValue when it is not armed; under _pendingLock.
    private long _deadlinesDue = long.MaxValue;

    private UpstreamConnection(Socket socket, Stream stream, string description, ILogger logger, CancellationToken ownerClosed)
    {
        _socket = socket;
        Description = description;
        _logger = logger;
        OwnerClosed = ownerClosed;
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024));
        _writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024));
        _deadlines = new Timer(static s => ((UpstreamConnection)s!).ExpireOverdue(), this, Timeout.Infinite, Timeout.Infinite);
        _ownerClosedRegistration = ownerClosed.UnsafeRegister(static s => ((UpstreamConnection)s!).CancelWaits(), this);
        _readLoop = Task.Run(ReadLoopAsync);
    }

    public string Description { get; }

    /// <summary>Where the time from sending a request to its answer is observed, by the answer's API; null: not measured.</summary>
    public Metrics.UpstreamLatency? AnswerLatency { get; set; }

    /// <summary>Cancelled when the owner (the client session) closes: every wait on this connection then ends.</summary>
    public CancellationToken OwnerClosed { get; }

    /// <summary>False once the connection failed or was closed; the pool then opens a new one.</summary>
    public bool IsHealthy => Volatile.Read(ref _failure) is null;

    /// <summary>
    /// Opens a connection. <paramref name="ownerClosed"/>, when given, ends every wait on it with an
    /// <see cref="OperationCanceledException"/> once cancelled (the session's close token, which its waits pass).
    /// </summary>
    public static async ValueTask<UpstreamConnection> ConnectAsync(DnsEndPoint endPoint, string description, TimeSpan timeout, ILogger logger, CancellationToken cancellationToken,
        UpstreamSecurity? security = null, CancellationToken ownerClosed = default)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(endPoint.Host, endPoint.Port, timeoutSource.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            throw new UpstreamUnavailableException($"Cannot connect to {description} ({endPoint.Host}:{endPoint.Port}): {e.Message}", e);
        }
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        if (security is { Tls: not null } or { Sasl: not null })
        {
            // TLS and SASL complete before the connection carries requests, within the same connect timeout.
            try
            {
                stream = await UpstreamHandshake.SecureAsync(stream, endPoint, security, description, timeoutSource.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException e)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                throw new UpstreamUnavailableException($"TLS/SASL handshake with {description} timed out.", e);
            }
        }
        return new UpstreamConnection(socket, stream, description, logger, ownerClosed);
    }

    /// <summary>
    /// Sends one request frame (header and body, without the size prefix; its correlation id is replaced on the
    /// wire). Returns the pending response, or null when the request expects none (Produce with acks=0).
    /// </summary>
    public async ValueTask<PendingResponse?> SendAsync(ReadOnlyMemory<byte> frame, bool expectResponse, CancellationToken cancellationToken = default)
    {
        PendingResponse? pending = null;
        lock (_pendingLock)
        {
            if (_failure is { } failure)
            {
                throw new UpstreamUnavailableException($"Connection to {Description} failed: {failure.Message}", failure);
            }
            var correlationId = _nextCorrelationId++;
            var span = _writer.GetSpan(frame.Length + 4);
            BinaryPrimitives.WriteInt32BigEndian(span, frame.Length);
            frame.Span.CopyTo(span[4..]);
            BinaryPrimitives.WriteInt32BigEndian(span[8..], correlationId);
            _writer.Advance(frame.Length + 4);
            if (expectResponse)
            {
                pending = _freePending.TryPop(out var free) ? free : new PendingResponse(this);
                pending.Start(correlationId);
                if (AnswerLatency is not null)
                {
                    pending.SentAt = System.Diagnostics.Stopwatch.GetTimestamp();
                    pending.ApiKey = BinaryPrimitives.ReadInt16BigEndian(frame.Span);
                }
                _pending.Enqueue(pending);
            }
        }
        FlushResult result;
        try
        {
            result = await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            Fail(e);
            throw new UpstreamUnavailableException($"Write to {Description} failed: {e.Message}", e);
        }
        if (result.IsCompleted)
        {
            Fail(new IOException("upstream closed"));
            throw new UpstreamUnavailableException($"Connection to {Description} closed.");
        }
        return pending;
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                while (FrameReader.TryReadFrame(ref buffer, MaxResponseFrameBytes, out var frameBytes))
                {
                    var frame = PooledFrame.CopyOf(frameBytes);
                    var correlationId = BinaryPrimitives.ReadInt32BigEndian(frame.Span);
                    PendingResponse? pending;
                    lock (_pendingLock)
                    {
                        _pending.TryDequeue(out pending);
                    }
                    if (pending is null || pending.CorrelationId != correlationId)
                    {
                        frame.Dispose();
                        throw new KafkaProtocolException(
                            $"Response correlation id {correlationId} does not match the oldest request ({pending?.CorrelationId.ToString() ?? "none pending"}).");
                    }
                    AnswerLatency?.Observe(pending.ApiKey, pending.SentAt);
                    pending.Complete(frame);
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    throw new IOException("upstream closed the connection");
                }
            }
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    /// <summary>A pending response both its waiter and this connection are done with (see <see cref="PendingResponse.Release"/>).</summary>
    internal void Return(PendingResponse pending)
    {
        lock (_pendingLock)
        {
            if (_freePending.Count < MaxFreePending)
            {
                _freePending.Push(pending);
            }
        }
    }

    /// <summary>Records when <paramref name="pending"/>'s waiter gives up, and arms the timer if that is the earliest deadline.</summary>
    internal void WatchDeadline(PendingResponse pending, TimeSpan timeout)
    {
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return;
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        var now = Environment.TickCount64;
        var deadline = now + (long)Math.Ceiling(timeout.TotalMilliseconds);
        lock (_pendingLock)
        {
            pending.Deadline = deadline;
            // Waits mostly share one timeout, so a later deadline than the armed one (the usual case) costs nothing.
            if (deadline < _deadlinesDue && _failure is null)
            {
                ArmDeadlines(deadline, now);
            }
        }
    }

    private void ArmDeadlines(long due, long now)
    {
        _deadlinesDue = due;
        // A due time beyond the timer's range fires early; the sweep then re-arms for what is left.
        _deadlines.Change(Math.Clamp(due - now, 0, 0xfffffffe), Timeout.Infinite);
    }

    /// <summary>
    /// Fails the waits whose deadline has passed and re-arms the timer for the earliest one left. A timed-out
    /// request stays in the FIFO: its answer, if it comes, is matched and discarded, so later answers still match.
    /// </summary>
    private void ExpireOverdue()
    {
        List<PendingResponse>? overdue = null;
        lock (_pendingLock)
        {
            _deadlinesDue = long.MaxValue;
            if (_failure is not null)
            {
                return;
            }
            var now = Environment.TickCount64;
            var next = long.MaxValue;
            foreach (var pending in _pending)
            {
                if (pending.IsDecided)
                {
                    continue;
                }
                if (pending.Deadline <= now)
                {
                    // Decided here, under the lock, while it is in the FIFO: the answer can no longer reach the
                    // waiter, so the object cannot be released and reused before Expire below.
                    if (pending.TryDecide())
                    {
                        (overdue ??= []).Add(pending);
                    }
                }
                else
                {
                    next = Math.Min(next, pending.Deadline);
                }
            }
            if (next != long.MaxValue)
            {
                ArmDeadlines(next, now);
            }
        }
        // Outside the lock: the waiters' continuations run here and may send on this connection.
        if (overdue is not null)
        {
            foreach (var pending in overdue)
            {
                pending.Expire();
            }
        }
    }

    /// <summary>The owner closed: every wait ends (answers still arriving are matched and discarded).</summary>
    private void CancelWaits()
    {
        List<PendingResponse> cancelled = [];
        lock (_pendingLock)
        {
            // Decided under the lock, as in ExpireOverdue: each stays this request's until its wait has ended.
            foreach (var pending in _pending)
            {
                if (pending.TryDecide())
                {
                    cancelled.Add(pending);
                }
            }
        }
        foreach (var pending in cancelled)
        {
            pending.EndCancelled(OwnerClosed);
        }
    }

    private void Fail(Exception reason)
    {
        PendingResponse[] failed;
        lock (_pendingLock)
        {
            if (_failure is not null)
            {
                return;
            }
            _failure = reason;
            failed = _pending.ToArray();
            _pending.Clear();
        }
        if (reason is not ObjectDisposedException)
        {
            LogClosed(_logger, Description, reason.Message);
        }
        var error = new UpstreamUnavailableException($"Connection to {Description} lost: {reason.Message}", reason);
        foreach (var pending in failed)
        {
            pending.Fail(error);
        }
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception)
        {
            // Already closed.
        }
    }

    public async ValueTask DisposeAsync()
    {
        Fail(new ObjectDisposedException(Description));
        _ownerClosedRegistration.Unregister();
        await _deadlines.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The read loop records its own failure.
        }
        await _reader.CompleteAsync().ConfigureAwait(false);
        await _writer.CompleteAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Upstream connection to {Upstream} closed: {Reason}")]
    private static partial void LogClosed(ILogger logger, string upstream, string reason);
}

