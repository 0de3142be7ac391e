using System.Diagnostics;
using System.Globalization;
using System.Net;
using Switchback.Bench.LoadGenerator.Workloads;

namespace Switchback.Bench.LoadGenerator.Suite;

/// <summary>
/// Runs the standard comparison: two mock upstreams (one for direct and Switchback, one whose brokers advertise
/// HAProxy), the proxy and HAProxy as separate processes, then rounds that interleave the three targets per
/// workload, then the idle-connection scale test, and writes the Markdown report.
/// </summary>
public static class SuiteRunner
{
    public const string Direct = "direct";
    public const string Switchback = "switchback";
    public const string Haproxy = "haproxy";
    private const string ProduceTopic = "bench.produce";
    private const string ConsumeTopic = "bench.consume";
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(60);

    public static async Task<int> RunAsync(SuiteOptions options)
    {
        var layout = RepoLayout.Discover();
        var work = Directory.CreateTempSubdirectory("switchback-loadgen-").FullName;
        Log($"work directory {work} (process logs)");
        var started = DateTime.UtcNow;

        string[] UpstreamArgs(params string[] extra) =>
        [
            "--brokers", options.Brokers.ToString(CultureInfo.InvariantCulture),
            "--partitions", options.Partitions.ToString(CultureInfo.InvariantCulture),
            "--topic", ProduceTopic,
            "--prefill-topic", ConsumeTopic,
            "--prefill-mb-per-partition", options.PrefillMbPerPartition.ToString(CultureInfo.InvariantCulture),
            .. extra,
        ];

        var (upstreamProcess, upstream) = BenchTargets.StartUpstream(layout, UpstreamArgs(), Path.Combine(work, "upstream.log"), s_startTimeout);
        using var upstreamOwner = upstreamProcess;
        Log($"upstream (direct, switchback): pid {upstreamProcess.Id}, {upstream.BootstrapServers}");

        var haproxyBootstrapPort = BenchTargets.FreePort();
        var haproxyBrokerPorts = Enumerable.Range(0, options.Brokers).Select(_ => BenchTargets.FreePort()).ToList();
        var advertise = string.Join(',', haproxyBrokerPorts.Select(p => $"127.0.0.1:{p}"));
        var (haUpstreamProcess, haUpstream) = BenchTargets.StartUpstream(
            layout, UpstreamArgs("--advertise", advertise), Path.Combine(work, "upstream-haproxy.log"), s_startTimeout);
        using var haUpstreamOwner = haUpstreamProcess;
        Log($"upstream (haproxy): pid {haUpstreamProcess.Id}, {haUpstream.BootstrapServers}");

        using var haproxy = BenchTargets.StartHaproxy(haUpstream, haproxyBootstrapPort, haproxyBrokerPorts, work, s_startTimeout);
        Log($"haproxy: pid {haproxy.Id}, bootstrap 127.0.0.1:{haproxyBootstrapPort}");

        var (proxyProcess, proxyBootstrap) = BenchTargets.StartProxy(layout, upstream, Subdirectory(work, "switchback"), s_startTimeout);
        using var proxyOwner = proxyProcess;
        var proxyStartRss = ProcessSampler.TryReadRssMb(proxyProcess.Id);
        Log($"switchback: pid {proxyProcess.Id}, bootstrap {proxyBootstrap}, RSS {proxyStartRss:0} MB");

        BenchTarget[] targets =
        [
            new(Direct, upstream.BootstrapServers, null, upstreamProcess.Id),
            new(Switchback, proxyBootstrap, proxyProcess.Id, upstreamProcess.Id),
            new(Haproxy, $"127.0.0.1:{haproxyBootstrapPort}", haproxy.Id, haUpstreamProcess.Id),
        ];

        // JIT, connection set-up and metadata for every target before anything is measured.
        foreach (var target in targets)
        {
            ProduceWorkload.Run(new ProduceSettings(target.BootstrapServers, ProduceTopic, TimeSpan.FromSeconds(2)));
            ConsumeWorkload.Run(new ConsumeSettings(target.BootstrapServers, ConsumeTopic, TimeSpan.FromSeconds(2)));
            Log($"warmed up {target.Name}");
        }

        var results = new List<RoundResult>();
        for (var round = 1; round <= options.Rounds; round++)
        {
            foreach (var workload in options.Workloads)
            {
                // Rotate the order each round so no target always runs first (or right after a given other).
                for (var k = 0; k < targets.Length; k++)
                {
                    var target = targets[(k + round - 1) % targets.Length];
                    var result = Measure(workload, target, round, () => RunWorkload(workload, target, options));
                    results.Add(result);
                    Log(Describe(result));
                }
            }
        }

        var proxyEndRss = ProcessSampler.TryReadRssMb(proxyProcess.Id);
        ConnectionScaleResult? connections = null;
        if (options.Connections > 0)
        {
            // A fresh proxy, so the figure is what idle connections cost, not what the load rounds left behind.
            var (idleProxy, idleBootstrap) = BenchTargets.StartProxy(layout, upstream, Subdirectory(work, "switchback-idle"), s_startTimeout);
            using var idleProxyOwner = idleProxy;
            await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            Log($"opening {options.Connections} idle connections to a fresh switchback (pid {idleProxy.Id})");
            connections = await ConnectionScaleWorkload.RunAsync(IPEndPoint.Parse(idleBootstrap), options.Connections, idleProxy.Id, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            Log($"connections: opened {connections.Opened}, failed {connections.Failed}, RSS {connections.BaselineRssMb:0} -> {connections.SettledRssMb:0} MB (peak {connections.PeakRssMb:0} MB)");
        }

        var report = MarkdownReport.Build(options, layout, started, DateTime.UtcNow, results, connections, proxyStartRss, proxyEndRss);
        var outPath = Path.GetFullPath(options.OutPath, layout.Root);
        Directory.CreateDirectory(Path.GetDirectoryName(outPath)!);
        await File.WriteAllTextAsync(outPath, report).ConfigureAwait(false);
        Log($"report written to {outPath}");
        return 0;
    }

    private static string Subdirectory(string parent, string name) => Directory.CreateDirectory(Path.Combine(parent, name)).FullName;

    private static RunMeasurement RunWorkload(string workload, BenchTarget target, SuiteOptions options) => workload switch
    {
        "produce" => ProduceWorkload.Run(new ProduceSettings(target.BootstrapServers, ProduceTopic, options.RoundDuration)),
        "produce-fixed" => ProduceWorkload.Run(new ProduceSettings(
            target.BootstrapServers, ProduceTopic, options.RoundDuration, RecordsPerSecond: options.ProduceFixedRate)),
        "consume" => ConsumeWorkload.Run(new ConsumeSettings(target.BootstrapServers, ConsumeTopic, options.RoundDuration)),
        "latency" => ProduceWorkload.Run(new ProduceSettings(
            target.BootstrapServers, ProduceTopic, options.RoundDuration, RecordsPerSecond: options.LatencyRate, RecordLatency: true)),
        // Without linger every record is its own small request as far as the rate allows: per-request cost shows.
        "latency-linger0" => ProduceWorkload.Run(new ProduceSettings(
            target.BootstrapServers, ProduceTopic, options.RoundDuration, LingerMs: 0, RecordsPerSecond: options.LatencyRate, RecordLatency: true)),
        _ => throw new ArgumentException($"unknown workload '{workload}' (produce, produce-fixed, consume, latency, latency-linger0)"),
    };

    private static RoundResult Measure(string workload, BenchTarget target, int round, Func<RunMeasurement> run)
    {
        // Collect our own garbage first, so a client GC from the previous run is not charged to this one.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        if (target.RelayPid is { } relay)
        {
            ProcessSampler.TryResetPeakRss(relay);
        }
        var relayCpu0 = target.RelayPid is { } r0 ? ProcessSampler.TryReadCpuSeconds(r0) : null;
        var upstreamCpu0 = ProcessSampler.TryReadCpuSeconds(target.UpstreamPid);
        var self = Process.GetCurrentProcess();
        var clientCpu0 = self.TotalProcessorTime;
        var machine0 = ProcessSampler.ReadMachineJiffies();

        var measurement = run();

        var machine1 = ProcessSampler.ReadMachineJiffies();
        self.Refresh();
        var clientCpu = (self.TotalProcessorTime - clientCpu0).TotalSeconds;
        var relayCpu = target.RelayPid is { } r1 ? ProcessSampler.TryReadCpuSeconds(r1) - relayCpu0 : null;
        var relayPeak = target.RelayPid is { } r2 ? ProcessSampler.TryReadPeakRssMb(r2) : null;
        var upstreamCpu = ProcessSampler.TryReadCpuSeconds(target.UpstreamPid) - upstreamCpu0;
        var machine = machine1 - machine0;
        var busy = 100.0 * machine.Busy / Math.Max(1, machine.Total);
        // Whatever else ran on the machine meanwhile (the machine is shared): process time not charged to the client,
        // the relay or the upstream. Interrupt time (loopback TCP) and steal are reported on their own.
        var other = ProcessSampler.JiffiesToSeconds(machine.Processes) - clientCpu - (relayCpu ?? 0) - (upstreamCpu ?? 0);
        return new RoundResult(workload, target.Name, round, measurement, relayCpu, relayPeak, upstreamCpu, clientCpu, busy, Math.Max(0, other),
            ProcessSampler.JiffiesToSeconds(machine.Interrupts), ProcessSampler.JiffiesToSeconds(machine.Steal));
    }

    private static string Describe(RoundResult r)
    {
        var m = r.Measurement;
        var latency = m.Latency is { } l ? $", p50 {l.P50Us / 1000:0.00} ms p99 {l.P99Us / 1000:0.00} ms" : "";
        var relay = r.RelayCpuSeconds is { } cpu ? $", relay CPU {cpu:0.00} s, peak RSS {r.RelayPeakRssMb:0} MB" : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"round {r.Round} {r.Workload,-8} {r.Target,-10} {m.MegabytesPerSecond,7:0.0} MB/s {m.RecordsPerSecond,9:0} rec/s{latency}{relay}, machine {r.MachineBusyPercent:0}% busy, other processes {r.OtherCpuSeconds:0.0} CPU s, errors {m.Errors}");
    }

    internal static void Log(string message) =>
        Console.Error.WriteLine($"{DateTime.Now:HH:mm:ss} {message}");
}
