using System.Threading.Tasks.Sources;

namespace Switchback.Proxy.Upstream;

/// <summary>
/// A request sent upstream whose response has not arrived yet. It is its own awaitable (one waiter, one result):
/// the answer, the connection's failure, the wait's deadline or a cancellation decides it, whichever comes first.
/// Deadlines are kept by the connection (one timer for all its requests), so waiting allocates nothing.
/// </summary>
public sealed class PendingResponse : IValueTaskSource<PooledFrame>
{
    // Continuations run synchronously on the thread that decides the wait (usually the upstream read loop): the
    // client's answer is written right there, without a hop to another worker (see SocketEventThreads).
    private ManualResetValueTaskSourceCore<PooledFrame> _core;
    private readonly UpstreamConnection _connection;
    private int _decided;
    private int _settled;
    private TaskCompletionSource? _settledSource;
    private CancellationTokenRegistration _cancellation;
    private TimeSpan _timeout;

    internal PendingResponse(UpstreamConnection connection, int correlationId)
    {
        _connection = connection;
        CorrelationId = correlationId;
    }

    public int CorrelationId { get; }

    /// <summary>When the waiter gives up (<see cref="Environment.TickCount64"/>); read and written under the connection's lock.</summary>
    internal long Deadline { get; set; } = long.MaxValue;

    /// <summary>True once the wait has its outcome (answer, failure, timeout or cancellation).</summary>
    internal bool IsDecided => Volatile.Read(ref _decided) != 0;

    /// <summary>
    /// Completes when the broker has answered or the connection has failed, whoever waits or gives up (a timed-out
    /// or cancelled wait does not settle it: the request may still be on its way). Allocated only when asked for.
    /// </summary>
    public Task Settled
    {
        get
        {
            if (Volatile.Read(ref _settled) != 0)
            {
                return Task.CompletedTask;
            }
            var source = Volatile.Read(ref _settledSource);
            if (source is null)
            {
                source = new TaskCompletionSource();
                source = Interlocked.CompareExchange(ref _settledSource, source, null) ?? source;
            }
            // Settled meanwhile, before it could see the source: complete it here.
            if (Volatile.Read(ref _settled) != 0)
            {
                source.TrySetResult();
            }
            return source.Task;
        }
    }

    /// <summary>
    /// Waits for the response, at most <paramref name="timeout"/> from now; after a timeout or a cancellation the
    /// response, if it ever arrives, is discarded. A timeout throws <see cref="UpstreamUnavailableException"/>, a
    /// cancellation <see cref="OperationCanceledException"/>. Await the result once. The connection's owner token
    /// (the client session's close) ends the wait without a registration per request; any other token registers.
    /// </summary>
    public ValueTask<PooledFrame> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!IsDecided)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                Cancel(cancellationToken);
            }
            else if (_connection.OwnerClosed.IsCancellationRequested)
            {
                Cancel(_connection.OwnerClosed);
            }
            else
            {
                _timeout = timeout;
                _connection.WatchDeadline(this, timeout);
                if (cancellationToken.CanBeCanceled && cancellationToken != _connection.OwnerClosed)
                {
                    RegisterCancellation(cancellationToken);
                }
            }
        }
        return new ValueTask<PooledFrame>(this, _core.Version);
    }

    // Removed by the waiter once it has its result (GetResult follows WaitAsync on the waiter's side, so the
    // registration is never read while being stored).
    private void RegisterCancellation(CancellationToken cancellationToken) =>
        _cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((PendingResponse)state!).Cancel(token), this);

    /// <summary>The broker answered; the frame goes to the waiter, or back to the pool if the wait was given up.</summary>
    internal void Complete(PooledFrame frame)
    {
        MarkSettled();
        if (TryDecide())
        {
            _core.SetResult(frame);
        }
        else
        {
            frame.Dispose();
        }
    }

    /// <summary>The connection failed before the broker answered.</summary>
    internal void Fail(Exception error)
    {
        MarkSettled();
        if (TryDecide())
        {
            _core.SetException(error);
        }
    }

    /// <summary>The waiter's deadline passed.</summary>
    internal void Expire()
    {
        if (TryDecide())
        {
            _core.SetException(new UpstreamUnavailableException($"No response within {_timeout.TotalMilliseconds:0} ms."));
        }
    }

    internal void Cancel(CancellationToken cancellationToken)
    {
        if (TryDecide())
        {
            _core.SetException(new OperationCanceledException(cancellationToken));
        }
    }

    private bool TryDecide() => Interlocked.Exchange(ref _decided, 1) == 0;

    private void MarkSettled()
    {
        Interlocked.Exchange(ref _settled, 1);
        Volatile.Read(ref _settledSource)?.TrySetResult();
    }

    PooledFrame IValueTaskSource<PooledFrame>.GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _cancellation.Unregister();
        }
    }

    ValueTaskSourceStatus IValueTaskSource<PooledFrame>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<PooledFrame>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
