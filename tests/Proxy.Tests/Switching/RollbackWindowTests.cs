using System.Net;
using System.Text.Json;
using Confluent.Kafka;
using Switchback.Proxy.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// The rollback window: opened by a family's first switch, returned to by a rollback whatever switches followed,
/// closed by an operator. Real clients produce and read through the proxy over two mock clusters; partition 0 of
/// each cluster starts with a record naming that cluster, so a read through the proxy tells which cluster serves it.
/// </summary>
public sealed class RollbackWindowTests
{
    [Fact]
    public async Task ReadSwitchThenWriteSwitch_Rollback_ReturnsBothRoutesToTheOrigin_AndASecondRollbackChangesNothing()
    {
        await using var rig = await StartAsync();
        var none = await rig.WindowAsync();
        Assert.Equal("none", none.Body.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, none.Body.GetProperty("from").ValueKind);

        var read = await rig.SwitchAsync(new { read = "target", force = true, reason = "window test: reads" });
        Assert.True(read.Status == HttpStatusCode.OK, read.ToString());
        Assert.Equal("target", await FirstRecordThroughProxyAsync(rig));
        var opened = await rig.WindowAsync();
        AssertWindow(opened, "open", from: ("source", "source"), to: ("source", "target"), openedEpoch: 1);

        var write = await rig.SwitchAsync(new { write = "target", force = true, reason = "window test: writes" });
        Assert.True(write.Status == HttpStatusCode.OK, write.ToString());
        await ProduceThroughProxyAsync(rig, "on-target", 6);
        Assert.Equal(6, rig.ReadAll("target").Count(r => r.Key.StartsWith("on-target", StringComparison.Ordinal)));
        // The second switch did not move the window: same origin, same opening.
        var stillOpen = await rig.WindowAsync();
        AssertWindow(stillOpen, "open", from: ("source", "source"), to: ("target", "target"), openedEpoch: 1);
        Assert.Equal(opened.Body.GetProperty("openedAt").GetString(), stillOpen.Body.GetProperty("openedAt").GetString());
        // The mirror is not built: its figures are unknown, not zero, and the view says what a rollback leaves behind.
        Assert.Equal(WindowView.MirrorNotRunning, stillOpen.Body.GetProperty("mirror").GetString());
        foreach (var figure in new[] { "mirroredRecords", "mirrorLagRecords", "strayWrites" })
        {
            Assert.Equal(JsonValueKind.Null, stillOpen.Body.GetProperty(figure).ValueKind);
        }
        Assert.Contains("not copied back", stillOpen.Body.GetProperty("note").GetString(), StringComparison.Ordinal);

        var rolledBack = await rig.RollbackAsync(new { reason = "window test" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.True(rolledBack.Body.GetProperty("changed").GetBoolean());
        Assert.Equal(("source", "source", 3L), Route(rolledBack.Body));
        var details = rolledBack.Body.GetProperty("details");
        Assert.Equal(6, details.GetProperty("leftBehind").GetProperty("records").GetInt64());
        Assert.Equal(WindowView.MirrorNotRunning, details.GetProperty("mirror").GetString());
        Assert.Equal(JsonValueKind.Null, details.GetProperty("strayWrites").ValueKind);
        Assert.Equal("source", await FirstRecordThroughProxyAsync(rig));
        await ProduceThroughProxyAsync(rig, "back-on-source", 4);
        Assert.Equal(4, rig.ReadAll("source").Count(r => r.Key.StartsWith("back-on-source", StringComparison.Ordinal)));

        // Repeated (as after a lost answer), it changes nothing: no toggle back to target.
        var again = await rig.RollbackAsync(new { reason = "window test, retried" });
        Assert.True(again.Status == HttpStatusCode.OK, again.ToString());
        Assert.False(again.Body.GetProperty("changed").GetBoolean());
        Assert.Equal(("source", "source", 3L), Route(again.Body));
        Assert.Equal(("source", "source", 3L), Route((await rig.FamilyAsync()).Body));
        Assert.Equal("source", await FirstRecordThroughProxyAsync(rig));

        // The window stays open, at its origin, until an operator closes it.
        AssertWindow(await rig.WindowAsync(), "open", from: ("source", "source"), to: ("source", "source"), openedEpoch: 1);
        var audit = new AuditLog(rig.StateDirectory).ReadAll();
        Assert.Equal(["switch/ok", "switch/ok", "rollback/ok", "rollback/unchanged"], audit.Select(a => $"{a.Action}/{a.Outcome}"));
    }

    [Fact]
    public async Task ClosedWindow_RollbackNeedsForce_AndWithForceReturnsToItsOrigin()
    {
        await using var rig = await StartAsync();
        var switched = await rig.SwitchAsync(new { write = "target", read = "target", force = true });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        var closed = await rig.CloseAsync(new { reason = "target trusted" });
        Assert.True(closed.Status == HttpStatusCode.OK, closed.ToString());
        AssertWindow(closed, "closed", from: ("source", "source"), to: ("target", "target"), openedEpoch: 1);
        Assert.Equal("target trusted", closed.Body.GetProperty("closeReason").GetString());
        Assert.True(closed.Body.GetProperty("rollbackNeedsForce").GetBoolean());
        Assert.Equal(closed.Body.GetProperty("closedAt").GetString(), (await rig.WindowAsync()).Body.GetProperty("closedAt").GetString());
        // A close changes no route and no epoch.
        Assert.Equal(("target", "target", 1L), Route((await rig.FamilyAsync()).Body));

        var refused = await rig.RollbackAsync(new { reason = "second thoughts" });
        Assert.True(refused.Status == HttpStatusCode.Conflict, refused.ToString());
        Assert.Contains("closed at", refused.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("target trusted", refused.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(("target", "target", 1L), Route((await rig.FamilyAsync()).Body));
        Assert.Equal("target", await FirstRecordThroughProxyAsync(rig));

        var forced = await rig.RollbackAsync(new { reason = "second thoughts", force = true });
        Assert.True(forced.Status == HttpStatusCode.OK, forced.ToString());
        Assert.Equal(("source", "source", 2L), Route(forced.Body));
        Assert.Equal("source", await FirstRecordThroughProxyAsync(rig));
        // A rollback opens no window: it stays closed, and closing it again is refused.
        AssertWindow(await rig.WindowAsync(), "closed", from: ("source", "source"), to: ("source", "source"), openedEpoch: 1);
        var closeAgain = await rig.CloseAsync(new { });
        Assert.True(closeAgain.Status == HttpStatusCode.Conflict, closeAgain.ToString());
        Assert.Contains("already closed", closeAgain.Body.GetProperty("error").GetString(), StringComparison.Ordinal);

        // The next switch opens a new window, whose origin is the routes it replaces.
        var next = await rig.SwitchAsync(new { write = "target", force = true });
        Assert.True(next.Status == HttpStatusCode.OK, next.ToString());
        AssertWindow(await rig.WindowAsync(), "open", from: ("source", "source"), to: ("target", "source"), openedEpoch: 3);

        var audit = new AuditLog(rig.StateDirectory).ReadAll();
        Assert.Equal(["switch/ok", "close/ok", "rollback/refused", "rollback/ok", "close/refused", "switch/ok"], audit.Select(a => $"{a.Action}/{a.Outcome}"));
        Assert.Equal("target trusted", audit[1].Reason);
    }

    [Fact]
    public async Task Close_WithNoWindowOrBadInput_IsRefusedWithAClearMessage()
    {
        await using var rig = await StartAsync();
        var none = await rig.CloseAsync(new { reason = "too early" });
        Assert.True(none.Status == HttpStatusCode.Conflict, none.ToString());
        Assert.Contains("no open rollback window", none.Body.GetProperty("error").GetString(), StringComparison.Ordinal);

        await ExpectAsync(rig.PostAsync("v1/families/nosuch/close", ""), HttpStatusCode.NotFound, "Unknown family 'nosuch'");
        await ExpectAsync(rig.SendAsync(HttpMethod.Get, "v1/families/nosuch/window", null, null), HttpStatusCode.NotFound, "Unknown family 'nosuch'");
        await ExpectAsync(rig.PostAsync("v1/families/orders/close", """{"reasn":"typo"}"""), HttpStatusCode.BadRequest, "Unknown field 'reasn'");
        await ExpectAsync(rig.PostAsync("v1/families/orders/close", """{"reason":5}"""), HttpStatusCode.BadRequest, "'reason' must be a non-empty string");
        await ExpectAsync(rig.PostAsync("v1/families/orders/close", """{"reason":"x","""), HttpStatusCode.BadRequest, "Malformed JSON");
        await ExpectAsync(rig.PostAsync("v1/families/orders/rollback", """{"force":"yes"}"""), HttpStatusCode.BadRequest, "'force' must be true or false");
        await ExpectAsync(rig.PostAsync("v1/families/orders/rollback", """{"force":true}"""), HttpStatusCode.Conflict, "nothing to roll back");

        Assert.Equal("none", (await rig.WindowAsync()).Body.GetProperty("state").GetString());
        Assert.Equal(["close/refused", "rollback/refused"], new AuditLog(rig.StateDirectory).ReadAll().Select(a => $"{a.Action}/{a.Outcome}"));
    }

    [Fact]
    public async Task Window_SurvivesProxyRestarts_OpenAndClosed()
    {
        await using var rig = await StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await rig.SwitchAsync(new { read = "target", force = true })).Status);
        Assert.Equal(HttpStatusCode.OK, (await rig.SwitchAsync(new { write = "target", force = true })).Status);
        var before = await rig.WindowAsync();

        await rig.RestartAsync();

        var open = await rig.WindowAsync();
        AssertWindow(open, "open", from: ("source", "source"), to: ("target", "target"), openedEpoch: 1);
        Assert.Equal(before.Body.GetProperty("openedAt").GetString(), open.Body.GetProperty("openedAt").GetString());
        Assert.Equal(HttpStatusCode.OK, (await rig.CloseAsync(new { reason = "before restart" })).Status);

        await rig.RestartAsync();

        var closed = await rig.WindowAsync();
        AssertWindow(closed, "closed", from: ("source", "source"), to: ("target", "target"), openedEpoch: 1);
        Assert.Equal("before restart", closed.Body.GetProperty("closeReason").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await rig.RollbackAsync(new { reason = "after restart" })).Status);
        var forced = await rig.RollbackAsync(new { reason = "after restart", force = true });
        Assert.True(forced.Status == HttpStatusCode.OK, forced.ToString());
        Assert.Equal(("source", "source", 3L), Route(forced.Body));
        Assert.Equal("source", await FirstRecordThroughProxyAsync(rig));
    }

    [Fact]
    public async Task StateFileFromBeforeWindows_PreviousRouteLoadsAsAnOpenWindow_RollbackDoesNotToggle()
    {
        await using var rig = await StartAsync();
        await rig.StopProxyAsync();
        // What an earlier version wrote after a write switch: the route and the one before it, no window.
        await File.WriteAllTextAsync(Path.Combine(rig.StateDirectory, "routes.json"), """
            {"version":1,"families":[{"family":"orders","write":"target","read":"source","epoch":4,"updatedAt":"2026-11-20T10:00:00+00:00",
             "previousWrite":"source","previousRead":"source","writeEpoch":4}]}
            """);

        await rig.RestartAsync();

        var window = await rig.WindowAsync();
        AssertWindow(window, "open", from: ("source", "source"), to: ("target", "source"), openedEpoch: 4);
        Assert.Equal(new DateTimeOffset(2026, 11, 20, 10, 0, 0, TimeSpan.Zero), window.Body.GetProperty("openedAt").GetDateTimeOffset());
        await ProduceThroughProxyAsync(rig, "loaded", 3);
        Assert.Equal(3, rig.ReadAll("target").Count(r => r.Key.StartsWith("loaded", StringComparison.Ordinal)));

        var rolledBack = await rig.RollbackAsync(new { reason = "old state" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.Equal(("source", "source", 5L), Route(rolledBack.Body));
        var again = await rig.RollbackAsync(new { reason = "old state, again" });
        Assert.False(again.Body.GetProperty("changed").GetBoolean());
        Assert.Equal(("source", "source", 5L), Route(again.Body));

        // Saved in the new format, with the window.
        using var saved = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(rig.StateDirectory, "routes.json")));
        Assert.Equal(2, saved.RootElement.GetProperty("version").GetInt32());
        Assert.Equal(4, saved.RootElement.GetProperty("families")[0].GetProperty("window").GetProperty("openedEpoch").GetInt64());
    }

    [Fact]
    public async Task Cli_CloseAndForcedRollback_ExitCodesAsTheOtherCommands()
    {
        await using var rig = await StartAsync();
        var admin = new[] { "--admin", rig.AdminUrl };

        var (code, stderr) = await AdminCliRunner.RunAsync(["close", "orders", .. admin]);
        Assert.NotEqual(0, code);
        Assert.Contains("409", stderr, StringComparison.Ordinal);
        Assert.Contains("no open rollback window", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));

        Assert.Equal(HttpStatusCode.OK, (await rig.SwitchAsync(new { write = "target", force = true })).Status);
        (code, stderr) = await AdminCliRunner.RunAsync(["close", "orders", "--reason", "cli close", .. admin]);
        Assert.True(code == 0, stderr);
        var window = await rig.WindowAsync();
        Assert.Equal(("closed", "cli close"), (window.Body.GetProperty("state").GetString(), window.Body.GetProperty("closeReason").GetString()));

        (code, stderr) = await AdminCliRunner.RunAsync(["rollback", "orders", .. admin]);
        Assert.NotEqual(0, code);
        Assert.Contains("409", stderr, StringComparison.Ordinal);
        (code, stderr) = await AdminCliRunner.RunAsync(["rollback", "orders", "--force", "--reason", "cli rollback", .. admin]);
        Assert.True(code == 0, stderr);
        Assert.Equal(("source", "source", 2L), Route((await rig.FamilyAsync()).Body));

        (code, stderr) = await AdminCliRunner.RunAsync(["close", .. admin]);
        Assert.NotEqual(0, code);
        Assert.Contains("close needs a FAMILY", stderr, StringComparison.Ordinal);
    }

