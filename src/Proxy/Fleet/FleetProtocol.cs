using System.Text.Json;
using System.Text.Json.Serialization;

namespace Switchback.Proxy.Fleet;

/// <summary>
/// The group protocol fleet members speak through Kafka's classic group membership: protocol type
/// <c>switchback</c>, one protocol <c>v1</c>. A member's JoinGroup metadata is its <see cref="FleetInstanceInfo"/>
/// as JSON; the leader's SyncGroup gives every member the same assignment, the whole member list as JSON.
/// </summary>
internal static class FleetProtocol
{
    public const string ProtocolType = "switchback";
    public const string ProtocolName = "v1";

    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public static byte[] EncodeMetadata(FleetInstanceInfo info) =>
        JsonSerializer.SerializeToUtf8Bytes(new MemberMetadata(info.InstanceId, info.AdvertisedBootstrap, info.AdminAddress, info.Version), Options);

    /// <summary>The instance info a member joined with, or null when its metadata is not ours (or malformed).</summary>
    public static FleetInstanceInfo? TryDecodeMetadata(ReadOnlySpan<byte> metadata)
    {
        try
        {
            var decoded = JsonSerializer.Deserialize<MemberMetadata>(metadata, Options);
            return decoded is { InstanceId: not null, AdvertisedBootstrap: not null, AdminAddress: not null, Version: not null }
                ? new FleetInstanceInfo(decoded.InstanceId, decoded.AdvertisedBootstrap, decoded.AdminAddress, decoded.Version)
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public static byte[] EncodeAssignment(int generation, string leaderMemberId, IReadOnlyList<FleetMember> members) =>
        JsonSerializer.SerializeToUtf8Bytes(new Assignment(generation, leaderMemberId, members), Options);

    /// <summary>The member list the leader sent, or null when the bytes are not a v1 assignment.</summary>
    public static (int Generation, string Leader, IReadOnlyList<FleetMember> Members)? TryDecodeAssignment(ReadOnlySpan<byte> assignment)
    {
        if (assignment.IsEmpty)
        {
            return null;
        }
        try
        {
            var decoded = JsonSerializer.Deserialize<Assignment>(assignment, Options);
            if (decoded is not { Leader: not null, Members: not null })
            {
                return null;
            }
            foreach (var member in decoded.Members)
            {
                if (member is not { MemberId: not null, InstanceId: not null, AdvertisedBootstrap: not null, AdminAddress: not null, Version: not null })
                {
                    return null;
                }
            }
            return (decoded.Generation, decoded.Leader, decoded.Members);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    // Nullable on the way in: a field missing from the JSON must read as absent, not pass as a valid instance.
    private sealed record MemberMetadata(string? InstanceId, string? AdvertisedBootstrap, string? AdminAddress, string? Version);

    private sealed record Assignment(int Generation, string? Leader, IReadOnlyList<FleetMember>? Members);
}
