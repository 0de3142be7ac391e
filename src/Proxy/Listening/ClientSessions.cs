using System.Collections.Concurrent;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.Listening;

/// <summary>
/// The open client sessions of every listener (bootstrap and per-broker ports): enforces
/// <see cref="LimitsConfig.MaxConnections"/> over all of them together, and closes idle sessions from one shared
/// heartbeat rather than a timer per read.
/// </summary>
public sealed class ClientSessions : IDisposable
{
    private readonly ConcurrentDictionary<ClientSession, byte> _open = new();
    private readonly ConcurrentQueue<ClientSnapshot> _closed = new();
    private readonly int _maxConnections;
    private readonly long _idleTimeoutMs;
    private readonly Timer _heartbeat;
    private int _count;

    public ClientSessions(LimitsConfig limits)
    {
        _maxConnections = limits.MaxConnections;
        _idleTimeoutMs = (long)limits.IdleTimeout.TotalMilliseconds;
        // A session is closed between one and 1.25 idle timeouts after its last activity (scans at most each second).
        var period = TimeSpan.FromMilliseconds(Math.Clamp(_idleTimeoutMs / 4, 10, 1000));
        _heartbeat = new Timer(static s => ((ClientSessions)s!).CloseIdle(), this, period, period);
    }

    /// <summary>Sessions open now.</summary>
    public int Count => Volatile.Read(ref _count);

    public int MaxConnections => _maxConnections;

    /// <summary>Registers a new session, or returns false when <see cref="LimitsConfig.MaxConnections"/> are open.</summary>
    public bool TryOpen(ClientSession session)
    {
        if (Interlocked.Increment(ref _count) > _maxConnections)
        {
            Interlocked.Decrement(ref _count);
            return false;
        }
        _open[session] = 0;
        return true;
    }

    public void Close(ClientSession session)
    {
        if (_open.TryRemove(session, out _))
        {
            Interlocked.Decrement(ref _count);
            _closed.Enqueue(session.Snapshot(DateTimeOffset.UtcNow));
            while (_closed.Count > MaxClosedKept && _closed.TryDequeue(out _))
            {
            }
        }
    }

    /// <summary>How many closed connections the inventory keeps (the most recent), and for how long.</summary>
    public const int MaxClosedKept = 1_000;

    public static readonly TimeSpan ClosedKeptFor = TimeSpan.FromHours(1);

    /// <summary>
    /// The client inventory: every open connection, then the most recently closed ones (at most
    /// <see cref="MaxClosedKept"/>, for <see cref="ClosedKeptFor"/>), so clients that came and went are still seen.
    /// </summary>
    public IReadOnlyList<ClientSnapshot> Inventory()
    {
        var cutoff = DateTimeOffset.UtcNow - ClosedKeptFor;
        return [.. _open.Keys.Select(s => s.Snapshot()).OrderBy(s => s.ConnectedAt),
            .. _closed.Where(s => s.ClosedAt >= cutoff).Reverse()];
    }

    private void CloseIdle()
    {
        var now = Environment.TickCount64;
        foreach (var session in _open.Keys)
        {
            if (session.IsIdle(now, _idleTimeoutMs))
            {
                session.Abort("idle");
            }
        }
    }

    public void Dispose() => _heartbeat.Dispose();
}
