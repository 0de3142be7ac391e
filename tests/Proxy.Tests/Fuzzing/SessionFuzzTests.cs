using Confluent.Kafka;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Tests.Fuzzing.Harness;
using Switchback.Proxy.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Fuzzing;

/// <summary>
/// A short, fixed-seed run of the session fuzzer (the long run is <c>tests/FuzzRunner</c>): mutated captured frames
/// through the real connection handler of a proxy in front of the two mock clusters, while that proxy's real
/// clients keep working.
/// </summary>
[Collection(ProxyCollection.Name)]
public sealed class SessionFuzzTests(ProxyFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private const int MaxFrameBytes = 1024 * 1024;
    private const int Cases = 240;
    private const int Parallelism = 16;
    private const long MemoryGrowthBound = 64L * 1024 * 1024;

    private ProxyHost _proxy = null!;

    public async Task InitializeAsync() =>
        _proxy = await fixture.StartProxyAsync(new Dictionary<string, string?>
        {
            ["Switchback:Limits:MaxFrameBytes"] = MaxFrameBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Switchback:Limits:UpstreamRequestTimeoutMs"] = "3000",
        }, new CapturingLoggerProvider());

    public async Task DisposeAsync() => await _proxy.DisposeAsync();

    [Fact]
    public async Task MutatedCapturedFrames_NeverCrashOrHangTheSession_NorLeak_NorHarmOtherClients()
    {
        var topic = fixture.NewTopic("orders");
        using var producer = new ProducerBuilder<string, string>(fixture.ProducerConfig(_proxy.BootstrapServers)).Build();
        await fixture.ProduceAsync(producer, topic, 3, "before");

        var conversations = CaptureConversations.Load();
        var fuzzer = new SessionFuzzer(_proxy.State) { AnswerWindow = TimeSpan.FromMilliseconds(500), CloseBound = TimeSpan.FromSeconds(5) };
        var baselineConnections = _proxy.State.Metrics.OpenConnections;
        var memoryBefore = GC.GetTotalMemory(forceFullCollection: true);

        var results = new List<SessionFuzzer.CaseResult>();
        // Fixed seeds: a failure here replays with `dotnet run --project tests/FuzzRunner -- --seed <seed>`.
        for (var batch = 0; batch < Cases; batch += Parallelism)
        {
            var runs = Enumerable.Range(batch, Parallelism)
                .Select(i => fuzzer.RunAsync(FrameMutator.Build(20_260_000 + i, conversations, MaxFrameBytes)));
            results.AddRange(await Task.WhenAll(runs));
        }
        var findings = results.Where(r => r.Finding is not null).ToList();
        foreach (var finding in findings)
        {
            output.WriteLine($"seed {finding.Seed} [{finding.Description}]: {finding.Finding}");
        }
        Assert.Empty(findings);
        Assert.Contains(results, r => r.ResponseBytes > 0); // some sessions were served, not all refused

        // Every session has ended and been counted out.
        Assert.True(await WaitUntilAsync(() => _proxy.State.Metrics.OpenConnections == baselineConnections, TimeSpan.FromSeconds(5)),
            $"open connections {_proxy.State.Metrics.OpenConnections}, baseline {baselineConnections}");
        var growth = GC.GetTotalMemory(forceFullCollection: true) - memoryBefore;
        Assert.True(growth < MemoryGrowthBound, $"managed memory grew by {growth / 1024 / 1024} MiB over {Cases} cases");

        await fixture.ProduceAsync(producer, topic, 5, "after");
        using var fresh = new ProducerBuilder<string, string>(fixture.ProducerConfig(_proxy.BootstrapServers)).Build();
        await fixture.ProduceAsync(fresh, topic, 5, "fresh");
        Assert.Equal(13, ProxyFixture.ReadDirectly(fixture.Source, topic).Count);
    }

    private static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }
            await Task.Delay(50);
        }
        return true;
    }
}
