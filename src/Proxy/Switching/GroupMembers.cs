using System.Collections.Concurrent;

namespace Switchback.Proxy.Switching;

/// <summary>How a consumer group's members coordinate: the classic JoinGroup/SyncGroup protocol or KIP-848 heartbeats.</summary>
public enum GroupProtocol
{
    /// <summary>No member seen through the proxy yet.</summary>
    Unknown,

    /// <summary>JoinGroup, SyncGroup, Heartbeat, LeaveGroup.</summary>
    Classic,

    /// <summary>ConsumerGroupHeartbeat (KIP-848).</summary>
    Consumer,
}

/// <summary>
/// One member of a group on one cluster, as the proxy saw it in the coordinator's answers: its member id, its group
/// instance id (static membership), the generation (classic) or member epoch (KIP-848) it was given, and its protocol.
/// </summary>
public sealed record GroupMember(string MemberId, string? InstanceId, int Generation, GroupProtocol Protocol);

/// <summary>
/// The members of each consumer group on each cluster, learned from the JoinGroup and ConsumerGroupHeartbeat answers
/// the proxy relays. A read switch uses it to remove the members it moved away from a group on the old cluster (their
/// clients rejoin on the new one under new member ids), and, before writing offsets on a cluster, to remove members
/// left there by an earlier stint of the group: a broker accepts offsets without a member only for an empty group.
/// </summary>
/// <remarks>
/// A classic group's leader receives the whole member list with each generation, which then replaces what was known;
/// other answers add or refresh one member. KIP-848 members are dropped when they leave or are fenced. Bounded: at
/// most <see cref="MaxGroups"/> groups and <see cref="MaxMembersPerGroup"/> members of a group per cluster are kept.
/// </remarks>
public sealed class GroupMembers
{
    internal const int MaxGroups = 100_000;
    internal const int MaxMembersPerGroup = 10_000;
    private const int MaxMovedGenerations = 1_000;

    private readonly ConcurrentDictionary<string, GroupEntry> _groups = new(StringComparer.Ordinal);

    /// <summary>The protocol the group's members were last seen using through the proxy.</summary>
    public GroupProtocol ProtocolOf(string group) => _groups.TryGetValue(group, out var entry) ? entry.Protocol : GroupProtocol.Unknown;

    /// <summary>The assignment protocol a classic group's members last agreed on (e.g. <c>range</c>), or null.</summary>
    public string? ClassicProtocolNameOf(string group) => _groups.TryGetValue(group, out var entry) ? entry.ClassicProtocolName : null;

    /// <summary>The largest session timeout a classic member of the group joined with through the proxy, or null.</summary>
    public int? ClassicSessionTimeoutMsOf(string group) => _groups.TryGetValue(group, out var entry) && entry.ClassicSessionTimeoutMs > 0
        ? entry.ClassicSessionTimeoutMs
        : null;

