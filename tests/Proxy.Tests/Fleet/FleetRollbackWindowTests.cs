using System.Net;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Tests.Switching;
using Switchback.Proxy.Window;
using Xunit;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// The rollback window in a fleet: it travels with the route in the control log's commits, so every member routes by
/// and persists the same window, whichever instance switched, rolled back or closed it.
/// </summary>
public sealed class FleetRollbackWindowTests
{
    [Fact]
    public async Task SwitchesOnOneInstance_RollbackOnAnother_ReturnsToTheOrigin_CloseOnOneIsSeenByEvery()
    {
        await using var rig = await FleetRig.StartAsync(instances: 2);
        foreach (var body in new object[] { new { read = "target", force = true }, new { write = "target", force = true } })
        {
            var answer = await rig.PostAsync("p1", "v1/families/orders/switch", body);
            Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        }
        await ProduceAsync(rig["p2"].BootstrapServers, "on-target");
        Assert.Contains(SwitchingRig.ReadAll(rig.Target, "target", FleetRig.Topic, rig.Partitions), r => r.Key == "on-target");
        var opened = await rig.GetAsync("p2", "v1/families/orders/window");
        Assert.Equal(("open", "source", "source", 1L), Window(opened));

        var rolledBack = await rig.PostAsync("p2", "v1/families/orders/rollback", new { reason = "fleet window test" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.True(rolledBack.Body.GetProperty("changed").GetBoolean());
        // A 200 means every live member routes by the origin again.
        Assert.All(rig.Instances.Values, host => Assert.Equal(new ClusterRoute("source", "source"), host.State.Routes.Current.Find(FleetRig.Family)!.Route));
        await ProduceAsync(rig["p1"].BootstrapServers, "back-on-source");
        Assert.Contains(SwitchingRig.ReadAll(rig.Source, "source", FleetRig.Topic, rig.Partitions), r => r.Key == "back-on-source");

        // Repeated on the instance that switched: nothing changes anywhere.
        var again = await rig.PostAsync("p1", "v1/families/orders/rollback", new { reason = "fleet window test, retried" });
        Assert.True(again.Status == HttpStatusCode.OK, again.ToString());
        Assert.False(again.Body.GetProperty("changed").GetBoolean());
        Assert.Equal(rolledBack.Body.GetProperty("epoch").GetInt64(), again.Body.GetProperty("epoch").GetInt64());
        Assert.All(rig.Instances.Values, host => Assert.Equal(3, host.State.Routes.Current.Find(FleetRig.Family)!.Epoch));

        var closed = await rig.PostAsync("p2", "v1/families/orders/close", new { reason = "abandoned" });
        Assert.True(closed.Status == HttpStatusCode.OK, closed.ToString());
        // A 200 means every live member has applied the close.
        var seen = await rig.GetAsync("p1", "v1/families/orders/window");
        Assert.Equal(("closed", "source", "source", 1L), Window(seen));
        Assert.Equal("abandoned", seen.Body.GetProperty("closeReason").GetString());
        var refused = await rig.PostAsync("p1", "v1/families/orders/rollback", new { reason = "after the close" });
        Assert.True(refused.Status == HttpStatusCode.Conflict, refused.ToString());

        // Every member persisted the same window, and an instance that joins later takes it from the log.
        var window = rig["p1"].State.Routes.Current.Find(FleetRig.Family)!.Window;
        foreach (var id in rig.Instances.Keys)
        {
            var config = rig[id].State.Config;
            Assert.Equal(window, new RouteStore(config.StateDirectory).Load(config, RouteTable.FromConfig(config)).Find(FleetRig.Family)!.Window);
        }
        var late = await rig.StartInstanceAsync("p3");
        Assert.Equal(window, late.State.Routes.Current.Find(FleetRig.Family)!.Window);
        Assert.Equal(("closed", "source", "source", 1L), Window(await rig.GetAsync("p3", "v1/families/orders/window")));
    }

    [Fact]
    public async Task RollbackOnAnInstanceThatDoesNotRunTheMirror_WaitsForTheMemberThatDoes_AndEndsIt()
    {
        await using var rig = await FleetRig.StartAsync(instances: 2, mirrorBack: true);
        var switched = await rig.PostAsync("p1", "v1/families/orders/switch", new { write = "target", force = true, reason = "p1 mirrors" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        Assert.Equal("copying target to source", switched.Body.GetProperty("details").GetProperty("mirror").GetString());
        var mirrors = rig["p1"].Services.GetRequiredService<MirrorSupervisor>();
        Assert.NotNull(mirrors.Mirror(FleetRig.Family));
        Assert.Null(rig["p2"].Services.GetRequiredService<MirrorSupervisor>().Mirror(FleetRig.Family));

        // Written through p2 right before the rollback called on p2: only p1's mirror copies them back.
        var keys = Enumerable.Range(0, 200).Select(i => $"mirrored-{i}").ToList();
        await ProduceAsync(rig["p2"].BootstrapServers, [.. keys]);
        var rolledBack = await rig.PostAsync("p2", "v1/families/orders/rollback", new { reason = "rollback on the other instance" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        var details = rolledBack.Body.GetProperty("details");
        Assert.Equal("caught up and ended on p1", details.GetProperty("mirror").GetString());
        Assert.Equal(0, details.GetProperty("leftBehind").GetProperty("records").GetInt64());

        // Nothing left behind: every record once on source, in the order target holds it per partition.
        var target = SwitchingRig.ReadAll(rig.Target, "target", FleetRig.Topic, rig.Partitions).Where(r => r.Key.StartsWith("mirrored-", StringComparison.Ordinal)).ToList();
        var source = SwitchingRig.ReadAll(rig.Source, "source", FleetRig.Topic, rig.Partitions).Where(r => r.Key.StartsWith("mirrored-", StringComparison.Ordinal)).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), source.Select(r => r.Key).Order(StringComparer.Ordinal));
        for (var partition = 0; partition < rig.Partitions; partition++)
        {
            Assert.Equal(target.Where(r => r.Partition == partition).Select(r => r.Key), source.Where(r => r.Partition == partition).Select(r => r.Key));
        }
        // p1 ended its mirror once the commit returned the writes to source.
        await FleetSwitchTests.WaitForAsync(() => mirrors.Mirror(FleetRig.Family) is null, "p1's mirror ended after the rollback");
    }

    private static (string? State, string? FromWrite, string? FromRead, long OpenedEpoch) Window(AdminAnswer answer)
    {
        Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        var from = answer.Body.GetProperty("from");
        return (answer.Body.GetProperty("state").GetString(), from.GetProperty("write").GetString(), from.GetProperty("read").GetString(),
            answer.Body.GetProperty("openedEpoch").GetInt64());
    }

    private static async Task ProduceAsync(string bootstrap, params string[] keys)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrap, EnableIdempotence = true, MessageTimeoutMs = 20_000 })
            .SetLogHandler(static (_, _) => { }).Build();
        var delivered = await Task.WhenAll(keys.Select(key => producer.ProduceAsync(FleetRig.Topic, new Message<string, string> { Key = key, Value = key })));
        Assert.All(delivered, d => Assert.Equal(PersistenceStatus.Persisted, d.Status));
    }
}
