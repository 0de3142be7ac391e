using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Fleet;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// Fleet members join one group on a librdkafka mock cluster (three brokers), reached only through a relay that can
/// cut one member off. Each test uses a fresh group name (the mock stalls a group name reused right after its last
/// member left). Every wait is for an event, bounded by a timeout far above what the mock needs: its rebalances take
/// about a session timeout (it waits session timeout - 1 s for members to rejoin, 3 s for the first join).
/// </summary>
public sealed class FleetMembershipTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan SessionTimeout = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan AgreementTimeout = TimeSpan.FromSeconds(90);
    private const short JoinGroupKey = 11;
    private const short SyncGroupKey = 14;
    private const short CoordinatorNotAvailable = 15;
    private const short NotCoordinator = 16;

    private readonly string _group = $"fleet-{Guid.NewGuid():N}";
    private readonly TimestampedLog _log = new();
    private readonly List<FleetMembership> _members = [];
    private MockKafkaCluster _cluster = null!;
    private ClientCutRelay _relay = null!;
    private ILoggerFactory _loggers = null!;

    public Task InitializeAsync()
    {
        _cluster = MockKafkaCluster.Start(3);
        _relay = new ClientCutRelay(_cluster);
        _loggers = LoggerFactory.Create(builder => builder.AddProvider(_log).SetMinimumLevel(LogLevel.Debug));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var member in _members)
        {
            await member.DisposeAsync();
        }
        await _relay.DisposeAsync();
        _cluster.Dispose();
        _loggers.Dispose();
        foreach (var line in _log.Lines)
        {
            output.WriteLine(line);
        }
    }

    [Fact]
    public async Task ThreeMembers_Join_AndAllSeeTheSameGenerationLeaderAndMembers()
    {
        var members = await StartAsync("a", "b", "c");

        var views = await AgreeAsync(members, v => v.Members.Count == 3);

        var first = views[0];
        Assert.All(views, v => Assert.Equal(first.Generation, v.Generation));
        Assert.All(views, v => Assert.Equal(first.LeaderMemberId, v.LeaderMemberId));
        Assert.All(views, v => Assert.Equal(first.Members, v.Members));
        Assert.Equal(["a", "b", "c"], first.Members.Select(m => m.InstanceId));
        Assert.Equal(3, views.Select(v => v.SelfMemberId).Distinct().Count());
        Assert.Single(views, v => v.IsLeader);
        for (var i = 0; i < members.Length; i++)
        {
            var self = views[i].Self;
            Assert.NotNull(self);
            Assert.Equal(members[i].Self.InstanceId, self.InstanceId);
            Assert.Equal(members[i].Self.AdvertisedBootstrap, self.AdvertisedBootstrap);
            Assert.Equal(members[i].Self.AdminAddress, self.AdminAddress);
            Assert.Equal(members[i].Self.Version, self.Version);
        }
        foreach (var member in members)
        {
            await member.WhenRenewedAsync(Within(AgreementTimeout));
            Assert.True(member.RenewedUntil > DateTimeOffset.UtcNow);
        }
    }

    [Fact]
    public async Task CrashedMember_IsDroppedFromTheOthersView_OnlyOnceItsSessionTimedOut()
    {
        var members = await StartAsync("a", "b", "c");
        var views = await AgreeAsync(members, v => v.Members.Count == 3);
        var (survivors, crashed) = (members[..2], members[2]);
        var crashedId = views[2].SelfMemberId;

        var dropped = new TaskCompletionSource<DateTimeOffset>(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach (var survivor in survivors)
        {
            survivor.ViewChanged += view =>
            {
                if (view.Find(crashedId) is null)
                {
                    dropped.TrySetResult(DateTimeOffset.UtcNow);
                }
            };
        }

        var crashedAt = DateTimeOffset.UtcNow;
        await crashed.AbandonAsync();
        var droppedAt = await dropped.Task.WaitAsync(AgreementTimeout);
        var after = await AgreeAsync(survivors, v => v.Find(crashedId) is null);

        Assert.All(after, v => Assert.Equal(["a", "b"], v.Members.Select(m => m.InstanceId)));
        // No LeaveGroup was sent, so only the session timeout can have dropped it: the coordinator last heard from
        // it at most a heartbeat interval before the crash.
        Assert.True(droppedAt - crashedAt >= SessionTimeout - HeartbeatInterval, $"dropped {(droppedAt - crashedAt).TotalMilliseconds:0} ms after the crash");
        Assert.DoesNotContain(_log.Entries, e => e.EventId == 4207 && e.Message.Contains(crashedId, StringComparison.Ordinal));
    }

    [Fact]
    public async Task GracefulLeave_DropsTheMember_AndEndsItsLease()
    {
        var members = await StartAsync("a", "b", "c");
        var views = await AgreeAsync(members, v => v.Members.Count == 3);
        var leavingId = views[2].SelfMemberId;

        await members[2].DisposeAsync();

        Assert.False(members[2].IsRenewed);
        Assert.Contains(_log.Entries, e => e.EventId == 4207 && e.Message.Contains(leavingId, StringComparison.Ordinal));
        var after = await AgreeAsync(members[..2], v => v.Find(leavingId) is null);
        Assert.All(after, v => Assert.Equal(["a", "b"], v.Members.Select(m => m.InstanceId)));
    }

    [Fact]
    public async Task CutOffMember_FencesItselfBeforeTheOthersDropIt_AndRejoinsOnceHealed()
    {
        var members = await StartAsync("a", "b", "c");
        var views = await AgreeAsync(members, v => v.Members.Count == 3);
        var (others, cut) = (members[..2], members[2]);
        var cutId = views[2].SelfMemberId;

        // The order of the two events, taken where they are raised.
        long sequence = 0;
        var fenced = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var dropped = new TaskCompletionSource<(long Order, DateTimeOffset At)>(TaskCreationOptions.RunContinuationsAsynchronously);
        cut.RenewalChanged += renewed =>
        {
            if (!renewed && !fenced.Task.IsCompleted)
            {
                fenced.TrySetResult(Interlocked.Increment(ref sequence));
            }
        };
        foreach (var other in others)
        {
            other.ViewChanged += view =>
            {
                if (view.Find(cutId) is null && !dropped.Task.IsCompleted)
                {
                    dropped.TrySetResult((Interlocked.Increment(ref sequence), DateTimeOffset.UtcNow));
                }
            };
        }

        _relay.Cut(cut.ClientId);
        var fencedOrder = await fenced.Task.WaitAsync(AgreementTimeout);
        var (droppedOrder, droppedAt) = await dropped.Task.WaitAsync(AgreementTimeout);
        var after = await AgreeAsync(others, v => v.Find(cutId) is null);

        Assert.All(after, v => Assert.Equal(["a", "b"], v.Members.Select(m => m.InstanceId)));
        Assert.True(fencedOrder < droppedOrder, $"fenced #{fencedOrder}, dropped #{droppedOrder}");
        Assert.False(cut.IsRenewed);
        Assert.True(cut.RenewedUntil < droppedAt, $"renewed until {cut.RenewedUntil:O}, dropped at {droppedAt:O}");
        Assert.Equal(3, cut.Current!.Members.Count);

        _relay.Heal(cut.ClientId);
        var healed = await AgreeAsync(members, v => v.Members.Count == 3);

        Assert.All(healed, v => Assert.Equal(["a", "b", "c"], v.Members.Select(m => m.InstanceId)));
        // Expelled meanwhile, it joined afresh (the mock names members by heap address, so the new id may equal the old).
        Assert.Contains(_log.Entries, e => e.Category == "Fleet.c" && e.EventId == 4205);
        await cut.WhenRenewedAsync(Within(AgreementTimeout));
    }

    [Fact]
    public async Task CoordinatorErrorsWhileJoining_AreRetried_UntilTheMemberJoins()
    {
        // The mock answers these with null in non-nullable fields; the membership reads the error code alone.
        _cluster.PushRequestErrors(JoinGroupKey, NotCoordinator, CoordinatorNotAvailable);
        _cluster.PushRequestErrors(SyncGroupKey, NotCoordinator);

        var members = await StartAsync("a");
        var views = await AgreeAsync(members, v => v.Members.Count == 1);

        Assert.True(views[0].IsLeader);
        Assert.Equal("a", views[0].Self?.InstanceId);
        Assert.True(_log.Entries.Count(e => e.EventId == 4202) >= 3, "each coordinator error sends the member looking for the coordinator again");
        await members[0].WhenRenewedAsync(Within(AgreementTimeout));
    }

    private async Task<FleetMembership[]> StartAsync(params string[] instanceIds)
    {
        var cluster = new ClusterConfig("control", 0, [.. _relay.BootstrapServers.Split(',').Select(ParseEndPoint)]);
        var options = new FleetMembershipOptions
        {
            SessionTimeout = SessionTimeout,
            RebalanceTimeout = SessionTimeout,
            HeartbeatInterval = HeartbeatInterval,
        };
        var started = new FleetMembership[instanceIds.Length];
        for (var i = 0; i < instanceIds.Length; i++)
        {
            var id = instanceIds[i];
            var info = new FleetInstanceInfo(id, $"{id}.proxy.test:9092", $"http://{id}.proxy.test:9190", "0.0.0-test");
            started[i] = new FleetMembership(_group, info, cluster, options, _loggers.CreateLogger($"Fleet.{id}"));
            _members.Add(started[i]);
            await started[i].StartAsync(CancellationToken.None);
        }
        return started;
    }

    /// <summary>
    /// Waits until every member's current view satisfies <paramref name="condition"/> and all are of one generation;
    /// woken by each new view, never by a timer.
    /// </summary>
    private static async Task<FleetView[]> AgreeAsync(IReadOnlyList<FleetMembership> members, Func<FleetView, bool> condition)
    {
        using var timeout = new CancellationTokenSource(AgreementTimeout);
        while (true)
        {
            var views = members.Select(m => m.Current).ToArray();
            if (views.All(v => v is not null && condition(v)) && views.Select(v => v!.Generation).Distinct().Count() == 1)
            {
                return views!;
            }
            var next = members.Select((m, i) => m.NextViewAsync(views[i], timeout.Token)).ToArray();
            try
            {
                await Task.WhenAny(next).Unwrap();
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                throw new TimeoutException($"No agreement within {AgreementTimeout}: {string.Join(" | ", views.Select(v => v?.ToString() ?? "no view"))}");
            }
        }
    }

    private static CancellationToken Within(TimeSpan timeout) => new CancellationTokenSource(timeout).Token;

    private static DnsEndPoint ParseEndPoint(string address)
    {
        var colon = address.LastIndexOf(':');
        return new DnsEndPoint(address[..colon], int.Parse(address[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Keeps every log entry with the time it was written, to print after the test and to assert on.</summary>
    private sealed class TimestampedLog : ILoggerProvider
    {
        private readonly ConcurrentQueue<Entry> _entries = new();

        public IReadOnlyCollection<Entry> Entries => _entries;

        public IEnumerable<string> Lines => _entries.Select(e => $"{e.At:HH:mm:ss.fff} {e.Category} [{e.EventId}] {e.Message}");

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _entries);

        public void Dispose()
        {
        }

        public sealed record Entry(DateTimeOffset At, string Category, int EventId, string Message);

        private sealed class Logger(string category, ConcurrentQueue<Entry> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                entries.Enqueue(new Entry(DateTimeOffset.UtcNow, category, eventId.Id,
                    formatter(state, exception) + (exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message})")));
        }
    }
}
