using System.Collections.Frozen;

namespace Switchback.Proxy.Switching;

/// <summary>Kafka error codes a group operation can answer, by their protocol names, for messages an operator reads.</summary>
public static class KafkaErrorText
{
    private static readonly FrozenDictionary<short, string> Names = new Dictionary<short, string>
    {
        [-1] = "UNKNOWN_SERVER_ERROR",
        [0] = "NONE",
        [3] = "UNKNOWN_TOPIC_OR_PARTITION",
        [7] = "REQUEST_TIMED_OUT",
        [12] = "OFFSET_METADATA_TOO_LARGE",
        [13] = "NETWORK_EXCEPTION",
        [14] = "COORDINATOR_LOAD_IN_PROGRESS",
        [15] = "COORDINATOR_NOT_AVAILABLE",
        [16] = "NOT_COORDINATOR",
        [22] = "ILLEGAL_GENERATION",
        [23] = "INCONSISTENT_GROUP_PROTOCOL",
        [24] = "INVALID_GROUP_ID",
        [25] = "UNKNOWN_MEMBER_ID",
        [26] = "INVALID_SESSION_TIMEOUT",
        [27] = "REBALANCE_IN_PROGRESS",
        [28] = "INVALID_COMMIT_OFFSET_SIZE",
        [29] = "TOPIC_AUTHORIZATION_FAILED",
        [30] = "GROUP_AUTHORIZATION_FAILED",
        [35] = "UNSUPPORTED_VERSION",
        [42] = "INVALID_REQUEST",
        [69] = "GROUP_ID_NOT_FOUND",
        [79] = "MEMBER_ID_REQUIRED",
        [81] = "GROUP_MAX_SIZE_REACHED",
        [82] = "FENCED_INSTANCE_ID",
        [110] = "FENCED_MEMBER_EPOCH",
        [111] = "UNRELEASED_INSTANCE_ID",
        [112] = "UNSUPPORTED_ASSIGNOR",
        [113] = "STALE_MEMBER_EPOCH",
    }.ToFrozenDictionary();

    /// <summary>The protocol name of an error code, e.g. <c>UNKNOWN_MEMBER_ID</c>; the number for codes not listed.</summary>
    public static string Name(short errorCode) => Names.TryGetValue(errorCode, out var name) ? name : $"error {errorCode}";
}
