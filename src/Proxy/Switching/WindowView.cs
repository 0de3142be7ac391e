using Switchback.Proxy.Routing;

namespace Switchback.Proxy.Switching;

/// <summary>
/// Live figures of a rollback window: what its mirror has copied back to the origin's write cluster, how far it lags,
/// and the records written there by clients that bypass the proxy. Nothing produces them yet (the mirror and the
/// stray-write watch are later work); until then the window view reports them as unknown.
/// </summary>
public sealed record WindowFigures(string Mirror, long MirroredRecords, long MirrorLagRecords, double? MirrorLagMs, long StrayWrites);

/// <summary>How the admin API shows a family's rollback window (<c>GET /v1/families/{name}/window</c>, and the summary in other answers).</summary>
public static class WindowView
{
    /// <summary>The mirror's status while there is none: its figures are null, never zero.</summary>
    public const string MirrorNotRunning = "not running";

    /// <summary>The whole view: state, origin, current routes, when it opened and closed, and the mirror's figures (null while it does not run).</summary>
    public static object Describe(FamilyRoute route, WindowFigures? figures)
    {
        var window = route.Window;
        var state = RollbackWindow.StateOf(window);
        return new
        {
            family = route.Family,
            state = StateName(state),
            from = Route(window?.Origin),
            to = window is null ? null : Route(route.Route),
            epoch = route.Epoch,
            openedAt = window?.OpenedAt,
            openedEpoch = window?.OpenedEpoch,
            closedAt = window?.ClosedAt,
            closeReason = window?.CloseReason,
            atOrigin = window is null ? (bool?)null : window.Origin == route.Route,
            rollbackNeedsForce = window is null ? (bool?)null : !window.IsOpen,
            mirror = figures?.Mirror ?? MirrorNotRunning,
            mirroredRecords = figures?.MirroredRecords,
            mirrorLagRecords = figures?.MirrorLagRecords,
            mirrorLagMs = figures?.MirrorLagMs,
            strayWrites = figures?.StrayWrites,
            note = Note(route, figures),
        };
    }

    /// <summary>The window in a family's or a switch's answer: state, origin, opening and close.</summary>
    public static object Summary(FamilyRoute route) => new
    {
        state = StateName(RollbackWindow.StateOf(route.Window)),
        from = Route(route.Window?.Origin),
        openedAt = route.Window?.OpenedAt,
        openedEpoch = route.Window?.OpenedEpoch,
        closedAt = route.Window?.ClosedAt,
    };

    public static object? Route(ClusterRoute? route) => route is null ? null : new { write = route.Write, read = route.Read };

    public static string StateName(RollbackWindowState state) => state switch
    {
        RollbackWindowState.Open => "open",
        RollbackWindowState.Closed => "closed",
        _ => "none",
    };

    private static string? Note(FamilyRoute route, WindowFigures? figures)
    {
        if (route.Window is not { } window || figures is not null)
        {
            return null;
        }
        return window.Origin.Write == route.Route.Write
            ? $"Writes are on the origin's write cluster '{window.Origin.Write}': a rollback leaves no records behind."
            : $"Records written to '{route.Route.Write}' since writes moved there are not copied back to '{window.Origin.Write}': no mirror runs for "
              + "the family on this instance (MirrorBack is off, the mirror did not start, the window is closed, or another instance of the fleet "
              + "ran the switch). A rollback here leaves them there and counts them in details.leftBehind.";
    }
}