    /// <summary>
    /// The read route of <paramref name="groups"/> moved away from <paramref name="cluster"/>: the members they had
    /// there are remembered as moved, since their clients keep naming that membership until they notice and rejoin.
    /// </summary>
    public void ReadsMovedAway(string cluster, IEnumerable<string> groups)
    {
        foreach (var group in groups)
        {
            if (!_groups.TryGetValue(group, out var entry))
            {
                continue;
            }
            lock (entry.Gate)
            {
                if (!entry.Clusters.TryGetValue(cluster, out var members))
                {
                    continue;
                }
                if (entry.Moved.Count + members.Count > MaxMembersPerGroup)
                {
                    entry.Moved.Clear(); // bounded: the oldest moves are the least likely to be named again
                }
                entry.Moved.UnionWith(members.Keys);
                if (entry.MovedGenerations.Count >= MaxMovedGenerations)
                {
                    entry.MovedGenerations.Clear();
                }
                entry.MovedGenerations.UnionWith(members.Values.Select(m => m.Generation));
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="memberId"/> at <paramref name="generation"/> is a membership of <paramref name="group"/>
    /// that a read switch moved away from its cluster, rather than the member's current one on
    /// <paramref name="cluster"/>: its generation or member epoch means nothing there. (A member id can be the same on
    /// both clusters: KIP-848 members choose theirs, and a coordinator may hand out an id it gave before; the
    /// generation tells them apart.)
    /// </summary>
    public bool IsMovedMember(string group, string memberId, int generation, string cluster)
    {
        if (!_groups.TryGetValue(group, out var entry))
        {
            return false;
        }
        lock (entry.Gate)
        {
            return entry.Moved.Contains(memberId)
                && !(entry.Clusters.TryGetValue(cluster, out var members) && members.TryGetValue(memberId, out var current) && current.Generation == generation);
        }
    }

    /// <summary>
    /// Whether a commit without a member id at <paramref name="generation"/> names a membership a read switch moved away:
    /// a classic client that lost its membership (librdkafka clears its member id as it rejoins) still sends the
    /// generation it had, which was handed out on the cluster the group left. True when that generation was one of a
    /// moved membership and no member the proxy knows on <paramref name="cluster"/> has it.
    /// </summary>
    public bool IsMovedGeneration(string group, int generation, string cluster)
    {
        if (generation < 0 || !_groups.TryGetValue(group, out var entry))
        {
            return false;
        }
        lock (entry.Gate)
        {
            return entry.MovedGenerations.Contains(generation)
                && !(entry.Clusters.TryGetValue(cluster, out var members) && members.Values.Any(m => m.Generation == generation));
        }
    }

    /// <summary>The members of <paramref name="group"/> on <paramref name="cluster"/> the proxy knows of.</summary>
    public IReadOnlyList<GroupMember> On(string cluster, string group)
    {
        if (!_groups.TryGetValue(group, out var entry))
        {
            return [];
        }
        lock (entry.Gate)
        {
            return entry.Clusters.TryGetValue(cluster, out var members) ? [.. members.Values] : [];
        }
    }

    /// <summary>
    /// A classic JoinGroup was answered without error: the member joined generation <paramref name="generation"/>,
    /// whose assignment protocol is <paramref name="protocolName"/>. <paramref name="generationMembers"/> is the full
    /// member list, which only the leader receives (null otherwise). <paramref name="sessionTimeoutMs"/> is the one the
    /// member asked for.
    /// </summary>
    public void ClassicJoined(string cluster, string group, string memberId, string? instanceId, int generation, string? protocolName,
        IReadOnlyCollection<(string MemberId, string? InstanceId)>? generationMembers, int sessionTimeoutMs = 0)
    {
        if (Entry(group) is not { } entry)
        {
            return;
        }
        lock (entry.Gate)
        {
            entry.Protocol = GroupProtocol.Classic;
            entry.ClassicProtocolName = protocolName ?? entry.ClassicProtocolName;
            entry.ClassicSessionTimeoutMs = Math.Max(entry.ClassicSessionTimeoutMs, sessionTimeoutMs);
            var members = entry.MembersOn(cluster);
            if (generationMembers is { Count: > 0 })
            {
                // The coordinator's own list of this generation: members not in it have left or timed out.
                members.Clear();
                foreach (var (id, instance) in generationMembers.Take(MaxMembersPerGroup))
                {
                    members[id] = new GroupMember(id, instance, generation, GroupProtocol.Classic);
                }
            }
            if (members.Count < MaxMembersPerGroup || members.ContainsKey(memberId))
            {
                members[memberId] = new GroupMember(memberId, instanceId, generation, GroupProtocol.Classic);
            }
        }
    }

    /// <summary>A KIP-848 member is in the group at <paramref name="memberEpoch"/> (a heartbeat answered without error).</summary>
    public void ConsumerHeartbeat(string cluster, string group, string memberId, string? instanceId, int memberEpoch)
    {
        if (Entry(group) is not { } entry)
        {
            return;
        }
        lock (entry.Gate)
        {
            entry.Protocol = GroupProtocol.Consumer;
            var members = entry.MembersOn(cluster);
            if (members.TryGetValue(memberId, out var known))
            {
                // Heartbeats after the first leave the instance id out when it did not change.
                members[memberId] = new GroupMember(memberId, instanceId ?? known.InstanceId, memberEpoch, GroupProtocol.Consumer);
            }
            else if (members.Count < MaxMembersPerGroup)
            {
                members[memberId] = new GroupMember(memberId, instanceId, memberEpoch, GroupProtocol.Consumer);
            }
        }
    }

    /// <summary>The members are no longer in the group on <paramref name="cluster"/> (they left, were fenced or removed).</summary>
    public void Gone(string cluster, string group, IEnumerable<string> memberIds)
    {
        if (!_groups.TryGetValue(group, out var entry))
        {
            return;
        }
        lock (entry.Gate)
        {
            if (entry.Clusters.TryGetValue(cluster, out var members))
            {
                foreach (var id in memberIds)
                {
                    members.Remove(id);
                }
            }
        }
    }

    private GroupEntry? Entry(string group)
    {
        if (_groups.TryGetValue(group, out var entry))
        {
            return entry;
        }
        return _groups.Count < MaxGroups ? _groups.GetOrAdd(group, static _ => new GroupEntry()) : null;
    }

    private sealed class GroupEntry
    {
        public readonly Lock Gate = new();
        public GroupProtocol Protocol;
        public string? ClassicProtocolName;
        public int ClassicSessionTimeoutMs;
        public readonly Dictionary<string, Dictionary<string, GroupMember>> Clusters = new(StringComparer.Ordinal);

        // Member ids a read switch moved away from their cluster (see ReadsMovedAway).
        public readonly HashSet<string> Moved = new(StringComparer.Ordinal);

        // Generations those moved memberships had (see IsMovedGeneration).
        public readonly HashSet<int> MovedGenerations = [];

        public Dictionary<string, GroupMember> MembersOn(string cluster)
        {
            if (!Clusters.TryGetValue(cluster, out var members))
            {
                Clusters[cluster] = members = new Dictionary<string, GroupMember>(StringComparer.Ordinal);
            }
            return members;
        }
    }
}
