using System.Threading.Tasks.Sources;

namespace Switchback.Proxy.Upstream;

/// <summary>
/// A request sent upstream whose response has not arrived yet. It is its own awaitable (one waiter, one result):
/// the answer, the connection's failure, the wait's deadline or a cancellation decides it, whichever comes first.
/// Deadlines are kept by the connection (one timer for all its requests), so waiting allocates nothing.
/// </summary>
/// <remarks>
/// A waiter that calls <see cref="Release"/> once it has the wait's result lets its connection reuse the object for
/// a later request. Two holds keep it out of the connection's pool: the waiter's (until <see cref="Release"/>) and the
/// connection's (until the broker's answer is matched in order, or the connection fails), so a timed-out request's
/// late answer still finds its own entry. Whoever lets go last returns it; nothing touches it after that. A waiter
/// that never calls <see cref="Release"/> leaves it to the GC, as before.
/// </remarks>
public sealed class PendingResponse : IValueTaskSource<PooledFrame>
{
    // Continuations run synchronously on the thread that decides the wait (usually the upstream read loop): the
    // client's answer is written right there, without a hop to another worker (see SocketEventThreads).
    private ManualResetValueTaskSourceCore<PooledFrame> _core;
    private readonly UpstreamConnection _connection;
    private int _decided;
    private int _settled;
    private int _holds;
    private int _released;
    private bool _waiting; // WaitAsync was called; the waiter's side only
    private bool _taken; // and its result taken
    private TaskCompletionSource? _settledSource;
    private CancellationTokenRegistration _cancellation;
    private TimeSpan _timeout;

    internal PendingResponse(UpstreamConnection connection) => _connection = connection;

    public int CorrelationId { get; private set; }

    /// <summary>When the waiter gives up (<see cref="Environment.TickCount64"/>); read and written under the connection's lock.</summary>
    internal long Deadline { get; set; } = long.MaxValue;

    /// <summary>True once the wait has its outcome (answer, failure, timeout or cancellation).</summary>
    internal bool IsDecided => Volatile.Read(ref _decided) != 0;

    /// <summary>When the request was written (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>), when its latency is measured.</summary>
    internal long SentAt { get; set; }

    /// <summary>The request's API key, when its latency is measured.</summary>
    internal short ApiKey { get; set; }

    /// <summary>Readies a new or returned object for the request sent under <paramref name="correlationId"/> (under the connection's lock).</summary>
    internal void Start(int correlationId)
    {
        CorrelationId = correlationId;
        Deadline = long.MaxValue;
        _timeout = default;
        _cancellation = default;
        _settledSource = null;
        _released = 0;
        _waiting = false;
        _taken = false;
        _settled = 0;
        _decided = 0;
        _holds = 2; // the waiter's and the connection's
    }

    /// <summary>
    /// Completes when the broker has answered or the connection has failed, whoever waits or gives up (a timed-out
    /// or cancelled wait does not settle it: the request may still be on its way). Allocated only when asked for,
    /// which only the waiter may do, before <see cref="Release"/>.
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
        _waiting = true;
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

    /// <summary>
    /// The waiter is done with this object: it has taken the wait's result, or never waited (the answer, if it comes,
    /// is then discarded). It must not touch the object, nor a <see cref="ValueTask{TResult}"/> from
    /// <see cref="WaitAsync"/>, afterwards: the connection reuses it once the broker's answer has been matched.
    /// Released while a wait is still open, it is left to the GC instead (the wait may still be ended).
    /// </summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            throw new InvalidOperationException("The pending response was released twice.");
        }
        if (_waiting && !_taken)
        {
            return;
        }
        TryDecide(); // never waited for: an answer that still comes goes back to the pool
        LetGo();
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
        LetGo();
    }

    /// <summary>The connection failed before the broker answered.</summary>
    internal void Fail(Exception error)
    {
        MarkSettled();
        if (TryDecide())
        {
            _core.SetException(error);
        }
        LetGo();
    }

    /// <summary>
    /// Decides the wait, for the connection to end it outside its lock (<see cref="Expire"/>, <see cref="EndCancelled"/>).
    /// Called under the connection's lock while the object is in its FIFO: once decided here, nobody else can give
    /// the waiter a result, so the object stays this request's until the connection has ended the wait.
    /// </summary>
    internal bool TryDecide() => Interlocked.Exchange(ref _decided, 1) == 0;

    /// <summary>The waiter's deadline passed (the wait was decided by <see cref="TryDecide"/>).</summary>
    internal void Expire() =>
        _core.SetException(new UpstreamUnavailableException($"No response within {_timeout.TotalMilliseconds:0} ms."));

    /// <summary>The connection's owner closed (the wait was decided by <see cref="TryDecide"/>).</summary>
    internal void EndCancelled(CancellationToken cancellationToken) =>
        _core.SetException(new OperationCanceledException(cancellationToken));

    private void Cancel(CancellationToken cancellationToken)
    {
        if (TryDecide())
        {
            EndCancelled(cancellationToken);
        }
    }

    private void MarkSettled()
    {
        Interlocked.Exchange(ref _settled, 1);
        Volatile.Read(ref _settledSource)?.TrySetResult();
    }

    /// <summary>Drops one hold; the last one returns the object to its connection (the last thing done with it).</summary>
    private void LetGo()
    {
        if (Interlocked.Decrement(ref _holds) == 0)
        {
            _core.Reset(); // a ValueTask of the use just ended no longer matches
            _connection.Return(this);
        }
    }

    PooledFrame IValueTaskSource<PooledFrame>.GetResult(short token)
    {
        _core.GetStatus(token); // throws for a ValueTask of an earlier use, before anything of this use is touched
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _taken = true;
            // Dispose, not Unregister: it waits for a cancellation callback running on another thread, so none can
            // reach this object once the waiter has its result and may release it for reuse.
            _cancellation.Dispose();
        }
    }

    ValueTaskSourceStatus IValueTaskSource<PooledFrame>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<PooledFrame>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
