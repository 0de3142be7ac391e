using System.Text.Json.Serialization;

namespace Switchback.Proxy.Scorecard;

/// <summary>A gate's colour: <c>green</c> ready, <c>red</c> not ready, <c>unknown</c> the evidence could not be had.</summary>
public static class GateStatus
{
    public const string Green = "green";
    public const string Red = "red";
    public const string Unknown = "unknown";
}

/// <summary>The names of the scorecard's five gates, in the order they are shown.</summary>
public static class ScorecardGates
{
    public const string DataParity = "data-parity";
    public const string OffsetParity = "offset-parity";
    public const string ClientRouting = "client-routing";
    public const string SourceReadiness = "source-readiness";
    public const string DecisionAuthority = "decision-authority";

    public static readonly string[] All = [DataParity, OffsetParity, ClientRouting, SourceReadiness, DecisionAuthority];
}

/// <summary>One gate of a scorecard: its colour, a one-line summary and the evidence behind it.</summary>
public sealed record ScorecardGate(
    [property: JsonPropertyName("gate")] string Gate,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("summary")] string Summary,
    [property: JsonPropertyName("evidence")] object? Evidence);

/// <summary>
/// A family's readiness for a switch or a rollback, as of <see cref="ComputedAt"/>: the five gates of a migration wave.
/// <see cref="Takeover"/> is the route a switch (or, with an open window, a rollback) would move the family to;
/// <see cref="OldCluster"/> is the cluster that must stay ready to return to.
/// </summary>
public sealed record FamilyScorecard(
    [property: JsonPropertyName("family")] string Family,
    [property: JsonPropertyName("computedAt")] DateTimeOffset ComputedAt,
    [property: JsonPropertyName("route")] object Route,
    [property: JsonPropertyName("takeover")] object? Takeover,
    [property: JsonPropertyName("oldCluster")] string OldCluster,
    [property: JsonPropertyName("gates")] IReadOnlyList<ScorecardGate> Gates);
