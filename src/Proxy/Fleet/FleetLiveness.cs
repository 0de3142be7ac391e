using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Fleet;

/// <summary>The fleet's view of liveness, from this instance's <see cref="FleetMembership"/> in the fleet's group.</summary>
public sealed class FleetLiveness : IFleetLiveness
{
    private readonly FleetMembership _membership;

    private FleetLiveness(FleetMembership membership)
    {
        _membership = membership;
        _membership.ViewChanged += _ => Changed?.Invoke();
        _membership.RenewalChanged += _ => Changed?.Invoke();
    }

    public static IFleetLiveness Create(ProxyState state, FleetConfig fleet, ILogger logger)
    {
        var config = state.Config;
        var self = new FleetInstanceInfo(fleet.InstanceId, $"{config.AdvertisedHost}:{config.AdvertisedPort}", config.AdminEndPoint.ToString(),
            typeof(FleetLiveness).Assembly.GetName().Version?.ToString() ?? "unknown");
        return new FleetLiveness(new FleetMembership(fleet.GroupId, self, config.Cluster(fleet.Cluster),
            new FleetMembershipOptions { SessionTimeout = fleet.SessionTimeout }, logger));
    }

    public IReadOnlyList<string> LiveInstances => _membership.Current?.Members.Select(m => m.InstanceId).ToList() ?? [];

    public string? LeaderInstance => _membership.Current?.Leader?.InstanceId;

    public int Generation => _membership.Current?.Generation ?? -1;

    public DateTimeOffset RenewedUntil => _membership.RenewedUntil;

    public bool IsRenewed => _membership.IsRenewed;

    public event Action? Changed;

    public Task StartAsync(CancellationToken cancellationToken) => _membership.StartAsync(cancellationToken);

    private int _disposed;

    public ValueTask DisposeAsync() => Interlocked.Exchange(ref _disposed, 1) == 1 ? ValueTask.CompletedTask : _membership.DisposeAsync();
}
