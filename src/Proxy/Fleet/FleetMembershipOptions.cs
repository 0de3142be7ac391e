namespace Switchback.Proxy.Fleet;

/// <summary>Timing of an instance's membership in the fleet group (see <see cref="FleetMembership"/>).</summary>
public sealed record FleetMembershipOptions
{
    /// <summary>How long the coordinator keeps a member that sends no heartbeat (JoinGroup <c>session.timeout.ms</c>).</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long the coordinator waits for members to rejoin in a rebalance (JoinGroup <c>rebalance.timeout.ms</c>);
    /// null for the larger of 60 s and <see cref="SessionTimeout"/>. At least <see cref="SessionTimeout"/>: a
    /// rebalance must not drop a member sooner than its session would (see <see cref="FleetMembership.RenewedUntil"/>).
    /// </summary>
    public TimeSpan? RebalanceTimeout { get; init; }

    /// <summary>Time between heartbeats; null for a third of <see cref="SessionTimeout"/>.</summary>
    public TimeSpan? HeartbeatInterval { get; init; }

    /// <summary>Connect timeout (TCP plus TLS/SASL) for connections to the cluster.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>First wait before retrying after a lost coordinator or a refused request; doubles up to <see cref="RetryBackoffMax"/>.</summary>
    public TimeSpan RetryBackoffMin { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest wait between retries.</summary>
    public TimeSpan RetryBackoffMax { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long the leader waits after its JoinGroup answer before sending the assignment. A broker answers a
    /// follower's SyncGroup that arrives after the leader's from the stored assignment; librdkafka's mock cluster
    /// fails it (INVALID_REQUEST) and the generation has to be formed again, so followers get a head start.
    /// </summary>
    public TimeSpan LeaderSyncDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The rebalance timeout in force.</summary>
    public TimeSpan EffectiveRebalanceTimeout => RebalanceTimeout ?? (SessionTimeout > TimeSpan.FromSeconds(60) ? SessionTimeout : TimeSpan.FromSeconds(60));

    /// <summary>The heartbeat interval in force.</summary>
    public TimeSpan EffectiveHeartbeatInterval => HeartbeatInterval ?? SessionTimeout / 3;

    /// <summary>
    /// What the lease keeps back from the session timeout against clock-rate differences and scheduling delays:
    /// a tenth of it, at least 500 ms, at most half of it.
    /// </summary>
    public TimeSpan RenewalMargin
    {
        get
        {
            var margin = SessionTimeout / 10;
            if (margin < TimeSpan.FromMilliseconds(500))
            {
                margin = TimeSpan.FromMilliseconds(500);
            }
            return margin > SessionTimeout / 2 ? SessionTimeout / 2 : margin;
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting that is out of range.</summary>
    public void Validate()
    {
        if (SessionTimeout < TimeSpan.FromSeconds(1) || SessionTimeout.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentException($"SessionTimeout must be between 1 s and {int.MaxValue} ms (is {SessionTimeout}).");
        }
        if (EffectiveRebalanceTimeout < SessionTimeout || EffectiveRebalanceTimeout.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentException($"RebalanceTimeout must be at least SessionTimeout and at most {int.MaxValue} ms (is {EffectiveRebalanceTimeout}).");
        }
        if (EffectiveHeartbeatInterval <= TimeSpan.Zero || EffectiveHeartbeatInterval >= SessionTimeout - RenewalMargin)
        {
            throw new ArgumentException(
                $"HeartbeatInterval must be positive and shorter than SessionTimeout less the renewal margin ({SessionTimeout - RenewalMargin}); is {EffectiveHeartbeatInterval}.");
        }
        if (ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"ConnectTimeout must be positive (is {ConnectTimeout}).");
        }
        if (RetryBackoffMin <= TimeSpan.Zero || RetryBackoffMax < RetryBackoffMin)
        {
            throw new ArgumentException($"RetryBackoffMin must be positive and RetryBackoffMax at least RetryBackoffMin (are {RetryBackoffMin}, {RetryBackoffMax}).");
        }
        if (LeaderSyncDelay < TimeSpan.Zero || LeaderSyncDelay >= SessionTimeout / 2)
        {
            throw new ArgumentException($"LeaderSyncDelay must be between 0 and half of SessionTimeout (is {LeaderSyncDelay}).");
        }
    }
}
