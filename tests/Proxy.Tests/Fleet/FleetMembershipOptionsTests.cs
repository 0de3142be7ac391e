using Switchback.Proxy.Fleet;
using Xunit;

namespace Switchback.Proxy.Tests.Fleet;

public sealed class FleetMembershipOptionsTests
{
    [Fact]
    public void Defaults_AreValid_WithARebalanceTimeoutNoShorterThanTheSession()
    {
        new FleetMembershipOptions().Validate();
        var longSession = new FleetMembershipOptions { SessionTimeout = TimeSpan.FromSeconds(90) };
        longSession.Validate();
        Assert.Equal(TimeSpan.FromSeconds(90), longSession.EffectiveRebalanceTimeout);
    }

    [Fact]
    public void RebalanceTimeoutShorterThanTheSession_IsRefused()
    {
        // A rebalance could then drop a cut-off member before its lease ran out.
        var options = new FleetMembershipOptions { SessionTimeout = TimeSpan.FromSeconds(10), RebalanceTimeout = TimeSpan.FromSeconds(5) };
        Assert.Contains("RebalanceTimeout", Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RenewalMargin_IsATenthOfTheSession_AtLeastHalfASecond()
    {
        Assert.Equal(TimeSpan.FromSeconds(3), new FleetMembershipOptions { SessionTimeout = TimeSpan.FromSeconds(30) }.RenewalMargin);
        Assert.Equal(TimeSpan.FromMilliseconds(500), new FleetMembershipOptions { SessionTimeout = TimeSpan.FromSeconds(3) }.RenewalMargin);
    }

    [Fact]
    public void HeartbeatIntervalThatCannotRenewTheLease_IsRefused()
    {
        var options = new FleetMembershipOptions { SessionTimeout = TimeSpan.FromSeconds(4), HeartbeatInterval = TimeSpan.FromSeconds(4) };
        Assert.Contains("HeartbeatInterval", Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
    }
}
