using System.Net;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Fleet;

/// <summary>
/// This instance's membership in the fleet: a client of Kafka's classic group protocol (FindCoordinator,
/// JoinGroup, SyncGroup, Heartbeat, LeaveGroup) under protocol type <c>switchback</c>, as Kafka Connect's
/// distributed workers use it. It yields the list of live instances, a leader per generation, and a lease that
/// tells this instance whether the rest of the group may already have moved on without it.
/// </summary>
/// <remarks>
/// One background loop owns a dedicated connection to the group coordinator (JoinGroup and SyncGroup hold a
/// connection for a whole rebalance, so the cluster's shared control connection is never used), with the cluster's
/// upstream TLS and SASL. Errors are handled as Kafka's own clients do: REBALANCE_IN_PROGRESS rejoins;
/// UNKNOWN_MEMBER_ID and FENCED_INSTANCE_ID forget the member id, ILLEGAL_GENERATION the generation, and rejoin;
/// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS and a lost connection look the
/// coordinator up again, with bounded exponential backoff, and resume heartbeating the generation held, if any.
/// </remarks>
public sealed partial class FleetMembership : IAsyncDisposable
{
    // The versions asked for, at most (a broker that no longer serves them gets its lowest): the last ones before
    // flexible encoding, JoinGroup v5 (MEMBER_ID_REQUIRED from v4), SyncGroup v3, Heartbeat v3, and LeaveGroup v2,
    // served by every broker since Kafka 2.3. librdkafka's mock cluster drops the connection on a JoinGroup v6 and
    // leaves the member list out of its LeaveGroup v3+ answers.
    private const short MaxJoinGroupVersion = 5;
    private const short MaxSyncGroupVersion = 3;
    private const short MaxHeartbeatVersion = 3;
    private const short MaxLeaveGroupVersion = 2;
    private const short FindCoordinatorVersion = 1;
    private static readonly TimeSpan RebalanceWaitSlack = TimeSpan.FromSeconds(5);

    private readonly ClusterConfig _cluster;
    private readonly FleetMembershipOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly byte[] _metadata;
    private readonly TimeSpan _leaseLength;
    private readonly CancellationTokenSource _stop = new();
    private readonly ITimer _leaseTimer;
    private Task? _loop;
    private int _disposed;
    private bool _abandon;

    // Owned by the loop (and by DisposeAsync once the loop has ended).
    private UpstreamConnection? _coordinator;
    private DnsEndPoint? _coordinatorEndPoint;
    private GroupVersions _versions;
    private bool _requestOutstanding;
    private string _memberId = "";
    private int _generation = -1; // the generation held (its view installed), -1 when none
    private int _bootstrapCursor;

    // State readers see: under _lock.
    private readonly Lock _lock = new();
    private FleetView? _current;
    private TaskCompletionSource<FleetView> _nextView = NewSource<FleetView>();
    private int _leaseGeneration = -1;
    private long _leaseDeadline = long.MinValue; // TimeProvider timestamp
    private DateTimeOffset _renewedUntil = DateTimeOffset.MinValue;
    private bool _renewed;
    private TaskCompletionSource _fencedSignal = NewSource();
    private TaskCompletionSource _renewedSignal = NewSource();

    // RenewalChanged is raised under this lock (never under _lock), so handlers see the changes in order.
    private readonly Lock _notifyLock = new();
    private bool _notifiedRenewed;

