using System.Net;
using System.Text.Json;
using Switchback.Proxy.Tests.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Admin;

/// <summary><c>GET /v1/audit</c>: the audit log the console's timeline shows.</summary>
public sealed class AuditEndpointTests
{
    [Fact]
    public async Task Audit_ListsNewestFirst_FiltersByFamily_AndKeepsToTheLimit()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 1, token: "audit-secret", readToken: "audit-read");
        Assert.Empty((await rig.SendAsync(HttpMethod.Get, "v1/audit", null, "audit-read")).Body.EnumerateArray());

        Assert.Equal(HttpStatusCode.OK, (await rig.SwitchAsync(new { write = "target", force = true, reason = "first" })).Status);
        Assert.Equal(HttpStatusCode.OK, (await rig.RollbackAsync(new { reason = "second" })).Status);
        Assert.Equal(HttpStatusCode.OK, (await rig.SwitchAsync(new { read = "target", force = true, reason = "third" })).Status);

        var all = await rig.SendAsync(HttpMethod.Get, "v1/audit", null, "audit-read");
        Assert.Equal(HttpStatusCode.OK, all.Status);
        var entries = all.Body.EnumerateArray().ToList();
        Assert.Equal(["third", "second", "first"], entries.Select(e => e.GetProperty("reason").GetString()));
        Assert.Equal(["switch", "rollback", "switch"], entries.Select(e => e.GetProperty("action").GetString()));
        var first = entries[2];
        Assert.Equal(SwitchingRig.Family, first.GetProperty("family").GetString());
        Assert.Equal("write=source read=source", first.GetProperty("from").GetString());
        Assert.Equal("write=target read=source", first.GetProperty("to").GetString());
        Assert.Equal("ok", first.GetProperty("outcome").GetString());
        Assert.Contains("with the admin token", first.GetProperty("caller").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Number, first.GetProperty("pauseMs").ValueKind);
        var times = entries.Select(e => e.GetProperty("time").GetDateTimeOffset()).ToList();
        Assert.Equal(times.OrderByDescending(t => t), times);

        var newest = (await rig.SendAsync(HttpMethod.Get, "v1/audit?limit=2", null, "audit-read")).Body.EnumerateArray();
        Assert.Equal(["third", "second"], newest.Select(e => e.GetProperty("reason").GetString()));
        var family = (await rig.SendAsync(HttpMethod.Get, $"v1/audit?family={SwitchingRig.Family}&limit=1000", null, "audit-read")).Body.EnumerateArray();
        Assert.Equal(3, family.Count());
        var other = await rig.SendAsync(HttpMethod.Get, "v1/audit?family=payments", null, "audit-read");
        Assert.Equal(HttpStatusCode.OK, other.Status);
        Assert.Empty(other.Body.EnumerateArray());
    }

    [Fact]
    public async Task Audit_RefusesALimitOutsideOneToAThousand_AndNeedsTheToken()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 1, token: "audit-secret");
        foreach (var limit in new[] { "0", "1001", "-1", "ten", "1.5", "" })
        {
            var answer = await rig.SendAsync(HttpMethod.Get, $"v1/audit?limit={limit}", null, "audit-secret");
            Assert.True(answer.Status == HttpStatusCode.BadRequest, $"limit={limit}: {answer}");
            Assert.Contains("'limit'", answer.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
        }
        Assert.Equal(HttpStatusCode.OK, (await rig.SendAsync(HttpMethod.Get, "v1/audit?limit=1000", null, "audit-secret")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await rig.SendAsync(HttpMethod.Get, "v1/audit", null, null)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await rig.SendAsync(HttpMethod.Get, "v1/audit", null, "guess")).Status);
    }
}
