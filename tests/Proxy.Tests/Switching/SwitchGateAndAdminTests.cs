using System.Net;
using System.Text.Json;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>Refused switches, admin input validation and durable routes, against two mock clusters.</summary>
public sealed class SwitchGateAndAdminTests
{
    [Fact]
    public async Task Switch_ToLaggingTarget_IsRefusedWithEvidence()
    {
        await using var rig = await SwitchingRig.StartAsync();
        // Source holds 5 records on partition 1 and 3 on partition 2; target holds none.
        await SwitchingRig.ProduceDirectAsync(rig.Source,
            [.. Enumerable.Range(0, 5).Select(i => (1, $"k{i}", $"v{i}")), .. Enumerable.Range(0, 3).Select(i => (2, $"k{i}", $"v{i}"))]);

        var answer = await rig.SwitchAsync(new { write = "target", reason = "lagging-test" });

        Assert.Equal(HttpStatusCode.Conflict, answer.Status);
        var failed = answer.Body.GetProperty("failed").EnumerateArray().ToList();
        var parity = Assert.Single(failed);
        Assert.Equal("data-parity-write", parity.GetProperty("gate").GetString());
        Assert.Contains("behind source by 8 record(s) on 2 partition(s)", parity.GetProperty("summary").GetString(), StringComparison.Ordinal);
        var evidence = parity.GetProperty("evidence").EnumerateArray()
            .ToDictionary(e => e.GetProperty("partition").GetInt32(), e => (From: e.GetProperty("fromEnd").GetInt64(), To: e.GetProperty("toEnd").GetInt64(), Behind: e.GetProperty("behindBy").GetInt64()));
        Assert.Equal((5L, 0L, 5L), evidence[1]);
        Assert.Equal((3L, 0L, 3L), evidence[2]);
        Assert.Equal(2, evidence.Count);

        var family = await rig.FamilyAsync();
        Assert.Equal("source", family.Body.GetProperty("write").GetString());
        Assert.Equal("source", family.Body.GetProperty("read").GetString());
        Assert.Equal(0, family.Body.GetProperty("epoch").GetInt64());

        var audit = new AuditLog(rig.StateDirectory).ReadAll();
        var entry = Assert.Single(audit);
        Assert.Equal(("switch", SwitchingRig.Family, "refused", "lagging-test"), (entry.Action, entry.Family, entry.Outcome, entry.Reason));
        Assert.Contains("behind source by 8", entry.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Switch_SurvivesRestart()
    {
        await using var rig = await SwitchingRig.StartAsync();
        var switched = await rig.SwitchAsync(new { write = "target", read = "target", force = true, reason = "restart-test" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        Assert.Equal(1, switched.Body.GetProperty("epoch").GetInt64());

        await rig.RestartAsync();

        var family = await rig.FamilyAsync();
        Assert.Equal(("target", "target", 1L), (family.Body.GetProperty("write").GetString(), family.Body.GetProperty("read").GetString(), family.Body.GetProperty("epoch").GetInt64()));
        // The route that survived is the one traffic takes, and the previous route is still there to roll back to.
        await ProduceThroughProxyAsync(rig, 10);
        Assert.Equal(10, rig.EndOffsets(rig.Target).Sum());
        Assert.Equal(0, rig.EndOffsets(rig.Source).Sum());
        var rolledBack = await rig.RollbackAsync(new { reason = "after-restart" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.Equal(("source", 2L), (rolledBack.Body.GetProperty("write").GetString(), rolledBack.Body.GetProperty("epoch").GetInt64()));
    }

    [Fact]
    public async Task Switch_CrashBetweenPersistAndAck_LeavesConsistentRoute()
    {
        await using var rig = await SwitchingRig.StartAsync();
        await rig.StopProxyAsync();

        // What a switch has done when it crashes right after persisting: routes.json holds the new table, and a
        // later, interrupted save left a torn temporary file behind.
        var config = ConfigValidator.Load(rig.Configuration());
        var store = new RouteStore(rig.StateDirectory);
        var initial = RouteTable.FromConfig(config);
        var before = initial.Find(SwitchingRig.Family)!;
        store.Save(initial.With(new FamilyRoute(SwitchingRig.Family, new ClusterRoute("target", "source"), before.Epoch + 1, DateTimeOffset.UtcNow,
            new RollbackWindow(before.Route, DateTimeOffset.UtcNow, before.Epoch + 1), before.Epoch + 1)));
        await File.WriteAllTextAsync(store.FilePath + ".tmp", "{\"version\":1,\"families\":[{\"family\":\"orders\",\"wri\u0000garbage");

        await rig.RestartAsync();

        var family = await rig.FamilyAsync();
        Assert.Equal(("target", "source", 1L), (family.Body.GetProperty("write").GetString(), family.Body.GetProperty("read").GetString(), family.Body.GetProperty("epoch").GetInt64()));
        Assert.Equal("source", family.Body.GetProperty("previous").GetProperty("write").GetString());
        await ProduceThroughProxyAsync(rig, 7);
        Assert.Equal(7, rig.EndOffsets(rig.Target).Sum());
        Assert.Equal(0, rig.EndOffsets(rig.Source).Sum());

        // The next switch continues from the persisted epoch, and replaces the torn file.
        var next = await rig.SwitchAsync(new { read = "target", force = true });
        Assert.True(next.Status == HttpStatusCode.OK, next.ToString());
        Assert.Equal(2, next.Body.GetProperty("epoch").GetInt64());
        Assert.False(File.Exists(store.FilePath + ".tmp"));
    }

    [Fact]
    public async Task Restart_WithOnlyATornTemporaryRouteFile_UsesConfiguredRoutes()
    {
        await using var rig = await SwitchingRig.StartAsync();
        await rig.StopProxyAsync();
        await File.WriteAllTextAsync(Path.Combine(rig.StateDirectory, "routes.json.tmp"), "{\"families\":[{\"fam");

        await rig.RestartAsync();

        var family = await rig.FamilyAsync();
        Assert.Equal(("source", "source", 0L), (family.Body.GetProperty("write").GetString(), family.Body.GetProperty("read").GetString(), family.Body.GetProperty("epoch").GetInt64()));
    }

    [Fact]
    public async Task Admin_BadInput_Gets4xxWithClearMessage()
    {
        const string token = "s3cret-token";
        await using var rig = await SwitchingRig.StartAsync(token: token);

        await ExpectAsync(rig.PostAsync("v1/families/nosuch/switch", """{"write":"target"}"""), HttpStatusCode.NotFound, "Unknown family 'nosuch'");
        await ExpectAsync(rig.PostAsync("v1/families/nosuch/rollback", ""), HttpStatusCode.NotFound, "Unknown family 'nosuch'");
        await ExpectAsync(rig.SendAsync(HttpMethod.Get, "v1/families/nosuch", null, token), HttpStatusCode.NotFound, "Unknown family 'nosuch'");
        await ExpectAsync(rig.PostAsync("v1/families/orders/switch", """{"write":"elsewhere"}"""), HttpStatusCode.BadRequest, "Unknown cluster 'elsewhere'");
        await ExpectAsync(rig.PostAsync("v1/families/orders/switch", """{"write":"target","""), HttpStatusCode.BadRequest, "Malformed JSON");
        await ExpectAsync(rig.PostAsync("v1/families/orders/switch", """["target"]"""), HttpStatusCode.BadRequest, "must be a JSON object");
        await ExpectAsync(rig.PostAsync("v1/families/orders/switch", """{"write":"target","forse":true}"""), HttpStatusCode.BadRequest, "Unknown field 'forse'");
        await ExpectAsync(rig.PostAsync("v1/families/orders/switch", """{"write":"target","force":"yes"}"""), HttpStatusCode.BadRequest, "'force' must be true or false");
        await ExpectAsync(rig.PostAsync("v1/families/orders/switch", """{"write":"target","timeoutMs":-5}"""), HttpStatusCode.BadRequest, "'timeoutMs' must be");
        await ExpectAsync(rig.PostAsync("v1/families/orders/switch", """{"reason":"nothing to do"}"""), HttpStatusCode.BadRequest, "Give 'write' and/or 'read'");
        await ExpectAsync(rig.PostAsync("v1/families/orders/switch", ""), HttpStatusCode.BadRequest, "Give 'write' and/or 'read'");
        await ExpectAsync(rig.PostAsync("v1/families/orders/rollback", """{"reason":"nothing yet"}"""), HttpStatusCode.Conflict, "nothing to roll back");
        await ExpectAsync(rig.SendAsync(HttpMethod.Post, "v1/families/orders/switch", """{"write":"target","force":true}""", null), HttpStatusCode.Unauthorized, "Missing bearer token");
        await ExpectAsync(rig.SendAsync(HttpMethod.Post, "v1/families/orders/switch", """{"write":"target","force":true}""", "wrong"), HttpStatusCode.Unauthorized, "Invalid bearer token");
        await ExpectAsync(rig.SendAsync(HttpMethod.Get, "v1/families", null, null), HttpStatusCode.Unauthorized, "Missing bearer token");

        // None of that changed anything.
        var family = await rig.FamilyAsync();
        Assert.Equal(("source", "source", 0L), (family.Body.GetProperty("write").GetString(), family.Body.GetProperty("read").GetString(), family.Body.GetProperty("epoch").GetInt64()));

        var (code, stderr) = await RunCliAsync(["switch", "nosuch", "--write", "target", "--admin", rig.AdminUrl, "--token", token]);
        Assert.NotEqual(0, code);
        Assert.Contains("404", stderr, StringComparison.Ordinal);
        Assert.Contains("Unknown family 'nosuch'", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));

        (code, stderr) = await RunCliAsync(["switch", "orders", "--write", "target", "--force", "--admin", rig.AdminUrl]);
        Assert.NotEqual(0, code);
        Assert.Contains("401", stderr, StringComparison.Ordinal);

        (code, stderr) = await RunCliAsync(["switch", "orders", "--admin", rig.AdminUrl, "--token", token]);
        Assert.NotEqual(0, code);
        Assert.Contains("--write and/or --read", stderr, StringComparison.Ordinal);
    }

    private static async Task ExpectAsync(Task<AdminAnswer> call, HttpStatusCode status, string message)
    {
        var answer = await call;
        Assert.True(answer.Status == status, $"expected {(int)status}, got {answer}");
        Assert.Equal(JsonValueKind.Object, answer.Body.ValueKind);
        Assert.Contains(message, answer.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    private static Task<(int Code, string Stderr)> RunCliAsync(string[] args) => AdminCliRunner.RunAsync(args);

    private static async Task ProduceThroughProxyAsync(SwitchingRig rig, int count)
    {
        using var producer = new Confluent.Kafka.ProducerBuilder<string, string>(new Confluent.Kafka.ProducerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            Acks = Confluent.Kafka.Acks.All,
            MessageTimeoutMs = 15_000,
        }).SetLogHandler(static (_, _) => { }).Build();
        for (var i = 0; i < count; i++)
        {
            var result = await producer.ProduceAsync(SwitchingRig.Topic, new Confluent.Kafka.Message<string, string> { Key = $"k{i}", Value = $"v{i}" });
            Assert.Equal(Confluent.Kafka.PersistenceStatus.Persisted, result.Status);
        }
    }
}
