using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Switchback.Proxy.Upstream;
using Xunit;

namespace Switchback.Proxy.Tests.Upstream;

/// <summary>
/// How a wait on an upstream response ends: the answer, the wait's timeout (kept by the connection, not a timer per
/// request), or the owning session's close. The peer is a real TCP socket driven by the test (<see cref="ScriptedBroker"/>,
/// hand-made: a broker that answers only when told, or never), since no real broker can be made to stay silent.
/// </summary>
public sealed class UpstreamConnectionWaitTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Wait_OnABrokerThatNeverAnswers_FailsAfterItsTimeout_AsUpstreamUnavailable_ConnectionKept()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        var pending = await SendAsync(connection);

        var started = Environment.TickCount64;
        var error = await Assert.ThrowsAsync<UpstreamUnavailableException>(() => pending.WaitAsync(TimeSpan.FromMilliseconds(300), CancellationToken.None).AsTask().WaitAsync(Patience));

        Assert.Equal("No response within 300 ms.", error.Message);
        Assert.True(Environment.TickCount64 - started >= 290, "the wait ended before its timeout");
        Assert.True(connection.IsHealthy);
        Assert.False(pending.Settled.IsCompleted); // still on its way: a switch must keep waiting for it
    }

    [Fact]
    public async Task Waits_WithDifferentTimeouts_EachEndAtItsOwn_AnEarlierDeadlineAfterALaterOne()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        var slow = await SendAsync(connection);
        var slowWait = slow.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).AsTask();
        var quick = await SendAsync(connection);

        var error = await Assert.ThrowsAsync<UpstreamUnavailableException>(() => quick.WaitAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None).AsTask().WaitAsync(Patience));

        Assert.Equal("No response within 200 ms.", error.Message);
        Assert.False(slowWait.IsCompleted);
        await broker.AnswerAsync(slow.CorrelationId, 1);
        await broker.AnswerAsync(quick.CorrelationId, 2);
        using var answer = await slowWait.WaitAsync(Patience);
        Assert.Equal(1, ScriptedBroker.Payload(answer));
    }

    [Fact]
    public async Task LateAnswer_AfterATimeout_IsDiscarded_AndTheNextAnswerStillMatchesItsRequest()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        var timedOut = await SendAsync(connection);
        await Assert.ThrowsAsync<UpstreamUnavailableException>(() => timedOut.WaitAsync(TimeSpan.FromMilliseconds(100), CancellationToken.None).AsTask().WaitAsync(Patience));
        var next = await SendAsync(connection);
        var nextWait = next.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None);

        // Kafka answers in order: first the late answer to the request given up on, then the next one.
        await broker.AnswerAsync(timedOut.CorrelationId, 1);
        await broker.AnswerAsync(next.CorrelationId, 2);

        using var answer = await nextWait.AsTask().WaitAsync(Patience);
        Assert.Equal(next.CorrelationId, BinaryPrimitives.ReadInt32BigEndian(answer.Span));
        Assert.Equal(2, ScriptedBroker.Payload(answer));
        await timedOut.Settled.WaitAsync(Patience); // the late answer settles the request it belongs to
        Assert.True(connection.IsHealthy);
    }

    [Fact]
    public async Task OwnerClose_EndsEveryWait_AsCancelled_AndLaterAnswersAreDiscarded()
    {
        await using var broker = ScriptedBroker.Start();
        using var session = new CancellationTokenSource();
        await using var connection = await broker.ConnectAsync(session.Token);
        var first = await SendAsync(connection);
        var second = await SendAsync(connection);
        var firstWait = first.WaitAsync(TimeSpan.FromMinutes(1), session.Token).AsTask();
        var secondWait = second.WaitAsync(TimeSpan.FromMinutes(1), session.Token).AsTask();

        await session.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => firstWait.WaitAsync(Patience));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => secondWait.WaitAsync(Patience));
        // A wait that starts after the close ends at once too.
        var late = await SendAsync(connection);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => late.WaitAsync(TimeSpan.FromMinutes(1), session.Token).AsTask().WaitAsync(Patience));
        await broker.AnswerAsync(first.CorrelationId, 1);
        await first.Settled.WaitAsync(Patience);
        Assert.True(connection.IsHealthy);
    }

    [Fact]
    public async Task Wait_WithATokenOtherThanTheOwners_EndsWhenThatTokenIsCancelled()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        using var caller = new CancellationTokenSource();
        var pending = await SendAsync(connection);
        var wait = pending.WaitAsync(TimeSpan.FromMinutes(1), caller.Token).AsTask();

        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Patience));
    }

    [Fact]
    public async Task Session_UpstreamPool_EndsWaitsOfItsConnections_WhenTheSessionCloses()
    {
        await using var broker = ScriptedBroker.Start();
        using var session = new CancellationTokenSource();
        await using var pool = new UpstreamPool(TimeSpan.FromSeconds(5), NullLogger.Instance, sessionClosed: session.Token);
        var view = new ClusterView("upstream", 0, null, [new UpstreamBroker(1, "127.0.0.1", broker.Port, null)], [],
            FrozenDictionary<short, (short, short)>.Empty, DateTimeOffset.UtcNow);
        var connection = await pool.GetAsync(view, 1, session.Token);
        var pending = await SendAsync(connection);
        var wait = pending.WaitAsync(TimeSpan.FromMinutes(1), session.Token).AsTask();

        await session.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Patience));
    }

    [Fact]
    public async Task Answers_BeforeTheTimeout_AreTheWaitsResults_AndALaterWaitStillTimesOut()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        for (var i = 0; i < 3; i++)
        {
            var pending = await SendAsync(connection);
            // Long enough that a loaded machine answers in time; the timer it arms fires after the answers.
            var wait = pending.WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None);
            await broker.AnswerAsync(pending.CorrelationId, i);
            using var answer = await wait.AsTask().WaitAsync(Patience);
            Assert.Equal(i, ScriptedBroker.Payload(answer));
        }
        // The timer armed by the first wait fires later and finds nothing overdue; the next wait still times out.
        await Task.Delay(TimeSpan.FromSeconds(2.2));
        var unanswered = await SendAsync(connection);
        var error = await Assert.ThrowsAsync<UpstreamUnavailableException>(() => unanswered.WaitAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None).AsTask().WaitAsync(Patience));
        Assert.Equal("No response within 200 ms.", error.Message);
    }

    [Fact]
    public async Task ConnectionLoss_FailsWaits_AndSettlesTheirRequests()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        var pending = await SendAsync(connection);
        var wait = pending.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None).AsTask();

        await broker.DropAsync();

        var error = await Assert.ThrowsAsync<UpstreamUnavailableException>(() => wait.WaitAsync(Patience));
        Assert.StartsWith("Connection to test/1 lost", error.Message, StringComparison.Ordinal);
        await pending.Settled.WaitAsync(Patience);
        Assert.False(connection.IsHealthy);
    }

    [Fact]
    public async Task ReleasedWaits_ManyInFlight_SomeTimingOut_EachWaiterGetsItsOwnAnswer_AndNoEntryIsReusedBeforeItsAnswer()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        var unanswered = new List<(PendingResponse Pending, int CorrelationId)>(); // in FIFO order; the broker has not answered them
        var entries = new HashSet<PendingResponse>(ReferenceEqualityComparer.Instance);
        var waits = new List<Task<WaitOutcome>>();
        var sends = 0;
        for (var round = 0; round < 25; round++)
        {
            for (var i = 0; i < 20; i++)
            {
                var pending = await SendAsync(connection);
                // An entry whose answer has not even been sent must not come back, timed out or not.
                Assert.DoesNotContain(unanswered, u => ReferenceEquals(u.Pending, pending));
                var correlationId = pending.CorrelationId;
                unanswered.Add((pending, correlationId));
                entries.Add(pending);
                sends++;
                var timesOut = (round + i) % 3 == 0;
                waits.Add(WaitAndReleaseAsync(pending, correlationId, timesOut ? TimeSpan.FromMilliseconds(1) : Patience));
            }
            // The short waits time out meanwhile; then the oldest half is answered (late answers among them) while the
            // rest stay in flight into the next round, whose requests reuse the entries released so far.
            await Task.Delay(10);
            var answered = unanswered.Count / 2;
            foreach (var (_, correlationId) in unanswered.Take(answered))
            {
                await broker.AnswerAsync(correlationId, PayloadFor(correlationId));
            }
            unanswered.RemoveRange(0, answered);
        }
        foreach (var (_, correlationId) in unanswered)
        {
            await broker.AnswerAsync(correlationId, PayloadFor(correlationId));
        }

        var outcomes = await Task.WhenAll(waits).WaitAsync(Patience);

        foreach (var outcome in outcomes.Where(o => o.Answered))
        {
            Assert.Equal(outcome.SentAs, outcome.AnswerCorrelationId);
            Assert.Equal(PayloadFor(outcome.SentAs), outcome.Payload);
        }
        Assert.All(outcomes.Where(o => !o.TimesOut), o => Assert.True(o.Answered, $"request {o.SentAs} got no answer"));
        Assert.Contains(outcomes, o => o.TimesOut && !o.Answered); // late answers were matched and discarded
        Assert.True(entries.Count < sends / 4, $"{entries.Count} entries for {sends} requests: released entries were not reused");
        Assert.True(connection.IsHealthy);
    }

    [Fact]
    public async Task ReleasedTimedOutWait_IsReusedOnlyAfterItsLateAnswer_AndAWaitReleasedWhileOpenIsNever()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        var timedOut = await SendAsync(connection);
        var timedOutId = timedOut.CorrelationId;
        await Assert.ThrowsAsync<UpstreamUnavailableException>(() => timedOut.WaitAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None).AsTask().WaitAsync(Patience));
        timedOut.Release();
        var abandoned = await SendAsync(connection);
        var abandonedId = abandoned.CorrelationId;
        _ = abandoned.WaitAsync(Patience, CancellationToken.None); // never awaited
        abandoned.Release();
        var next = await SendAsync(connection);
        var nextId = next.CorrelationId;

        Assert.NotSame(timedOut, abandoned); // its late answer has not come yet
        Assert.NotSame(timedOut, next);
        Assert.NotSame(abandoned, next);
        await broker.AnswerAsync(timedOutId, 1);
        await broker.AnswerAsync(abandonedId, 2);
        await broker.AnswerAsync(nextId, 3);
        var answer = await WaitAndReleaseAsync(next, nextId, Patience).WaitAsync(Patience);
        Assert.Equal((nextId, 3), (answer.AnswerCorrelationId, answer.Payload));

        // Answered in order, so the late answer was matched before the next one: its entry is free now.
        var reused = await SendAsync(connection);
        Assert.True(ReferenceEquals(reused, timedOut) || ReferenceEquals(reused, next), "a released, answered entry was not reused");
        Assert.NotSame(abandoned, reused);
        await broker.AnswerAsync(reused.CorrelationId, 4);
        using var reusedAnswer = await reused.WaitAsync(Patience, CancellationToken.None).AsTask().WaitAsync(Patience);
        Assert.Equal(4, ScriptedBroker.Payload(reusedAnswer));
    }

    [Fact]
    public async Task Release_Twice_Throws_AndAWaitOfAnEarlierUseNoLongerMatches()
    {
        await using var broker = ScriptedBroker.Start();
        await using var connection = await broker.ConnectAsync();
        var pending = await SendAsync(connection);
        var wait = pending.WaitAsync(Patience, CancellationToken.None);
        await broker.AnswerAsync(pending.CorrelationId, 1);
        using (await wait)
        {
        }
        pending.Release();
        // Once a later answer is in, the first one's match is finished and its entry back in the pool.
        var later = await SendAsync(connection);
        await broker.AnswerAsync(later.CorrelationId, 2);
        Assert.Equal(2, (await WaitAndReleaseAsync(later, later.CorrelationId, Patience).WaitAsync(Patience)).Payload);

        Assert.Throws<InvalidOperationException>(pending.Release);
        Assert.Throws<InvalidOperationException>(() => wait.IsCompleted);
    }

    private static int PayloadFor(int correlationId) => correlationId * 7 + 3;

    private readonly record struct WaitOutcome(int SentAs, bool TimesOut, bool Answered, int AnswerCorrelationId, int Payload);

    /// <summary>Waits as the relay path does: takes the result, then releases the entry for reuse.</summary>
    private static async Task<WaitOutcome> WaitAndReleaseAsync(PendingResponse pending, int correlationId, TimeSpan timeout)
    {
        var timesOut = timeout < Patience;
        try
        {
            using var answer = await pending.WaitAsync(timeout, CancellationToken.None);
            return new WaitOutcome(correlationId, timesOut, true, BinaryPrimitives.ReadInt32BigEndian(answer.Span), ScriptedBroker.Payload(answer));
        }
        catch (UpstreamUnavailableException)
        {
            return new WaitOutcome(correlationId, timesOut, false, 0, 0);
        }
        finally
        {
            pending.Release();
        }
    }

    private static async Task<PendingResponse> SendAsync(UpstreamConnection connection)
    {
        // A request header (api key 0, version 0, correlation id replaced by the connection, no client id).
        var frame = new byte[10];
        BinaryPrimitives.WriteInt16BigEndian(frame.AsSpan(8), -1);
        var pending = await connection.SendAsync(frame, expectResponse: true);
        return pending!;
    }

    /// <summary>A hand-made broker on a real socket: it reads request frames and answers only when the test says so.</summary>
    private sealed class ScriptedBroker : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly TaskCompletionSource<Socket> _accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private ScriptedBroker(TcpListener listener)
        {
            _listener = listener;
            _ = AcceptAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public static ScriptedBroker Start()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return new ScriptedBroker(listener);
        }

        public ValueTask<UpstreamConnection> ConnectAsync(CancellationToken ownerClosed = default) =>
            UpstreamConnection.ConnectAsync(new DnsEndPoint("127.0.0.1", Port), "test/1", TimeSpan.FromSeconds(5), NullLogger.Instance,
                CancellationToken.None, ownerClosed: ownerClosed);

        /// <summary>Answers the request with <paramref name="correlationId"/> with a 4-byte payload.</summary>
        public async Task AnswerAsync(int correlationId, int payload)
        {
            var socket = await _accepted.Task.WaitAsync(Patience);
            var frame = new byte[12];
            BinaryPrimitives.WriteInt32BigEndian(frame, 8);
            BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(4), correlationId);
            BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(8), payload);
            await socket.SendAsync(frame);
        }

        public static int Payload(PooledFrame answer) => BinaryPrimitives.ReadInt32BigEndian(answer.Span[4..]);

        public async Task DropAsync()
        {
            var socket = await _accepted.Task.WaitAsync(Patience);
            socket.Close();
        }

        private async Task AcceptAsync()
        {
            try
            {
                var socket = await _listener.AcceptSocketAsync();
                _accepted.TrySetResult(socket);
                // Read (and ignore) request frames so the connection's writes never block.
                var buffer = new byte[64 * 1024];
                while (await socket.ReceiveAsync(buffer) > 0)
                {
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                _accepted.TrySetException(e);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            if (_accepted.Task.IsCompletedSuccessfully)
            {
                (await _accepted.Task).Dispose();
            }
        }
    }
}
