using System.Diagnostics;
using System.Text;
using System.Text.Json;
using HdrHistogram;

namespace Switchback.Bench;

/// <summary>
/// <c>switch-stall</c>: producers write at a fixed total rate through one proxy, or through a fleet of proxies (each
/// producer bootstrapped to one instance), to two in-process mock clusters while the family's writes switch
/// source -> target and roll back, <see cref="SwitchStallOptions.Cycles"/> times. Reports the client-observed produce
/// latency (send to delivery report) of records sent within <see cref="SwitchStallOptions.Window"/> of a switch or
/// rollback, against the records sent at other times; with <c>--compare</c>, one instance and a fleet side by side.
/// </summary>
public static class SwitchStallRun
{
    public static async Task<int> RunAsync(SwitchStallOptions options)
    {
        Console.WriteLine($"switch-stall: {options.Rate} records/s of {options.RecordBytes} B from {options.Producers} producers " +
            $"(idempotence {(options.Idempotent ? "on" : "off")}) to {options.Partitions} partitions; {options.Cycles} switch/rollback cycles, " +
            $"{options.Gap.TotalMilliseconds:0} ms apart; proxy instances: {string.Join(", then ", options.Runs)}" +
            (options.ControlReadWaitMs is { } wait ? $"; control topic read wait {wait} ms" : ""));
        var results = new List<StallResult>();
        foreach (var instances in options.Runs)
        {
            var result = await MeasureAsync(options, instances);
            if (result is null)
            {
                return 1;
            }
            StallReport.PrintRun(result, options);
            results.Add(result);
        }
        if (results.Count > 1)
        {
            StallReport.PrintComparison(results, options);
        }
        return results.All(r => r.Failed == 0 && r.QueueFull == 0) ? 0 : 1;
    }

    /// <summary>One run on a fresh rig; null when a switch or rollback failed (reported on stderr).</summary>
    private static async Task<StallResult?> MeasureAsync(SwitchStallOptions options, int instances)
    {
        await using var rig = await ProxyRig.StartAsync(instances, options.Partitions, options.ControlReadWaitMs, options.MirrorBack);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        Console.WriteLine();
        Console.WriteLine(rig.IsFleet
            ? $"--- {instances} instances in a fleet (control topic {ProxyRig.ControlTopic} on source); switches called on p1, rollbacks on p2"
            : "--- 1 instance");

        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var producers = Enumerable.Range(0, options.Producers)
            .Select(i => new PacedProducer(rig.Instances[i % instances].BootstrapServers, i, options, clock))
            .ToList();
        var threads = producers.Select(p => new Thread(() => p.Run(stop.Token)) { IsBackground = true, Name = $"producer-{p.Index}" }).ToList();
        threads.ForEach(t => t.Start());

        await Task.Delay(options.Warmup);
        var cpu = CpuMeter.Start();
        var measuredFrom = clock.Elapsed;
        var actions = new List<SwitchAction>();
        for (var cycle = 0; cycle < options.Cycles; cycle++)
        {
            foreach (var (action, calledOn, body) in new[]
            {
                ("switch", 0, """{"write":"target","force":true,"reason":"switch-stall bench"}"""),
                ("rollback", 1 % instances, """{"reason":"switch-stall bench"}"""),
            })
            {
                var at = clock.Elapsed;
                var (status, text) = await PostAsync(http, new Uri(rig.Instances[calledOn].AdminUri, $"v1/families/{ProxyRig.Family}/{action}"), body);
                var answered = clock.Elapsed - at;
                if (status != 200)
                {
                    Console.Error.WriteLine($"{action} on p{calledOn + 1} failed after {answered.TotalMilliseconds:0} ms: {status} {text}");
                    await stop.CancelAsync();
                    threads.ForEach(t => t.Join());
                    return null;
                }
                var answer = JsonDocument.Parse(text).RootElement;
                var pause = answer.GetProperty("pauseMs").GetDouble();
                if (options.MirrorBack && action == "rollback")
                {
                    var details = answer.GetProperty("details");
                    Console.WriteLine($"rollback {cycle + 1}: pause {pause:0.0} ms, left behind {details.GetProperty("leftBehind").GetProperty("records").GetInt64()} record(s), mirror {details.GetProperty("mirror")}");
                }
                actions.Add(new SwitchAction(at, action, calledOn, pause, answered));
                await Task.Delay(options.Gap);
            }
        }
        var measuredTo = clock.Elapsed;
        var used = cpu.Read();
        await stop.CancelAsync();
        threads.ForEach(t => t.Join());

        var result = new StallResult(instances, actions, measuredTo - measuredFrom, used,
            rig.IsFleet ? SwitchTimeline.Read(rig.Source.BootstrapServers, ProxyRig.ControlTopic) : []);
        foreach (var producer in producers)
        {
            result.Failed += producer.Failed;
            result.QueueFull += producer.QueueFull;
            foreach (var (sentAt, latency) in producer.Deliveries)
            {
                if (sentAt >= measuredFrom && sentAt <= measuredTo)
                {
                    var near = actions.FindIndex(s => (sentAt - s.At).Duration() <= options.Window);
                    result.Record(producer.Index % instances, near, latency);
                }
            }
        }
        return result;
    }