    private static async Task<SwitchingRig> StartAsync()
    {
        var rig = await SwitchingRig.StartAsync(partitions: 2);
        await SwitchingRig.ProduceDirectAsync(rig.Source, [(0, "origin", "source")]);
        await SwitchingRig.ProduceDirectAsync(rig.Target, [(0, "origin", "target")]);
        return rig;
    }

    private static void AssertWindow(AdminAnswer answer, string state, (string Write, string Read) from, (string Write, string Read) to, long openedEpoch)
    {
        Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        var body = answer.Body;
        Assert.Equal(state, body.GetProperty("state").GetString());
        Assert.Equal(from, (body.GetProperty("from").GetProperty("write").GetString()!, body.GetProperty("from").GetProperty("read").GetString()!));
        Assert.Equal(to, (body.GetProperty("to").GetProperty("write").GetString()!, body.GetProperty("to").GetProperty("read").GetString()!));
        Assert.Equal(openedEpoch, body.GetProperty("openedEpoch").GetInt64());
        Assert.Equal(from == to, body.GetProperty("atOrigin").GetBoolean());
    }

    private static (string Write, string Read, long Epoch) Route(JsonElement body) =>
        (body.GetProperty("write").GetString()!, body.GetProperty("read").GetString()!, body.GetProperty("epoch").GetInt64());

