using System.Text.Json.Serialization;

namespace Switchback.Proxy.Routing;

/// <summary>Where a family's rollback window stands.</summary>
public enum RollbackWindowState
{
    /// <summary>No switch since the configuration's routes (or the window was never opened): nothing to roll back.</summary>
    None,

    /// <summary>A switch opened it; a rollback returns to its origin.</summary>
    Open,

    /// <summary>An operator closed it; a rollback to its origin needs force.</summary>
    Closed,
}

/// <summary>
/// A family's rollback window: opened by its first switch since the last close, with the routes that switch replaced
/// as <see cref="Origin"/>, which a rollback returns to whatever switches followed; closed by an operator once the new
/// routes have earned trust. Part of the family's route, so it is persisted and committed fleet-wide with it.
/// </summary>
public sealed record RollbackWindow(ClusterRoute Origin, DateTimeOffset OpenedAt, long OpenedEpoch, DateTimeOffset? ClosedAt = null, string? CloseReason = null)
{
    [JsonIgnore]
    public bool IsOpen => ClosedAt is null;

    [JsonIgnore]
    public RollbackWindowState State => IsOpen ? RollbackWindowState.Open : RollbackWindowState.Closed;

    /// <summary>The same window, closed.</summary>
    public RollbackWindow Close(DateTimeOffset at, string? reason) => this with { ClosedAt = at, CloseReason = reason };

    /// <summary>The state of a family's window, <see cref="RollbackWindowState.None"/> when it has none.</summary>
    public static RollbackWindowState StateOf(RollbackWindow? window) => window?.State ?? RollbackWindowState.None;

    /// <summary>
    /// The window an earlier version's state implies: it kept only the routes before the last switch, which it rolled
    /// back to. Read as an open window with that origin, opened by the last switch.
    /// </summary>
    public static RollbackWindow? FromPrevious(string? previousWrite, string? previousRead, DateTimeOffset updatedAt, long epoch) =>
        previousWrite is not null && previousRead is not null ? new RollbackWindow(new ClusterRoute(previousWrite, previousRead), updatedAt, epoch) : null;
}
