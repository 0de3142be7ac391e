namespace Switchback.Proxy.Routing;

/// <summary>Where a family's traffic goes: records and producer ids to <see cref="Write"/>, fetches and groups to <see cref="Read"/>.</summary>
public sealed record ClusterRoute(string Write, string Read)
{
    public override string ToString() => $"write={Write} read={Read}";
}