    private static async Task ExpectAsync(Task<AdminAnswer> call, HttpStatusCode status, string message)
    {
        var answer = await call;
        Assert.True(answer.Status == status, $"expected {(int)status}, got {answer}");
        Assert.Contains(message, answer.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    /// <summary>The value of the first record of partition 0, fetched through the proxy: the name of the cluster reads route to.</summary>
    private static async Task<string> FirstRecordThroughProxyAsync(SwitchingRig rig)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            GroupId = $"window-reader-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 20,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Assign(new TopicPartitionOffset(SwitchingRig.Topic, 0, 0));
        var result = await Task.Run(() =>
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (DateTime.UtcNow < deadline)
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { Message: not null } consumed)
                {
                    return consumed;
                }
            }
            return null;
        });
        Assert.True(result is not null, "nothing read through the proxy");
        Assert.Equal("origin", result.Message.Key);
        return result.Message.Value;
    }

    private static async Task ProduceThroughProxyAsync(SwitchingRig rig, string keyPrefix, int count)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = true,
            MessageTimeoutMs = 15_000,
        }).SetLogHandler(static (_, _) => { }).Build();
        for (var i = 0; i < count; i++)
        {
            var result = await producer.ProduceAsync(SwitchingRig.Topic, new Message<string, string> { Key = $"{keyPrefix}-{i}", Value = $"{i}" });
            Assert.Equal(PersistenceStatus.Persisted, result.Status);
        }
    }
}