    /// <summary>Calls the admin API; a call that does not answer in time comes back as status 0.</summary>
    private static async Task<(int Status, string Text)> PostAsync(HttpClient http, Uri uri, string body)
    {
        try
        {
            using var response = await http.PostAsync(uri, new StringContent(body, Encoding.UTF8, "application/json"));
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return (0, e.Message);
        }
    }
}

/// <summary>A switch or rollback as the bench called it: when, on which instance (0-based), and what it answered.</summary>
public sealed record SwitchAction(TimeSpan At, string Action, int CalledOn, double PauseMs, TimeSpan Answered);

/// <summary>What one run measured: produce latencies near a switch and otherwise, overall and by the instance the producer used.</summary>
public sealed class StallResult(int instances, IReadOnlyList<SwitchAction> actions, TimeSpan measured, CpuUse cpu, IReadOnlyList<SwitchTimeline> timelines)
{
    public int Instances { get; } = instances;
    public IReadOnlyList<SwitchAction> Actions { get; } = actions;
    public TimeSpan Measured { get; } = measured;
    public CpuUse Cpu { get; } = cpu;
    public IReadOnlyList<SwitchTimeline> Timelines { get; } = timelines;
    public LongHistogram Around { get; } = NewHistogram();
    public LongHistogram Steady { get; } = NewHistogram();
    public IReadOnlyList<LongHistogram> AroundByInstance { get; } = [.. Enumerable.Range(0, instances).Select(_ => NewHistogram())];

    /// <summary>The records sent within the window of each action, in the order of <see cref="Actions"/>.</summary>
    public IReadOnlyList<LongHistogram> AroundByAction { get; } = [.. actions.Select(_ => NewHistogram())];
    public long Sent => Around.TotalCount + Steady.TotalCount;
    public long Failed { get; set; }

    /// <summary>Records the clients could not queue at all (their buffers were full): the run did not keep its rate.</summary>
    public long QueueFull { get; set; }

    /// <summary>Records one delivery; <paramref name="nearAction"/> is the index of the action it was sent near, or -1.</summary>
    public void Record(int instance, int nearAction, TimeSpan latency)
    {
        var micros = Math.Max(1, (long)latency.TotalMicroseconds);
        (nearAction >= 0 ? Around : Steady).RecordValue(micros);
        if (nearAction >= 0)
        {
            AroundByInstance[instance].RecordValue(micros);
            AroundByAction[nearAction].RecordValue(micros);
        }
    }

    private static LongHistogram NewHistogram() => new(TimeSpan.FromMinutes(5).Ticks / 10, 3);
}
