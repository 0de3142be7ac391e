using System.Collections.Concurrent;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Upstream;
using ApiKey = Switchback.Protocol.ApiKey;
using KafkaError = Switchback.Protocol.ErrorCode;

namespace Switchback.Proxy.Switching;

/// <summary>A partition whose offset a cluster refused, with its error.</summary>
public sealed record PartitionFailure(string Topic, int Partition, short ErrorCode)
{
    public string Error => KafkaErrorText.Name(ErrorCode);

    public override string ToString() => $"{Topic}[{Partition}] {Error}";
}

/// <summary>How writing one group's offsets on one cluster ended: written (and how), or why not.</summary>
public sealed record GroupOffsetsWritten(string Group, string Cluster, int Partitions, string? WrittenAs, int StaleMembersRemoved,
    IReadOnlyList<PartitionFailure> Failures, string? Reason)
{
    public bool Succeeded => Failures.Count == 0 && Reason is null;

    /// <summary>One sentence naming the group, the cluster, each refused partition with its error, and the reason.</summary>
    public string Describe()
    {
        var text = $"group '{Group}' on cluster '{Cluster}': ";
        return (Failures.Count, Reason) switch
        {
            (0, null) => text + "written",
            (0, { } reason) => text + reason,
            (_, null) => text + string.Join(", ", Failures),
            (_, { } reason) => $"{text}{string.Join(", ", Failures)}, because {reason}",
        };
    }
}

/// <summary>How removing a group's members on one cluster ended.</summary>
public sealed record GroupMembersRemoved(string Group, string Cluster, int Removed, int AlreadyGone, IReadOnlyList<string> Failures);

/// <summary>What each group's offset write is waiting for, so that a switch that runs out of time can say so.</summary>
public sealed class GroupWriteProgress
{
    private readonly ConcurrentDictionary<string, string> _steps = new(StringComparer.Ordinal);

    public void Step(string group, string step) => _steps[group] = step;

    public void Done(string group) => _steps.TryRemove(group, out _);

    /// <summary>The steps still under way, one clause each, or null when none is.</summary>
    public string? Pending() => _steps.IsEmpty ? null : string.Join("; ", _steps.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => s.Value));
}

/// <summary>
/// Writes a consumer group's committed offsets on a cluster, and removes the members the proxy moved away from a
/// group, over the proxy's own connection to the group's coordinator.
/// </summary>
/// <remarks>
/// A broker takes offsets from a commit without a member (generation -1, as an admin client sends) only while the
/// group has no members: Apache Kafka refuses it with UNKNOWN_MEMBER_ID for a classic group that is not Empty and for
/// a KIP-848 group with members; librdkafka's mock cluster refuses it for any group it has ever seen. So, in order:
/// the members an earlier stint of the group left on the cluster (known from the answers the proxy relayed, see
/// <see cref="GroupMembers"/>) are removed; the offsets are committed without a member; if that is refused, the proxy
/// joins the group as a member of its own (a classic group with a protocol type of its own, <c>switchback</c>, so no
/// consumer can share its generation; a KIP-848 group with a heartbeat at epoch 0), commits as that member, and
/// leaves. Members the proxy never saw (clients connected to the cluster directly) are not removed: a broker then
/// keeps refusing until their sessions time out, and the write fails naming the group, partitions and errors.
/// </remarks>
public sealed partial class GroupOffsetWriter(Func<string, UpstreamCluster> clusters, GroupMembers members, LimitsConfig limits, ILogger logger)
{
    /// <summary>The protocol type the proxy joins classic groups with: a broker admits no consumer to its generation.</summary>
    internal const string OwnProtocolType = "switchback";

    // The mock cluster checks no protocol type, and aborts the process when a group's leader would be handed members
    // whose first protocol name differs from its own. So the proxy names the group's own assignment protocol, and
    // its member metadata and assignments are valid, empty consumer-protocol ones (version 0, no topics, no user
    // data): a consumer that leads such a mixed generation assigns the proxy nothing, and is assigned nothing by it.
    private const string DefaultProtocolName = "range";
    private static readonly ReadOnlyMemory<byte> EmptyConsumerProtocol = new byte[] { 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF };

