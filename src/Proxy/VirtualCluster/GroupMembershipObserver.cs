using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Notes in <see cref="GroupMembers"/> who joined which group on which cluster, from the coordinators' answers the
/// proxy relays (JoinGroup; ConsumerGroupHeartbeat answers are noted where they are mapped,
/// <see cref="ConsumerGroupHeartbeatTopicIds"/>). The answers themselves are relayed unchanged.
/// </summary>
public static class GroupMembershipObserver
{
    /// <summary>Relays a JoinGroup answer, noting the member it admitted (and, for the leader, the generation's members).</summary>
    public static Task<PooledFrame> JoinGroupAnswered(GroupMembers members, RequestContext context, Task<PooledFrame> response,
        string cluster, string group)
    {
        // Read from the request now: its frame is not the answer's to keep.
        var request = context.Decode<JoinGroupRequest>();
        return NoteAsync(members, context.ApiKey, context.Version, response, cluster, group, request.GroupInstanceId, request.SessionTimeoutMs);
    }

    private static async Task<PooledFrame> NoteAsync(GroupMembers members, ApiKey apiKey, short version, Task<PooledFrame> response,
        string cluster, string group, string? instanceId, int sessionTimeoutMs)
    {
        var frame = await response.ConfigureAwait(false);
        try
        {
            var answer = FrameCodec.DecodeResponse<JoinGroupResponse>(frame, apiKey, version);
            if (answer.ErrorCode == 0 && !string.IsNullOrEmpty(answer.MemberId))
            {
                var generationMembers = answer.Members.Count > 0
                    ? answer.Members.Select(m => (m.MemberId, (string?)m.GroupInstanceId)).ToList()
                    : null;
                members.ClassicJoined(cluster, group, answer.MemberId, instanceId, answer.GenerationId, answer.ProtocolName, generationMembers, sessionTimeoutMs);
            }
        }
        catch (KafkaProtocolException)
        {
            // Relayed as the broker sent it; the member is simply not noted.
        }
        return frame;
    }

    /// <summary>Relays a LeaveGroup answer; when the group took it, the members that asked to leave are gone.</summary>
    public static Task<PooledFrame> LeaveGroupAnswered(GroupMembers members, RequestContext context, Task<PooledFrame> response, string cluster, string group)
    {
        var request = context.Decode<LeaveGroupRequest>();
        var leaving = context.Version < 3 ? [request.MemberId] : request.Members.Select(m => m.MemberId).ToList();
        return NoteLeftAsync(members, context.ApiKey, context.Version, response, cluster, group, leaving);
    }

    private static async Task<PooledFrame> NoteLeftAsync(GroupMembers members, ApiKey apiKey, short version, Task<PooledFrame> response,
        string cluster, string group, List<string> leaving)
    {
        var frame = await response.ConfigureAwait(false);
        try
        {
            var answer = FrameCodec.DecodeResponse<LeaveGroupResponse>(frame, apiKey, version);
            if (answer.ErrorCode is 0 or (short)ErrorCode.UnknownMemberId)
            {
                // Per-member errors (v3+) keep a member that was refused; the mock cluster answers without the list.
                var refused = answer.Members.Where(m => m.ErrorCode is not 0 and not (short)ErrorCode.UnknownMemberId).Select(m => m.MemberId).ToHashSet();
                members.Gone(cluster, group, leaving.Where(m => !string.IsNullOrEmpty(m) && !refused.Contains(m)));
            }
        }
        catch (KafkaProtocolException)
        {
            // Relayed as the broker sent it; the members are simply not noted as gone.
        }
        return frame;
    }

    /// <summary>Notes a KIP-848 heartbeat's outcome: the member is in the group at the answered epoch, or gone.</summary>
    public static void ConsumerHeartbeatAnswered(GroupMembers members, string cluster, ConsumerGroupHeartbeatRequest request,
        ConsumerGroupHeartbeatResponse response)
    {
        var memberId = string.IsNullOrEmpty(response.MemberId) ? request.MemberId : response.MemberId;
        if (string.IsNullOrEmpty(memberId))
        {
            return;
        }
        var error = (ErrorCode)response.ErrorCode;
        if (error == ErrorCode.None && response.MemberEpoch >= 0 && request.MemberEpoch >= 0)
        {
            members.ConsumerHeartbeat(cluster, request.GroupId, memberId, request.InstanceId, response.MemberEpoch);
        }
        else if (request.MemberEpoch < 0 || error is ErrorCode.UnknownMemberId or ErrorCode.FencedMemberEpoch)
        {
            // It left (epoch -1, or -2 for a static member's temporary leave) or the coordinator no longer has it.
            members.Gone(cluster, request.GroupId, [memberId]);
        }
    }
}
