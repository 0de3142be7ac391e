using System.Text.Json.Serialization;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;

namespace Switchback.Proxy.Fleet;

/// <summary>
/// One record of the fleet's control topic, the route log every instance reads in order. A switch is the sequence
/// prepare → ready (one per live instance) → commit → applied (one per live instance), or prepare → abort; the
/// first commit or abort of a switch in log order decides it.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(PrepareRecord), "prepare")]
[JsonDerivedType(typeof(ReadyRecord), "ready")]
[JsonDerivedType(typeof(RefuseRecord), "refuse")]
[JsonDerivedType(typeof(CommitRecord), "commit")]
[JsonDerivedType(typeof(AbortRecord), "abort")]
[JsonDerivedType(typeof(AppliedRecord), "applied")]
[JsonDerivedType(typeof(StatusRecord), "status")]
[JsonDerivedType(typeof(AuditRecord), "audit")]
[JsonDerivedType(typeof(ProducerMappingRecord), "producer")]
[JsonDerivedType(typeof(TransactionalIdRecord), "transactional")]
public abstract record ControlRecord
{
    /// <summary>The record's key on the topic: with compaction, the latest record of each key survives.</summary>
    public abstract string Key { get; }
}

/// <summary>
/// Hold and drain <see cref="Family"/> for a move to <see cref="Write"/>/<see cref="Read"/>; answer ready or refuse
/// before the deadline. <see cref="Force"/>: the caller forced it (a rollback then goes without what a mirror has not
/// copied in time, and reports it).
/// </summary>
public sealed record PrepareRecord(string SwitchId, string Family, string Action, string Write, string Read, bool WriteMoves, bool ReadMoves,
    string Coordinator, long DeadlineUnixMs, bool Force = false) : ControlRecord
{
    public override string Key => $"switch/{SwitchId}/prepare";
}

/// <summary>
/// The instance holds the family and nothing of it is in flight to the old clusters. <see cref="Mirrored"/>: the
/// instance runs the family's rollback mirror, which has copied back what the family wrote to the cluster its writes
/// leave (or, forced, what it could), as the rollback's <c>leftBehind</c>.
/// </summary>
public sealed record ReadyRecord(string SwitchId, string Instance, System.Text.Json.JsonElement? Mirrored = null) : ControlRecord
{
    public override string Key => $"switch/{SwitchId}/ready/{Instance}";
}

/// <summary>The instance could not hold and drain the family in time; the switch must abort.</summary>
public sealed record RefuseRecord(string SwitchId, string Instance, string Why) : ControlRecord
{
    public override string Key => $"switch/{SwitchId}/refuse/{Instance}";
}

/// <summary>
/// The family's new route and rollback window: every instance persists and swaps it in, then releases what it held. A
/// window's close is a commit of the same route and epoch with the window closed (no prepare: nothing is held).
/// </summary>
public sealed record CommitRecord(string SwitchId, string Family, string Write, string Read, long Epoch, long WriteEpoch,
    string? PreviousWrite, string? PreviousRead, DateTimeOffset UpdatedAt, RollbackWindow? Window = null) : ControlRecord
{
    // Keyed by family, so a compacted topic keeps each family's latest route.
    public override string Key => $"route/{Family}";

    // A commit written before rollback windows names only the previous route: an open window with that origin.
    public FamilyRoute ToRoute() => new(Family, new ClusterRoute(Write, Read), Epoch, UpdatedAt,
        Window ?? RollbackWindow.FromPrevious(PreviousWrite, PreviousRead, UpdatedAt, Epoch), WriteEpoch);

    // PreviousWrite/PreviousRead: an open window's origin, where a member of an earlier version rolls back to.
    public static CommitRecord From(string switchId, FamilyRoute route)
    {
        var origin = route.Window is { IsOpen: true } open ? open.Origin : null;
        return new(switchId, route.Family, route.Route.Write, route.Route.Read, route.Epoch, route.WriteEpoch, origin?.Write, origin?.Read,
            route.UpdatedAt, route.Window);
    }
}

/// <summary>The switch is off: every instance releases the family to its old route.</summary>
public sealed record AbortRecord(string SwitchId, string By, string Why) : ControlRecord
{
    public override string Key => $"switch/{SwitchId}/abort";
}

/// <summary>The instance routes by the committed table.</summary>
public sealed record AppliedRecord(string SwitchId, string Instance) : ControlRecord
{
    public override string Key => $"switch/{SwitchId}/applied/{Instance}";
}

/// <summary>An instance's periodic word: what it routes by and what it holds (for <c>GET /v1/fleet</c>).</summary>
public sealed record StatusRecord(string Instance, string Advertised, string Version, long RoutesEpoch, IReadOnlyList<string> HeldFamilies,
    DateTimeOffset At) : ControlRecord
{
    public override string Key => $"status/{Instance}";
}

/// <summary>The fleet-wide audit trail: every switch and rollback, from whichever instance ran it.</summary>
public sealed record AuditRecord(string Instance, AuditEntry Entry) : ControlRecord
{
    public override string Key => $"audit/{Entry.Time.ToUnixTimeMilliseconds()}/{Instance}";
}

/// <summary>
/// An idempotent producer's mapping on one partition, shared so that a producer that reconnects to another instance
/// (its own died) keeps the same upstream producer id, epoch and sequences, and its retried batch is still recognised
/// as a duplicate.
/// </summary>
public sealed record ProducerMappingRecord(string Instance, ProducerSegmentEntry Entry) : ControlRecord
{
    public override string Key => $"producer/{Entry.ProducerId}/{Entry.ProducerEpoch}/{Entry.Topic}/{Entry.Partition}";
}

/// <summary>
/// A transactional id's state (where it was initialised, its mapping and sequence bases on another cluster, its open
/// transaction), shared so that a transactional producer whose instance died goes on through another one.
/// </summary>
public sealed record TransactionalIdRecord(string Instance, TransactionalIdEntry Entry) : ControlRecord
{
    // With compaction: the latest origin, mapping and open-or-ended state of each id, and the bases of its mappings
    // (a base of an older mapping no longer matches its producer id and is ignored).
    public override string Key => Entry switch
    {
        TransactionOriginEntry => $"transactional/{Entry.TransactionalId}/origin",
        TransactionMappingEntry => $"transactional/{Entry.TransactionalId}/mapping",
        TransactionSequenceBaseEntry b => $"transactional/{Entry.TransactionalId}/base/{b.ProducerId}/{b.Epoch}/{b.Topic}/{b.Partition}",
        _ => $"transactional/{Entry.TransactionalId}/transaction",
    };
}
