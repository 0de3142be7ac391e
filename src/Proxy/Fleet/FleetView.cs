namespace Switchback.Proxy.Fleet;

/// <summary>What one proxy instance tells the rest of the fleet about itself (the metadata of its JoinGroup).</summary>
/// <param name="InstanceId">The instance's name, unique within the fleet and stable across its restarts.</param>
/// <param name="AdvertisedBootstrap">The bootstrap address (host:port) clients use for this instance.</param>
/// <param name="AdminAddress">The base address of its admin API.</param>
/// <param name="Version">The Switchback version it runs.</param>
public sealed record FleetInstanceInfo(string InstanceId, string AdvertisedBootstrap, string AdminAddress, string Version);

/// <summary>One member of the fleet in a generation: its group member id and what its instance announced.</summary>
/// <param name="MemberId">The member id the group coordinator gave it (a new one each time it joins afresh).</param>
/// <param name="InstanceId">See <see cref="FleetInstanceInfo.InstanceId"/>.</param>
/// <param name="AdvertisedBootstrap">See <see cref="FleetInstanceInfo.AdvertisedBootstrap"/>.</param>
/// <param name="AdminAddress">See <see cref="FleetInstanceInfo.AdminAddress"/>.</param>
/// <param name="Version">See <see cref="FleetInstanceInfo.Version"/>.</param>
public sealed record FleetMember(string MemberId, string InstanceId, string AdvertisedBootstrap, string AdminAddress, string Version);

/// <summary>
/// The fleet as one completed rebalance left it, seen by one member: an immutable snapshot. The leader of the
/// generation sends every member the same member list, so all members of a generation hold the same view
/// (<see cref="SelfMemberId"/> aside).
/// </summary>
/// <remarks>
/// An instance restarted before its previous incarnation's session expired can appear twice (two member ids, one
/// instance id) until the coordinator expires the old member and the group rebalances.
/// </remarks>
public sealed class FleetView
{
    /// <summary>Creates a view; <paramref name="members"/> are kept in the order given.</summary>
    public FleetView(int generation, string leaderMemberId, string selfMemberId, IReadOnlyList<FleetMember> members)
    {
        ArgumentNullException.ThrowIfNull(leaderMemberId);
        ArgumentNullException.ThrowIfNull(selfMemberId);
        ArgumentNullException.ThrowIfNull(members);
        Generation = generation;
        LeaderMemberId = leaderMemberId;
        SelfMemberId = selfMemberId;
        Members = [.. members];
    }

    /// <summary>The group generation this view belongs to.</summary>
    public int Generation { get; }

    /// <summary>The member id of the generation's leader.</summary>
    public string LeaderMemberId { get; }

    /// <summary>This member's own member id in the generation.</summary>
    public string SelfMemberId { get; }

    /// <summary>Every member of the generation, ordered by instance id, then member id.</summary>
    public IReadOnlyList<FleetMember> Members { get; }

    /// <summary>True when this member leads the generation.</summary>
    public bool IsLeader => string.Equals(LeaderMemberId, SelfMemberId, StringComparison.Ordinal);

    /// <summary>The leader's entry, or null if the leader's list left it out (it never does).</summary>
    public FleetMember? Leader => Find(LeaderMemberId);

    /// <summary>This member's entry, or null if the leader's list left it out (it never does).</summary>
    public FleetMember? Self => Find(SelfMemberId);

    /// <summary>The member with <paramref name="memberId"/>, or null.</summary>
    public FleetMember? Find(string memberId)
    {
        foreach (var member in Members)
        {
            if (string.Equals(member.MemberId, memberId, StringComparison.Ordinal))
            {
                return member;
            }
        }
        return null;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"generation {Generation}, leader {Leader?.InstanceId ?? LeaderMemberId}, members [{string.Join(", ", Members.Select(m => m.InstanceId))}]";
}