    // Apache Kafka's smallest session timeout by default (group.min.session.timeout.ms); a broker that refuses it
    // is asked again with the consumers' default. Short, as a proxy member that could not leave lingers this long;
    // but never shorter than the group's own members asked for: a group its members just left may hold the proxy's
    // JoinGroup until their rebalance ends, and librdkafka's mock cluster expires a member waiting in JoinGroup once
    // the session timeout passes (then never answers it), where a broker would not.
    private const int OwnSessionTimeoutMs = 6_000;
    private const int FallbackSessionTimeoutMs = 45_000;
    private const int OwnRebalanceTimeoutMs = 30_000;
    private const int CoordinatorAttempts = 4;
    private static readonly TimeSpan LeaveTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Writes <paramref name="offsets"/> as <paramref name="group"/>'s committed offsets on cluster <paramref name="cluster"/>.
    /// A refusal is returned, not thrown; an unreachable cluster throws <see cref="UpstreamUnavailableException"/>.
    /// </summary>
    public async Task<GroupOffsetsWritten> WriteAsync(string cluster, string group, IReadOnlyDictionary<TopicPartition, long> offsets,
        GroupWriteProgress progress, CancellationToken cancellationToken)
    {
        if (offsets.Count == 0)
        {
            return new GroupOffsetsWritten(group, cluster, 0, null, 0, [], null);
        }
        progress.Step(group, $"finding the coordinator of group '{group}' on cluster '{cluster}'");
        try
        {
            await using var coordinator = await OpenAsync(cluster, group, cancellationToken).ConfigureAwait(false);
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var written = await WriteOnceAsync(coordinator, offsets, progress, cancellationToken).ConfigureAwait(false);
                    progress.Done(group);
                    return written;
                }
                catch (CoordinatorMovedException) when (attempt < CoordinatorAttempts)
                {
                    await Task.Delay(100 * attempt, cancellationToken).ConfigureAwait(false);
                    await coordinator.ReconnectAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (CoordinatorMovedException e)
        {
            progress.Done(group);
            return new GroupOffsetsWritten(group, cluster, offsets.Count, null, 0, [], e.Message);
        }
        // Otherwise (cancelled, unreachable) the step stays, so that the switch's answer can say what it waited for.
    }

    /// <summary>
    /// Removes the members of <paramref name="group"/> the proxy saw on cluster <paramref name="cluster"/>: classic
    /// members with LeaveGroup on their behalf, KIP-848 members with a heartbeat at epoch -1.
    /// </summary>
    public async Task<GroupMembersRemoved> RemoveMembersAsync(string cluster, string group, CancellationToken cancellationToken)
    {
        var known = members.On(cluster, group);
        if (known.Count == 0)
        {
            return new GroupMembersRemoved(group, cluster, 0, 0, []);
        }
        try
        {
            await using var coordinator = await OpenAsync(cluster, group, cancellationToken).ConfigureAwait(false);
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    return await RemoveAsync(coordinator, known, cancellationToken).ConfigureAwait(false);
                }
                catch (CoordinatorMovedException) when (attempt < CoordinatorAttempts)
                {
                    await Task.Delay(100 * attempt, cancellationToken).ConfigureAwait(false);
                    await coordinator.ReconnectAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (CoordinatorMovedException e)
        {
            return new GroupMembersRemoved(group, cluster, 0, 0, [e.Message]);
        }
    }

    private async Task<GroupOffsetsWritten> WriteOnceAsync(GroupCoordinatorConnection coordinator, IReadOnlyDictionary<TopicPartition, long> offsets,
        GroupWriteProgress progress, CancellationToken cancellationToken)
    {
        var (group, cluster) = (coordinator.Group, coordinator.ClusterName);
        // Members an earlier stint of the group left here (their clients have since moved away): a broker accepts
        // offsets without a member only once they are gone.
        var stale = members.On(cluster, group);
        var staleRemoved = 0;
        if (stale.Count > 0)
        {
            progress.Step(group, $"removing {stale.Count} member(s) an earlier stint left in group '{group}' on cluster '{cluster}'");
            var removal = await RemoveAsync(coordinator, stale, cancellationToken).ConfigureAwait(false);
            staleRemoved = removal.Removed + removal.AlreadyGone;
        }

        progress.Step(group, $"committing the offsets of group '{group}' on cluster '{cluster}'");
        var refused = await CommitAsync(coordinator, offsets, generation: -1, memberId: "", cancellationToken).ConfigureAwait(false);
        if (refused.Count == 0)
        {
            return new GroupOffsetsWritten(group, cluster, offsets.Count, "without a member", staleRemoved, [], null);
        }
        if (!refused.All(f => NeedsMember((KafkaError)f.ErrorCode)))
        {
            return new GroupOffsetsWritten(group, cluster, offsets.Count, null, staleRemoved, refused, null);
        }

        // The group has a history (or members) here: commit as a member of the proxy's own.
        var protocol = members.ProtocolOf(group);
        var (asMember, reason) = protocol == GroupProtocol.Consumer
            ? await CommitAsConsumerMemberAsync(coordinator, offsets, progress, cancellationToken).ConfigureAwait(false)
            : await CommitAsClassicMemberAsync(coordinator, offsets, progress, cancellationToken).ConfigureAwait(false);
        if (reason is null && asMember.Count == 0)
        {
            return new GroupOffsetsWritten(group, cluster, offsets.Count, "as a member of the proxy's own", staleRemoved, [], null);
        }
        var why = "a commit without a member is refused while the group has members (librdkafka's mock cluster: once it has had any) and "
            + (reason ?? "the commit as a member of the proxy's own was refused too");
        return new GroupOffsetsWritten(group, cluster, offsets.Count, null, staleRemoved, asMember.Count > 0 ? asMember : refused, why);
    }

    /// <summary>Commits the offsets; returns the partitions the cluster refused.</summary>
    private async Task<List<PartitionFailure>> CommitAsync(GroupCoordinatorConnection coordinator, IReadOnlyDictionary<TopicPartition, long> offsets,
        int generation, string memberId, CancellationToken cancellationToken)
    {
        var version = coordinator.VersionOf(ApiKey.OffsetCommit, 9) is { } v and >= 1
            ? v
            : throw new UpstreamUnavailableException($"Cluster '{coordinator.ClusterName}' does not offer OffsetCommit v1 or later.");
        var request = new OffsetCommitRequest { GroupId = coordinator.Group, GenerationIdOrMemberEpoch = generation, MemberId = memberId };
        foreach (var topic in offsets.GroupBy(o => o.Key.Topic).OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var entry = new OffsetCommitRequest.OffsetCommitRequestTopic { Name = topic.Key };
            foreach (var (partition, offset) in topic.OrderBy(p => p.Key.Partition.Value))
            {
                entry.Partitions.Add(new OffsetCommitRequest.OffsetCommitRequestPartition
                {
                    PartitionIndex = partition.Partition.Value,
                    CommittedOffset = offset,
                    CommittedMetadata = "",
                });
            }
            request.Topics.Add(entry);
        }
        var response = await coordinator.SendAsync<OffsetCommitResponse>(ApiKey.OffsetCommit, version, request, limits.UpstreamRequestTimeout,
            cancellationToken).ConfigureAwait(false);
        var answered = new Dictionary<(string, int), short>();
        foreach (var topic in response.Topics)
        {
            foreach (var partition in topic.Partitions)
            {
                answered[(topic.Name, partition.PartitionIndex)] = partition.ErrorCode;
            }
        }
        var refused = new List<PartitionFailure>();
        foreach (var partition in offsets.Keys.OrderBy(p => p.Topic, StringComparer.Ordinal).ThenBy(p => p.Partition.Value))
        {
            var error = answered.TryGetValue((partition.Topic, partition.Partition.Value), out var code) ? code : (short)KafkaError.UnknownServerError;
            if (error != 0)
            {
                refused.Add(new PartitionFailure(partition.Topic, partition.Partition.Value, error));
            }
        }
        if (refused.Count == offsets.Count && refused.All(f => CoordinatorMoved((KafkaError)f.ErrorCode)))
        {
            throw new CoordinatorMovedException(coordinator, "OffsetCommit", refused[0].ErrorCode);
        }
        return refused;
    }

    /// <summary>Joins a classic group as a member of the proxy's own, commits as that member and leaves.</summary>
    private async Task<(List<PartitionFailure> Refused, string? Reason)> CommitAsClassicMemberAsync(GroupCoordinatorConnection coordinator,
        IReadOnlyDictionary<TopicPartition, long> offsets, GroupWriteProgress progress, CancellationToken cancellationToken)
    {
        var (group, cluster) = (coordinator.Group, coordinator.ClusterName);
        // The versions librdkafka's consumer sends (JoinGroup v5, SyncGroup v3), which brokers have taken since Kafka
        // 2.3: librdkafka's mock cluster misreads the later, flexible layouts of both (and closes the connection).
        if (coordinator.VersionOf(ApiKey.JoinGroup, 5) is not { } joinVersion || coordinator.VersionOf(ApiKey.SyncGroup, 3) is not { } syncVersion)
        {
            return ([], $"cluster '{cluster}' does not offer JoinGroup and SyncGroup, so the proxy cannot join the group to commit as a member");
        }
        var memberId = "";
        var sessionTimeoutMs = Math.Max(OwnSessionTimeoutMs, members.ClassicSessionTimeoutMsOf(group) ?? 0);
        var protocolName = members.ClassicProtocolNameOf(group) ?? DefaultProtocolName;
        JoinGroupResponse joined;
        while (true)
        {
            progress.Step(group, $"waiting for group '{group}' on cluster '{cluster}' to admit the proxy as a member, which a rebalancing "
                + "group does once its rebalance ends");
            joined = await coordinator.SendAsync<JoinGroupResponse>(ApiKey.JoinGroup, joinVersion, new JoinGroupRequest
            {
                GroupId = group,
                SessionTimeoutMs = sessionTimeoutMs,
                RebalanceTimeoutMs = OwnRebalanceTimeoutMs,
                MemberId = memberId,
                ProtocolType = OwnProtocolType,
                Protocols = { new JoinGroupRequest.JoinGroupRequestProtocol { Name = protocolName, Metadata = EmptyConsumerProtocol } },
            }, limits.UpstreamRequestTimeout + TimeSpan.FromMilliseconds(OwnRebalanceTimeoutMs), cancellationToken).ConfigureAwait(false);
            var joinError = (KafkaError)joined.ErrorCode;
            if (joinError == KafkaError.MemberIdRequired && memberId.Length == 0 && !string.IsNullOrEmpty(joined.MemberId))
            {
                memberId = joined.MemberId; // join again under the id the coordinator chose
                continue;
            }
            if (joinError == KafkaError.InvalidSessionTimeout && sessionTimeoutMs != FallbackSessionTimeoutMs)
            {
                sessionTimeoutMs = FallbackSessionTimeoutMs; // outside the broker's bounds
                continue;
            }
            break;
        }
        var error = (KafkaError)joined.ErrorCode;
        if (CoordinatorMoved(error))
        {
            throw new CoordinatorMovedException(coordinator, "JoinGroup", joined.ErrorCode);
        }
        if (error != KafkaError.None)
        {
            return ([], error == KafkaError.InconsistentGroupProtocol
                ? $"JoinGroup answered INCONSISTENT_GROUP_PROTOCOL: the group has members on cluster '{cluster}' the proxy did not see (clients "
                    + "connected to it directly, or from before the proxy started); they leave when their sessions time out"
                : $"joining the group to commit as a member was refused: JoinGroup answered {KafkaErrorText.Name(joined.ErrorCode)}");
        }
        memberId = joined.MemberId;
        try
        {
            progress.Step(group, $"waiting for group '{group}' on cluster '{cluster}' to complete the generation the proxy joined");
            var leader = joined.Leader == memberId;
            var sync = await coordinator.SendAsync<SyncGroupResponse>(ApiKey.SyncGroup, syncVersion, new SyncGroupRequest
            {
                GroupId = group,
                GenerationId = joined.GenerationId,
                MemberId = memberId,
                ProtocolType = OwnProtocolType,
                ProtocolName = joined.ProtocolName,
                // As leader, the proxy assigns nothing to anyone (itself included); the members rejoin once it leaves.
                Assignments = !leader ? []
                    : joined.Members.Count > 0 ? [.. joined.Members.Select(m => new SyncGroupRequest.SyncGroupRequestAssignment { MemberId = m.MemberId, Assignment = EmptyConsumerProtocol })]
                    : [new SyncGroupRequest.SyncGroupRequestAssignment { MemberId = memberId, Assignment = EmptyConsumerProtocol }],
            }, limits.UpstreamRequestTimeout + TimeSpan.FromMilliseconds(OwnRebalanceTimeoutMs), cancellationToken).ConfigureAwait(false);
            if (CoordinatorMoved((KafkaError)sync.ErrorCode))
            {
                throw new CoordinatorMovedException(coordinator, "SyncGroup", sync.ErrorCode);
            }
            if (sync.ErrorCode != 0)
            {
                return ([], $"the proxy joined the group but SyncGroup answered {KafkaErrorText.Name(sync.ErrorCode)}");
            }
            progress.Step(group, $"committing the offsets of group '{group}' on cluster '{cluster}' as a member of the proxy's own");
            return (await CommitAsync(coordinator, offsets, joined.GenerationId, memberId, cancellationToken).ConfigureAwait(false), null);
        }
        finally
        {
            await LeaveBestEffortAsync(coordinator, new GroupMember(memberId, null, joined.GenerationId, GroupProtocol.Classic)).ConfigureAwait(false);
        }
    }

    /// <summary>Joins a KIP-848 group as a member of the proxy's own, commits at its member epoch and leaves.</summary>
    private async Task<(List<PartitionFailure> Refused, string? Reason)> CommitAsConsumerMemberAsync(GroupCoordinatorConnection coordinator,
        IReadOnlyDictionary<TopicPartition, long> offsets, GroupWriteProgress progress, CancellationToken cancellationToken)
    {
        var (group, cluster) = (coordinator.Group, coordinator.ClusterName);
        if (coordinator.VersionOf(ApiKey.ConsumerGroupHeartbeat, 1) is not { } version)
        {
            return ([], $"cluster '{cluster}' does not offer ConsumerGroupHeartbeat, so the proxy cannot join the group to commit as a member");
        }
        progress.Step(group, $"joining group '{group}' on cluster '{cluster}' as a member of the proxy's own");
        // From v1 the member chooses its id; v0 coordinators assign one.
        var memberId = version >= 1 ? NewMemberId() : "";
        var joined = await coordinator.SendAsync<ConsumerGroupHeartbeatResponse>(ApiKey.ConsumerGroupHeartbeat, version, new ConsumerGroupHeartbeatRequest
        {
            GroupId = group,
            MemberId = memberId,
            MemberEpoch = 0,
            RebalanceTimeoutMs = OwnRebalanceTimeoutMs,
            // The topics it writes offsets of: a member must subscribe to something (the mock cluster insists). No
            // pattern, sent as librdkafka does: an empty one (the mock cluster aborts on topic names without it).
            SubscribedTopicNames = [.. offsets.Keys.Select(p => p.Topic).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)],
            SubscribedTopicRegex = version >= 1 ? "" : null,
            TopicPartitions = [],
        }, limits.UpstreamRequestTimeout, cancellationToken).ConfigureAwait(false);
        if (CoordinatorMoved((KafkaError)joined.ErrorCode))
        {
            throw new CoordinatorMovedException(coordinator, "ConsumerGroupHeartbeat", joined.ErrorCode);
        }
        if (joined.ErrorCode != 0)
        {
            return ([], $"joining the group to commit as a member was refused: ConsumerGroupHeartbeat answered {KafkaErrorText.Name(joined.ErrorCode)}"
                + (joined.ErrorMessage is { Length: > 0 } message ? $" ({message})" : ""));
        }
        memberId = string.IsNullOrEmpty(joined.MemberId) ? memberId : joined.MemberId;
        try
        {
            progress.Step(group, $"committing the offsets of group '{group}' on cluster '{cluster}' as a member of the proxy's own");
            return (await CommitAsync(coordinator, offsets, joined.MemberEpoch, memberId, cancellationToken).ConfigureAwait(false), null);
        }
        finally
        {
            await LeaveBestEffortAsync(coordinator, new GroupMember(memberId, null, joined.MemberEpoch, GroupProtocol.Consumer)).ConfigureAwait(false);
        }
    }

    /// <summary>Takes the proxy's own member out again, even when the switch ran out of time (a member left behind lingers a session).</summary>
    private async Task LeaveBestEffortAsync(GroupCoordinatorConnection coordinator, GroupMember member)
    {
        using var timeout = new CancellationTokenSource(LeaveTimeout);
        try
        {
            var removal = await RemoveAsync(coordinator, [member], timeout.Token, remember: false).ConfigureAwait(false);
            if (removal.Failures.Count > 0)
            {
                LogOwnMemberStayed(logger, coordinator.Group, coordinator.ClusterName, string.Join("; ", removal.Failures));
            }
        }
        catch (Exception e) when (e is UpstreamUnavailableException or CoordinatorMovedException or OperationCanceledException)
        {
            LogOwnMemberStayed(logger, coordinator.Group, coordinator.ClusterName, e.Message);
        }
    }

    /// <summary>Removes members; those removed or already gone are forgotten (unless <paramref name="remember"/> is false).</summary>
    private async Task<GroupMembersRemoved> RemoveAsync(GroupCoordinatorConnection coordinator, IReadOnlyList<GroupMember> toRemove,
        CancellationToken cancellationToken, bool remember = true)
    {
        var (group, cluster) = (coordinator.Group, coordinator.ClusterName);
        int removed = 0, alreadyGone = 0;
        var failures = new List<string>();
        var gone = new List<string>();
        foreach (var member in toRemove)
        {
            var error = member.Protocol == GroupProtocol.Consumer
                ? await LeaveConsumerGroupAsync(coordinator, member, cancellationToken).ConfigureAwait(false)
                : await LeaveClassicGroupAsync(coordinator, member, cancellationToken).ConfigureAwait(false);
            if (CoordinatorMoved(error))
            {
                throw new CoordinatorMovedException(coordinator, member.Protocol == GroupProtocol.Consumer ? "ConsumerGroupHeartbeat" : "LeaveGroup", (short)error);
            }
            switch (error)
            {
                case KafkaError.None:
                    removed++;
                    gone.Add(member.MemberId);
                    break;
                case KafkaError.UnknownMemberId or KafkaError.FencedMemberEpoch or KafkaError.GroupIdNotFound:
                    alreadyGone++;
                    gone.Add(member.MemberId);
                    break;
                default:
                    failures.Add($"member {member.MemberId}: {KafkaErrorText.Name((short)error)}");
                    break;
            }
        }
        if (remember)
        {
            members.Gone(cluster, group, gone);
        }
        return new GroupMembersRemoved(group, cluster, removed, alreadyGone, failures);
    }

    private async Task<KafkaError> LeaveClassicGroupAsync(GroupCoordinatorConnection coordinator, GroupMember member, CancellationToken cancellationToken)
    {
        // v0-2 name one member by id, which both Apache Kafka and the mock cluster take (the mock reads no later
        // layout); a static member is named with its instance id, which needs v3 or later.
        var version = member.InstanceId is null
            ? coordinator.VersionOf(ApiKey.LeaveGroup, 2) ?? coordinator.VersionOf(ApiKey.LeaveGroup, 5)
            : coordinator.VersionOf(ApiKey.LeaveGroup, 5);
        if (version is not { } v)
        {
            return KafkaError.UnsupportedVersion;
        }
        var request = new LeaveGroupRequest { GroupId = coordinator.Group };
        if (v < 3)
        {
            request.MemberId = member.MemberId;
        }
        else
        {
            request.Members.Add(new LeaveGroupRequest.MemberIdentity
            {
                MemberId = member.MemberId,
                GroupInstanceId = member.InstanceId,
                Reason = "switchback: the member's client moved to another cluster",
            });
        }
        var response = await coordinator.SendAsync<LeaveGroupResponse>(ApiKey.LeaveGroup, v, request, limits.UpstreamRequestTimeout, cancellationToken).ConfigureAwait(false);
        if (response.ErrorCode != 0 || v < 3)
        {
            return (KafkaError)response.ErrorCode;
        }
        return response.Members.Count > 0 ? (KafkaError)response.Members[0].ErrorCode : KafkaError.None;
    }

    private async Task<KafkaError> LeaveConsumerGroupAsync(GroupCoordinatorConnection coordinator, GroupMember member, CancellationToken cancellationToken)
    {
        if (coordinator.VersionOf(ApiKey.ConsumerGroupHeartbeat, 1) is not { } version)
        {
            return KafkaError.UnsupportedVersion;
        }
        var response = await coordinator.SendAsync<ConsumerGroupHeartbeatResponse>(ApiKey.ConsumerGroupHeartbeat, version, new ConsumerGroupHeartbeatRequest
        {
            GroupId = coordinator.Group,
            MemberId = member.MemberId,
            MemberEpoch = -1, // leave (a static member too: -2 would only be a temporary leave)
            InstanceId = member.InstanceId,
        }, limits.UpstreamRequestTimeout, cancellationToken).ConfigureAwait(false);
        return (KafkaError)response.ErrorCode;
    }

    private Task<GroupCoordinatorConnection> OpenAsync(string cluster, string group, CancellationToken cancellationToken) =>
        OpenCoreAsync(clusters(cluster), group, cancellationToken);

    private async Task<GroupCoordinatorConnection> OpenCoreAsync(UpstreamCluster cluster, string group, CancellationToken cancellationToken)
    {
        try
        {
            return await GroupCoordinatorConnection.OpenAsync(cluster, group, limits, logger, cancellationToken).ConfigureAwait(false);
        }
        catch (CoordinatorUnavailableException e)
        {
            throw new CoordinatorMovedException($"cluster '{cluster.Name}' has no coordinator for it ({KafkaErrorText.Name(e.ErrorCode)})");
        }
    }

    /// <summary>A commit without a member is refused this way when the group has members, or (the mock cluster) a history.</summary>
    private static bool NeedsMember(KafkaError error) =>
        error is KafkaError.UnknownMemberId or KafkaError.IllegalGeneration or KafkaError.RebalanceInProgress or KafkaError.FencedMemberEpoch
            or (KafkaError)113; // STALE_MEMBER_EPOCH

    private static bool CoordinatorMoved(KafkaError error) =>
        error is KafkaError.NotCoordinator or KafkaError.CoordinatorNotAvailable or KafkaError.CoordinatorLoadInProgress;

    /// <summary>A member id as Apache Kafka's clients make them: a random UUID, URL-safe base64 without padding.</summary>
    private static string NewMemberId() =>
        Convert.ToBase64String(Guid.NewGuid().ToByteArray()).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The group's coordinator moved or is not ready; the caller looks it up again.</summary>
    private sealed class CoordinatorMovedException : Exception
    {
        public CoordinatorMovedException(string message) : base(message)
        {
        }

        public CoordinatorMovedException(GroupCoordinatorConnection coordinator, string api, short errorCode)
            : base($"its coordinator on cluster '{coordinator.ClusterName}' answered {api} with "
                + $"{KafkaErrorText.Name(errorCode)} {CoordinatorAttempts} times.")
        {
        }
    }

    [LoggerMessage(EventId = 4011, Level = LogLevel.Warning, Message = "The proxy's own member of group {Group} on cluster {Cluster} could not leave (it stays until its session times out): {Reason}")]
    private static partial void LogOwnMemberStayed(ILogger logger, string group, string cluster, string reason);
}