    /// <summary>Creates the membership; nothing is sent before <see cref="StartAsync"/>.</summary>
    /// <param name="groupId">The group all instances of the fleet join, e.g. <c>&lt;Fleet.Topic&gt;-fleet</c>.</param>
    /// <param name="self">What this instance announces to the others.</param>
    /// <param name="cluster">The cluster that coordinates the fleet: bootstrap servers and upstream TLS/SASL.</param>
    /// <param name="options">Timeouts; validated here.</param>
    /// <param name="logger">Where membership changes are logged (event ids 4200-4299).</param>
    /// <param name="timeProvider">The clock for heartbeats and the lease; <see cref="TimeProvider.System"/> when null.</param>
    public FleetMembership(string groupId, FleetInstanceInfo self, ClusterConfig cluster, FleetMembershipOptions options, ILogger logger, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(groupId);
        ArgumentNullException.ThrowIfNull(self);
        ArgumentException.ThrowIfNullOrEmpty(self.InstanceId);
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        if (cluster.BootstrapServers.Count == 0)
        {
            throw new ArgumentException($"Cluster '{cluster.Name}' has no bootstrap servers.", nameof(cluster));
        }
        options.Validate();
        GroupId = groupId;
        Self = self;
        _cluster = cluster;
        _options = options;
        _logger = logger;
        _time = timeProvider ?? TimeProvider.System;
        _metadata = FleetProtocol.EncodeMetadata(self);
        _leaseLength = options.SessionTimeout - options.RenewalMargin;
        ClientId = $"switchback-fleet-{self.InstanceId}";
        _fencedSignal.SetResult(); // not renewed until the first view
        _leaseTimer = _time.CreateTimer(static state => ((FleetMembership)state!).OnLeaseTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The group this instance joins.</summary>
    public string GroupId { get; }

    /// <summary>What this instance announces to the others.</summary>
    public FleetInstanceInfo Self { get; }

    /// <summary>The client id of this membership's requests (it names the instance in the brokers' logs).</summary>
    public string ClientId { get; }

    /// <summary>
    /// The view the last completed rebalance gave this member, or null before the first. It stays in place through
    /// later rebalances, a lost coordinator and fencing until the next one completes: <see cref="IsRenewed"/>
    /// says whether it is still this member's current generation.
    /// </summary>
    public FleetView? Current
    {
        get
        {
            lock (_lock)
            {
                return _current;
            }
        }
    }

    /// <summary>
    /// Raised after each completed SyncGroup with the new view (already in <see cref="Current"/>, and before
    /// <see cref="NextViewAsync"/> returns it), on the membership's loop: handlers should return quickly; an
    /// exception is logged and ignored.
    /// </summary>
    public event Action<FleetView>? ViewChanged;

    /// <summary>
    /// Raised when <see cref="IsRenewed"/> changes (true: renewed, false: fenced), in order, on the thread that saw
    /// the change and outside the membership's state lock; a flip and flip back in quick succession may be reported
    /// once or not at all. Handlers should return quickly; an exception is logged and ignored.
    /// </summary>
    public event Action<bool>? RenewalChanged;

    /// <summary>
    /// Until when this member is certain the coordinator still counts it in <see cref="Current"/>'s generation:
    /// the time it sent the last request the coordinator answered without error for that generation (the SyncGroup
    /// that installed the view, then each heartbeat), plus the session timeout, less
    /// <see cref="FleetMembershipOptions.RenewalMargin"/>. <see cref="DateTimeOffset.MinValue"/> before the first view.
    /// </summary>
    /// <remarks>
    /// The invariant: the coordinator expires a member no sooner than a session timeout after it last <em>received</em>
    /// a heartbeat (or join or sync) from it, and it received that request after the member sent it; a rebalance drops
    /// a member that does not rejoin no sooner than the rebalance timeout (at least the session timeout, see
    /// <see cref="FleetMembershipOptions.RebalanceTimeout"/>) after it began, which was after the coordinator last
    /// answered that member without error. So a member that counts from its send times fences itself (RenewedUntil
    /// passes) no later than the coordinator can expel it and let the rest of the group form a generation without it.
    /// The margin covers the two clocks' rates and the time between reading the clock and the request leaving. A
    /// rejoin keeps the lease running (the member is still counted until then), so a rebalance does not fence the
    /// fleet; the member gives the lease up at once when the coordinator says it is out (UNKNOWN_MEMBER_ID,
    /// ILLEGAL_GENERATION, FENCED_INSTANCE_ID) and when it leaves. During a rebalance <see cref="Current"/> is the
    /// previous generation's view.
    /// <see cref="IsRenewed"/> measures the lease on the monotonic clock; this wall-clock value is for display.
    /// </remarks>
    public DateTimeOffset RenewedUntil
    {
        get
        {
            lock (_lock)
            {
                return _renewedUntil;
            }
        }
    }

    /// <summary>
    /// True while <see cref="RenewedUntil"/> has not passed: no generation can have formed without this member. (During a
    /// rebalance <see cref="Current"/> may already be superseded; do not act as leader on it alone.)
    /// </summary>
    public bool IsRenewed => _time.GetTimestamp() < Volatile.Read(ref _leaseDeadline);

    /// <summary>Starts joining in the background and returns; <see cref="NextViewAsync"/> gives the first view.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.CompareExchange(ref _loop, Task.CompletedTask, null) is not null)
        {
            throw new InvalidOperationException("The fleet membership has already been started.");
        }
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>
    /// <see cref="Current"/> when it is a view other than <paramref name="after"/>; otherwise the next view installed.
    /// Pass the view you hold (null for the first). Views are compared by identity, not generation number: a group
    /// deleted while empty starts again at a low generation.
    /// </summary>
    public Task<FleetView> NextViewAsync(FleetView? after, CancellationToken cancellationToken)
    {
        Task<FleetView> next;
        lock (_lock)
        {
            if (_current is { } current && !ReferenceEquals(current, after))
            {
                return Task.FromResult(current);
            }
            next = _nextView.Task;
        }
        return next.WaitAsync(cancellationToken);
    }

    /// <summary>Completes once <see cref="IsRenewed"/> is false (at once if it already is).</summary>
    public Task WhenFencedAsync(CancellationToken cancellationToken)
    {
        Task task;
        bool changed;
        lock (_lock)
        {
            changed = EvaluateLeaseLocked(null);
            task = _renewed ? _fencedSignal.Task : Task.CompletedTask;
        }
        if (changed)
        {
            NotifyRenewal();
        }
        return task.WaitAsync(cancellationToken);
    }

    /// <summary>Completes once <see cref="IsRenewed"/> is true (at once if it already is); faults once disposed.</summary>
    public Task WhenRenewedAsync(CancellationToken cancellationToken)
    {
        Task task;
        bool changed;
        lock (_lock)
        {
            changed = EvaluateLeaseLocked(null);
            task = _renewed ? Task.CompletedTask : _renewedSignal.Task;
        }
        if (changed)
        {
            NotifyRenewal();
        }
        return task.WaitAsync(cancellationToken);
    }

    /// <summary>Stops the membership: gives the lease up, then leaves the group (LeaveGroup, best effort).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is { } loop)
        {
            try
            {
                await loop.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The loop logs its own failures.
            }
        }
        GiveUpLease("leaving the group");
        if (!_abandon && _memberId.Length > 0)
        {
            await LeaveAsync().ConfigureAwait(false);
        }
        await DropCoordinatorAsync().ConfigureAwait(false);
        await _leaseTimer.DisposeAsync().ConfigureAwait(false);
        lock (_lock)
        {
            // Nothing renews or installs a view any more: waits for either end here.
            _nextView.TrySetException(new ObjectDisposedException(nameof(FleetMembership)));
            _renewedSignal.TrySetException(new ObjectDisposedException(nameof(FleetMembership)));
        }
        _stop.Dispose();
    }

    /// <summary>
    /// Stops as a crashed process would: no LeaveGroup, the connection dropped. The coordinator drops the member
    /// once its session times out (tests).
    /// </summary>
    internal ValueTask AbandonAsync()
    {
        _abandon = true;
        return DisposeAsync();
    }

    private async Task RunAsync(CancellationToken stop)
    {
        var backoff = _options.RetryBackoffMin;
        while (!stop.IsCancellationRequested)
        {
            TimeSpan delay;
            try
            {
                await EnsureCoordinatorAsync(stop).ConfigureAwait(false);
                // A generation still held after the coordinator was lost is heartbeated at once: the answer says
                // whether it survived.
                var resumed = _generation >= 0;
                if (!resumed)
                {
                    await JoinAsync(stop).ConfigureAwait(false);
                }
                backoff = _options.RetryBackoffMin;
                await HeartbeatAsync(resumed, stop).ConfigureAwait(false);
                continue;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (FleetGroupException e)
            {
                delay = NextBackoff(ref backoff);
                LogRefused(_logger, GroupId, e.Api, e.Error, (long)delay.TotalMilliseconds);
            }
            catch (Exception e) when (e is CoordinatorLostException or UpstreamUnavailableException or KafkaProtocolException or IOException)
            {
                delay = NextBackoff(ref backoff);
                LogCoordinatorUnavailable(_logger, GroupId, e.Message, (long)delay.TotalMilliseconds);
            }
            catch (Exception e)
            {
                delay = NextBackoff(ref backoff);
                LogUnexpected(_logger, GroupId, (long)delay.TotalMilliseconds, e);
            }
            await DropCoordinatorAsync().ConfigureAwait(false);
            try
            {
                await Task.Delay(delay, _time, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private TimeSpan NextBackoff(ref TimeSpan backoff)
    {
        var delay = backoff;
        var doubled = backoff * 2;
        backoff = doubled > _options.RetryBackoffMax ? _options.RetryBackoffMax : doubled;
        return delay;
    }

    /// <summary>Finds the coordinator through the bootstrap servers and connects to it, unless connected.</summary>
    private async Task EnsureCoordinatorAsync(CancellationToken stop)
    {
        if (_coordinator is { IsHealthy: true } && !_requestOutstanding)
        {
            return;
        }
        await DropCoordinatorAsync().ConfigureAwait(false);
        var servers = _cluster.BootstrapServers;
        Exception? last = null;
        for (var i = 0; i < servers.Count; i++)
        {
            var server = servers[_bootstrapCursor % servers.Count];
            UpstreamConnection? connection = null;
            try
            {
                connection = await ConnectAsync(server, "bootstrap", stop).ConfigureAwait(false);
                using var frame = await SendAsync(connection, ApiKey.FindCoordinator, FindCoordinatorVersion,
                    new FindCoordinatorRequest { Key = GroupId, KeyType = 0 }, _options.SessionTimeout, stop).ConfigureAwait(false);
                var found = Decode<FindCoordinatorResponse>(frame, ApiKey.FindCoordinator, FindCoordinatorVersion, out var error);
                if (error != ErrorCode.None)
                {
                    throw error is ErrorCode.CoordinatorNotAvailable or ErrorCode.CoordinatorLoadInProgress or ErrorCode.NotCoordinator
                        ? new CoordinatorLostException($"FindCoordinator answered {error}")
                        : new FleetGroupException("FindCoordinator", error);
                }
                var endPoint = new DnsEndPoint(found!.Host, found.Port);
                if (!SameEndPoint(endPoint, server))
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                    connection = null;
                    connection = await ConnectAsync(endPoint, $"coordinator {found.NodeId}", stop).ConfigureAwait(false);
                }
                _versions = await NegotiateVersionsAsync(connection, stop).ConfigureAwait(false);
                _coordinator = connection;
                _coordinatorEndPoint = endPoint;
                connection = null;
                LogCoordinatorFound(_logger, GroupId, found.NodeId, endPoint.Host, endPoint.Port);
                return;
            }
            catch (Exception e) when (e is UpstreamUnavailableException or KafkaProtocolException or IOException)
            {
                last = e;
                _bootstrapCursor++;
            }
            finally
            {
                if (connection is not null)
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        throw new CoordinatorLostException($"no bootstrap server of cluster '{_cluster.Name}' answered: {last?.Message}");
    }

    private ValueTask<UpstreamConnection> ConnectAsync(DnsEndPoint endPoint, string role, CancellationToken stop) =>
        UpstreamConnection.ConnectAsync(endPoint, $"{_cluster.Name} fleet {role} ({endPoint.Host}:{endPoint.Port})",
            _options.ConnectTimeout, _logger, stop, _cluster.UpstreamSecurity);

    private static bool SameEndPoint(DnsEndPoint a, DnsEndPoint b) =>
        a.Port == b.Port && string.Equals(a.Host, b.Host, StringComparison.OrdinalIgnoreCase);

    private async Task<GroupVersions> NegotiateVersionsAsync(UpstreamConnection connection, CancellationToken stop)
    {
        // ApiVersions v0: some brokers (librdkafka's mock) answer v3+ malformed.
        using var frame = await SendAsync(connection, ApiKey.ApiVersions, 0, new ApiVersionsRequest(), _options.SessionTimeout, stop).ConfigureAwait(false);
        var response = FrameCodec.DecodeResponse<ApiVersionsResponse>(frame, ApiKey.ApiVersions, 0);
        if (response.ErrorCode != 0)
        {
            throw new FleetGroupException("ApiVersions", (ErrorCode)response.ErrorCode);
        }
        return new GroupVersions(
            Pick(response, ApiKey.JoinGroup, MaxJoinGroupVersion),
            Pick(response, ApiKey.SyncGroup, MaxSyncGroupVersion),
            Pick(response, ApiKey.Heartbeat, MaxHeartbeatVersion),
            Pick(response, ApiKey.LeaveGroup, MaxLeaveGroupVersion));
    }

    private static short Pick(ApiVersionsResponse versions, ApiKey apiKey, short preferred)
    {
        foreach (var api in versions.ApiKeys)
        {
            if (api.ApiKeyValue == (short)apiKey)
            {
                var highest = Math.Min(api.MaxVersion, KafkaApis.HighestVersion(apiKey));
                if (api.MinVersion > highest)
                {
                    break;
                }
                return Math.Clamp(preferred, api.MinVersion, highest);
            }
        }
        throw new FleetGroupException(apiKey.ToString(), ErrorCode.UnsupportedVersion);
    }

    /// <summary>Joins (or rejoins) until this member holds a generation and its view is installed.</summary>
    private async Task JoinAsync(CancellationToken stop)
    {
        var pause = _options.RetryBackoffMin;
        while (true)
        {
            // A rejoin keeps the lease it has: the coordinator still counts this member until a session timeout after
            // the last heartbeat it received, so the lease (from that heartbeat's send time) runs out no later. Giving
            // it up here would hold every family's writes fleet-wide for the length of each rebalance.
            if (_current is null)
            {
                GiveUpLease("joining");
            }
            var join = new JoinGroupRequest
            {
                GroupId = GroupId,
                SessionTimeoutMs = (int)_options.SessionTimeout.TotalMilliseconds,
                RebalanceTimeoutMs = (int)_options.EffectiveRebalanceTimeout.TotalMilliseconds,
                MemberId = _memberId,
                ProtocolType = FleetProtocol.ProtocolType,
                Protocols = [new JoinGroupRequest.JoinGroupRequestProtocol { Name = FleetProtocol.ProtocolName, Metadata = _metadata }],
            };
            int generation;
            string leader;
            List<SyncGroupRequest.SyncGroupRequestAssignment> assignments = [];
            using (var frame = await SendAsync(ApiKey.JoinGroup, _versions.JoinGroup, join, _options.EffectiveRebalanceTimeout + RebalanceWaitSlack, stop).ConfigureAwait(false))
            {
                var joined = Decode<JoinGroupResponse>(frame, ApiKey.JoinGroup, _versions.JoinGroup, out var error);
                switch (error)
                {
                    case ErrorCode.None:
                        break;
                    case ErrorCode.MemberIdRequired when joined is not null:
                        // KIP-394: join again at once with the member id the coordinator assigned.
                        _memberId = joined.MemberId;
                        continue;
                    case ErrorCode.UnknownMemberId or ErrorCode.FencedInstanceId:
                        ForgetMember(error);
                        continue;
                    case ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration:
                        await Task.Delay(NextPause(ref pause), _time, stop).ConfigureAwait(false);
                        continue;
                    case ErrorCode.NotCoordinator or ErrorCode.CoordinatorNotAvailable or ErrorCode.CoordinatorLoadInProgress:
                        throw new CoordinatorLostException($"JoinGroup answered {error}");
                    default:
                        throw new FleetGroupException("JoinGroup", error);
                }
                _memberId = joined!.MemberId;
                generation = joined.GenerationId;
                leader = joined.Leader;
                if (leader == _memberId)
                {
                    // The leader alone learns every member's metadata; it hands the whole list to everyone.
                    var members = new List<FleetMember>(joined.Members.Count);
                    foreach (var member in joined.Members)
                    {
                        var info = FleetProtocol.TryDecodeMetadata(member.Metadata.Span);
                        if (info is null)
                        {
                            LogUnreadableMetadata(_logger, GroupId, member.MemberId);
                            info = new FleetInstanceInfo("", "", "", "");
                        }
                        members.Add(new FleetMember(member.MemberId, info.InstanceId, info.AdvertisedBootstrap, info.AdminAddress, info.Version));
                    }
                    members.Sort(static (a, b) =>
                    {
                        var byInstance = string.CompareOrdinal(a.InstanceId, b.InstanceId);
                        return byInstance != 0 ? byInstance : string.CompareOrdinal(a.MemberId, b.MemberId);
                    });
                    var assignment = FleetProtocol.EncodeAssignment(generation, leader, members);
                    foreach (var member in members)
                    {
                        assignments.Add(new SyncGroupRequest.SyncGroupRequestAssignment { MemberId = member.MemberId, Assignment = assignment });
                    }
                }
            }
            if (assignments.Count > 0 && _options.LeaderSyncDelay > TimeSpan.Zero)
            {
                await Task.Delay(_options.LeaderSyncDelay, _time, stop).ConfigureAwait(false);
            }

            var sync = new SyncGroupRequest
            {
                GroupId = GroupId,
                GenerationId = generation,
                MemberId = _memberId,
                ProtocolType = FleetProtocol.ProtocolType,
                ProtocolName = FleetProtocol.ProtocolName,
                Assignments = assignments,
            };
            var sentAt = _time.GetTimestamp();
            var sentAtWall = _time.GetUtcNow();
            FleetView? view = null;
            using (var frame = await SendAsync(ApiKey.SyncGroup, _versions.SyncGroup, sync, _options.EffectiveRebalanceTimeout + RebalanceWaitSlack, stop).ConfigureAwait(false))
            {
                var synced = Decode<SyncGroupResponse>(frame, ApiKey.SyncGroup, _versions.SyncGroup, out var error);
                switch (error)
                {
                    case ErrorCode.None:
                        var decoded = FleetProtocol.TryDecodeAssignment(synced!.Assignment.Span);
                        if (decoded is { } list && list.Generation == generation && list.Leader == leader)
                        {
                            view = new FleetView(generation, leader, _memberId, list.Members);
                        }
                        break;
                    case ErrorCode.UnknownMemberId or ErrorCode.FencedInstanceId:
                        ForgetMember(error);
                        continue;
                    case ErrorCode.NotCoordinator or ErrorCode.CoordinatorNotAvailable or ErrorCode.CoordinatorLoadInProgress:
                        throw new CoordinatorLostException($"SyncGroup answered {error}");
                    default:
                        // REBALANCE_IN_PROGRESS and ILLEGAL_GENERATION: the generation is over already. Anything else
                        // (the mock's INVALID_REQUEST to a follower that synced after the leader): form another.
                        LogSyncFailed(_logger, GroupId, generation, error);
                        await Task.Delay(NextPause(ref pause), _time, stop).ConfigureAwait(false);
                        continue;
                }
            }
            if (view?.Self is null)
            {
                LogUnreadableAssignment(_logger, GroupId, generation);
                await Task.Delay(NextPause(ref pause), _time, stop).ConfigureAwait(false);
                continue;
            }
            _generation = generation;
            Install(view, sentAt, sentAtWall);
            return;
        }
    }

    private TimeSpan NextPause(ref TimeSpan pause)
    {
        var current = pause;
        pause = pause * 2 > _options.RetryBackoffMax ? _options.RetryBackoffMax : pause * 2;
        return current;
    }

    /// <summary>Heartbeats the generation held until the member must rejoin.</summary>
    private async Task HeartbeatAsync(bool immediately, CancellationToken stop)
    {
        var interval = _options.EffectiveHeartbeatInterval;
        var lastSent = immediately ? _time.GetTimestamp() - (long)(interval.TotalSeconds * _time.TimestampFrequency) : _time.GetTimestamp();
        while (true)
        {
            var wait = interval - _time.GetElapsedTime(lastSent);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, _time, stop).ConfigureAwait(false);
            }
            var heartbeat = new HeartbeatRequest { GroupId = GroupId, GenerationId = _generation, MemberId = _memberId };
            lastSent = _time.GetTimestamp();
            var sentAtWall = _time.GetUtcNow();
            using var frame = await SendAsync(ApiKey.Heartbeat, _versions.Heartbeat, heartbeat, _options.SessionTimeout, stop).ConfigureAwait(false);
            Decode<HeartbeatResponse>(frame, ApiKey.Heartbeat, _versions.Heartbeat, out var error);
            switch (error)
            {
                case ErrorCode.None:
                    Renew(_generation, lastSent, sentAtWall);
                    continue;
                case ErrorCode.RebalanceInProgress:
                    LogRejoining(_logger, GroupId, "the group is rebalancing");
                    _generation = -1;
                    return;
                case ErrorCode.IllegalGeneration:
                    GiveUpLease($"generation {_generation} is over");
                    LogRejoining(_logger, GroupId, $"generation {_generation} is over");
                    _generation = -1;
                    return;
                case ErrorCode.UnknownMemberId or ErrorCode.FencedInstanceId:
                    ForgetMember(error);
                    return;
                case ErrorCode.NotCoordinator or ErrorCode.CoordinatorNotAvailable or ErrorCode.CoordinatorLoadInProgress:
                    throw new CoordinatorLostException($"Heartbeat answered {error}");
                default:
                    throw new FleetGroupException("Heartbeat", error);
            }
        }
    }

    /// <summary>The coordinator no longer knows this member: give the lease up and join afresh.</summary>
    private void ForgetMember(ErrorCode error)
    {
        GiveUpLease($"the coordinator answered {error}");
        LogMemberForgotten(_logger, GroupId, _memberId, error);
        _memberId = "";
        _generation = -1;
    }

    private async Task LeaveAsync()
    {
        UpstreamConnection? own = null;
        try
        {
            var connection = _coordinator;
            if (connection is not { IsHealthy: true } || _requestOutstanding)
            {
                // The old connection may be held by an unanswered JoinGroup or SyncGroup (brokers answer a
                // connection's requests in order): leave over a new one.
                if (_coordinatorEndPoint is null)
                {
                    return;
                }
                using var timeout = new CancellationTokenSource(_options.ConnectTimeout);
                connection = own = await ConnectAsync(_coordinatorEndPoint, "coordinator", timeout.Token).ConfigureAwait(false);
            }
            var version = _versions.LeaveGroup;
            var leave = new LeaveGroupRequest { GroupId = GroupId, MemberId = _memberId };
            if (version >= 3)
            {
                leave.Members = [new LeaveGroupRequest.MemberIdentity { MemberId = _memberId, Reason = "instance stopping" }];
            }
            using var frame = await SendAsync(connection, ApiKey.LeaveGroup, version, leave, _options.ConnectTimeout, CancellationToken.None).ConfigureAwait(false);
            Decode<LeaveGroupResponse>(frame, ApiKey.LeaveGroup, version, out var error);
            if (error == ErrorCode.None)
            {
                LogLeft(_logger, GroupId, _memberId);
            }
            else
            {
                LogLeaveFailed(_logger, GroupId, error.ToString(), _memberId);
            }
        }
        catch (Exception e) when (e is UpstreamUnavailableException or KafkaProtocolException or IOException or OperationCanceledException)
        {
            LogLeaveFailed(_logger, GroupId, e.Message, _memberId);
        }
        finally
        {
            if (own is not null)
            {
                await own.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task DropCoordinatorAsync()
    {
        var connection = _coordinator;
        _coordinator = null;
        _requestOutstanding = false;
        if (connection is not null)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<PooledFrame> SendAsync(ApiKey apiKey, short version, IKafkaMessage request, TimeSpan timeout, CancellationToken stop)
    {
        var connection = _coordinator ?? throw new CoordinatorLostException("no connection to the coordinator");
        _requestOutstanding = true;
        var response = await SendAsync(connection, apiKey, version, request, timeout, stop).ConfigureAwait(false);
        _requestOutstanding = false;
        return response;
    }

    private async Task<PooledFrame> SendAsync(UpstreamConnection connection, ApiKey apiKey, short version, IKafkaMessage request, TimeSpan timeout, CancellationToken stop)
    {
        PendingResponse? pending;
        using (var frame = FrameCodec.EncodeRequest(apiKey, version, 0, ClientId, request))
        {
            pending = await connection.SendAsync(frame.Memory, expectResponse: true, stop).ConfigureAwait(false);
        }
        return await pending!.WaitAsync(timeout, stop).ConfigureAwait(false);
    }

    /// <summary>
    /// Decodes an answer and its error code. librdkafka's mock cluster writes null into non-nullable strings and
    /// bytes of its error answers (JoinGroup, SyncGroup, FindCoordinator), which the codec rejects: the error code,
    /// which comes before them, is read on its own then, and the message is null.
    /// </summary>
    private static T? Decode<T>(PooledFrame frame, ApiKey apiKey, short version, out ErrorCode error) where T : class, IKafkaMessage, new()
    {
        try
        {
            var message = FrameCodec.DecodeResponse<T>(frame, apiKey, version);
            error = (ErrorCode)ErrorCodeOf(message);
            return message;
        }
        catch (KafkaProtocolException)
        {
            error = (ErrorCode)PeekErrorCode(frame, apiKey, version);
            if (error == ErrorCode.None)
            {
                throw;
            }
            return null;
        }
    }

    private static short ErrorCodeOf(IKafkaMessage message) => message switch
    {
        FindCoordinatorResponse m => m.ErrorCode,
        JoinGroupResponse m => m.ErrorCode,
        SyncGroupResponse m => m.ErrorCode,
        HeartbeatResponse m => m.ErrorCode,
        LeaveGroupResponse m => m.ErrorCode,
        _ => throw new ArgumentException($"No error code for {message.GetType().Name}.", nameof(message)),
    };

    private static short PeekErrorCode(PooledFrame frame, ApiKey apiKey, short version)
    {
        var reader = new KafkaReader((ReadOnlyMemory<byte>)frame.Memory);
        var header = new ResponseHeader();
        header.Read(ref reader, KafkaApis.ResponseHeaderVersion(apiKey, version));
        // ThrottleTimeMs comes first from JoinGroup v2 and the others' v1.
        if (version >= (apiKey == ApiKey.JoinGroup ? 2 : 1))
        {
            reader.ReadInt32();
        }
        return reader.ReadInt16();
    }

    private void Install(FleetView view, long sentAt, DateTimeOffset sentAtWall)
    {
        TaskCompletionSource<FleetView> waiters;
        bool changed;
        lock (_lock)
        {
            _current = view;
            _leaseGeneration = view.Generation;
            Volatile.Write(ref _leaseDeadline, long.MinValue);
            ExtendLeaseLocked(sentAt, sentAtWall);
            changed = EvaluateLeaseLocked(null);
            waiters = _nextView;
            _nextView = NewSource<FleetView>();
        }
        LogViewInstalled(_logger, GroupId, view.Generation, view.Leader?.InstanceId ?? view.LeaderMemberId,
            string.Join(", ", view.Members.Select(m => m.InstanceId)), view.SelfMemberId);
        if (changed)
        {
            NotifyRenewal();
        }
        if (ViewChanged is { } handlers)
        {
            foreach (var handler in handlers.GetInvocationList())
            {
                try
                {
                    ((Action<FleetView>)handler)(view);
                }
                catch (Exception e)
                {
                    LogHandlerFailed(_logger, GroupId, nameof(ViewChanged), e);
                }
            }
        }
        // After the handlers: whoever awaits NextViewAsync resumes once they have seen the view.
        waiters.TrySetResult(view);
    }

    private void Renew(int generation, long sentAt, DateTimeOffset sentAtWall)
    {
        bool changed;
        lock (_lock)
        {
            if (_leaseGeneration != generation)
            {
                return;
            }
            ExtendLeaseLocked(sentAt, sentAtWall);
            changed = EvaluateLeaseLocked(null);
        }
        if (changed)
        {
            NotifyRenewal();
        }
    }

    private void ExtendLeaseLocked(long sentAt, DateTimeOffset sentAtWall)
    {
        var deadline = sentAt + (long)(_leaseLength.TotalSeconds * _time.TimestampFrequency);
        if (deadline <= _leaseDeadline)
        {
            return;
        }
        Volatile.Write(ref _leaseDeadline, deadline);
        _renewedUntil = sentAtWall + _leaseLength;
        var due = _time.GetElapsedTime(_time.GetTimestamp(), deadline);
        _leaseTimer.Change(due > TimeSpan.Zero ? due : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Ends the lease now (the member asks for a new generation, is out, or leaves).</summary>
    private void GiveUpLease(string reason)
    {
        bool changed;
        lock (_lock)
        {
            _leaseGeneration = -1;
            var now = _time.GetTimestamp();
            if (_leaseDeadline > now)
            {
                Volatile.Write(ref _leaseDeadline, now);
                var nowWall = _time.GetUtcNow();
                if (_renewedUntil > nowWall)
                {
                    _renewedUntil = nowWall;
                }
            }
            changed = EvaluateLeaseLocked(reason);
        }
        if (changed)
        {
            NotifyRenewal();
        }
    }

    private void OnLeaseTimer()
    {
        bool changed;
        lock (_lock)
        {
            changed = EvaluateLeaseLocked(null);
            if (_renewed)
            {
                // Fired early (a renewal moved the deadline meanwhile, or timer granularity): wait for the rest.
                var due = _time.GetElapsedTime(_time.GetTimestamp(), _leaseDeadline);
                _leaseTimer.Change(due > TimeSpan.Zero ? due : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
            }
        }
        if (changed)
        {
            NotifyRenewal();
        }
    }

    /// <summary>Brings <see cref="_renewed"/> and the signals up to date with the clock; true when it changed.</summary>
    private bool EvaluateLeaseLocked(string? reason)
    {
        var renewed = _time.GetTimestamp() < _leaseDeadline;
        if (renewed == _renewed)
        {
            return false;
        }
        _renewed = renewed;
        if (renewed)
        {
            _renewedSignal.TrySetResult();
            if (_fencedSignal.Task.IsCompleted)
            {
                _fencedSignal = NewSource();
            }
        }
        else
        {
            _fencedSignal.TrySetResult();
            if (_renewedSignal.Task.IsCompleted)
            {
                _renewedSignal = NewSource();
            }
            if (reason is null)
            {
                LogLeaseExpired(_logger, GroupId, _renewedUntil);
            }
            else
            {
                LogLeaseGivenUp(_logger, GroupId, reason);
            }
        }
        return true;
    }

    private void NotifyRenewal()
    {
        lock (_notifyLock)
        {
            bool renewed;
            lock (_lock)
            {
                renewed = _renewed;
            }
            if (renewed == _notifiedRenewed)
            {
                return;
            }
            _notifiedRenewed = renewed;
            if (RenewalChanged is not { } handlers)
            {
                return;
            }
            foreach (var handler in handlers.GetInvocationList())
            {
                try
                {
                    ((Action<bool>)handler)(renewed);
                }
                catch (Exception e)
                {
                    LogHandlerFailed(_logger, GroupId, nameof(RenewalChanged), e);
                }
            }
        }
    }

    private static TaskCompletionSource NewSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static TaskCompletionSource<T> NewSource<T>() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The group API versions agreed with the coordinator.</summary>
    private readonly record struct GroupVersions(short JoinGroup, short SyncGroup, short Heartbeat, short LeaveGroup);

    /// <summary>The coordinator moved, is loading or cannot be reached: look it up again after a backoff.</summary>
    private sealed class CoordinatorLostException(string message) : Exception(message);

    /// <summary>The coordinator refused a request for a reason a retry may outlast (authorization, configuration).</summary>
    private sealed class FleetGroupException(string api, ErrorCode error) : Exception($"{api} answered {error}")
    {
        public string Api { get; } = api;
        public ErrorCode Error { get; } = error;
    }

    [LoggerMessage(EventId = 4200, Level = LogLevel.Information, Message = "Fleet group {Group}: generation {Generation} formed, leader {Leader}, members [{Members}]; this instance is member {MemberId}")]
    private static partial void LogViewInstalled(ILogger logger, string group, int generation, string leader, string members, string memberId);

    [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "Fleet group {Group}: rejoining ({Reason})")]
    private static partial void LogRejoining(ILogger logger, string group, string reason);

    [LoggerMessage(EventId = 4202, Level = LogLevel.Warning, Message = "Fleet group {Group}: coordinator unavailable ({Reason}); retrying in {DelayMs} ms")]
    private static partial void LogCoordinatorUnavailable(ILogger logger, string group, string reason, long delayMs);

    [LoggerMessage(EventId = 4203, Level = LogLevel.Warning, Message = "Fleet group {Group}: fenced, the lease ran out at {RenewedUntil:o} without a heartbeat answered")]
    private static partial void LogLeaseExpired(ILogger logger, string group, DateTimeOffset renewedUntil);

    [LoggerMessage(EventId = 4204, Level = LogLevel.Information, Message = "Fleet group {Group}: lease given up ({Reason})")]
    private static partial void LogLeaseGivenUp(ILogger logger, string group, string reason);

    [LoggerMessage(EventId = 4205, Level = LogLevel.Warning, Message = "Fleet group {Group}: the coordinator no longer knows member {MemberId} ({Error}); joining as a new member")]
    private static partial void LogMemberForgotten(ILogger logger, string group, string memberId, ErrorCode error);

    [LoggerMessage(EventId = 4206, Level = LogLevel.Error, Message = "Fleet group {Group}: {Api} refused with {Error}; retrying in {DelayMs} ms")]
    private static partial void LogRefused(ILogger logger, string group, string api, ErrorCode error, long delayMs);

    [LoggerMessage(EventId = 4207, Level = LogLevel.Information, Message = "Fleet group {Group}: left the group as member {MemberId}")]
    private static partial void LogLeft(ILogger logger, string group, string memberId);

    [LoggerMessage(EventId = 4208, Level = LogLevel.Warning, Message = "Fleet group {Group}: LeaveGroup failed ({Reason}); the coordinator drops member {MemberId} once its session times out")]
    private static partial void LogLeaveFailed(ILogger logger, string group, string reason, string memberId);

    [LoggerMessage(EventId = 4209, Level = LogLevel.Error, Message = "Fleet group {Group}: a {Event} handler threw")]
    private static partial void LogHandlerFailed(ILogger logger, string group, string @event, Exception exception);

    [LoggerMessage(EventId = 4210, Level = LogLevel.Warning, Message = "Fleet group {Group}: member {MemberId} joined with metadata that is not a switchback v1 instance description")]
    private static partial void LogUnreadableMetadata(ILogger logger, string group, string memberId);

    [LoggerMessage(EventId = 4211, Level = LogLevel.Warning, Message = "Fleet group {Group}: the assignment of generation {Generation} is not a member list naming this member; rejoining")]
    private static partial void LogUnreadableAssignment(ILogger logger, string group, int generation);

    [LoggerMessage(EventId = 4212, Level = LogLevel.Debug, Message = "Fleet group {Group}: coordinator is node {Node} at {Host}:{Port}")]
    private static partial void LogCoordinatorFound(ILogger logger, string group, int node, string host, int port);

    [LoggerMessage(EventId = 4213, Level = LogLevel.Information, Message = "Fleet group {Group}: SyncGroup of generation {Generation} answered {Error}; rejoining")]
    private static partial void LogSyncFailed(ILogger logger, string group, int generation, ErrorCode error);

    [LoggerMessage(EventId = 4214, Level = LogLevel.Error, Message = "Fleet group {Group}: unexpected failure; retrying in {DelayMs} ms")]
    private static partial void LogUnexpected(ILogger logger, string group, long delayMs, Exception exception);
}
