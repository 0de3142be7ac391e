using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Switchback.Bench.LoadGenerator.Workloads;

namespace Switchback.Bench.LoadGenerator.Suite;

/// <summary>Turns the rounds into the Markdown report: environment, medians with ratios, targets, every round.</summary>
public static class MarkdownReport
{
    private static readonly string[] s_targets = [SuiteRunner.Direct, SuiteRunner.Switchback, SuiteRunner.Haproxy];

    public static string Build(
        SuiteOptions options, RepoLayout layout, DateTime started, DateTime finished,
        IReadOnlyList<RoundResult> results, ConnectionScaleResult? connections,
        double? proxyStartRssMb, double? proxyEndRssMb)
    {
        var md = new StringBuilder();
        void Line(FormattableString text) => md.AppendLine(text.ToString(CultureInfo.InvariantCulture));

        Line($"# End-to-end load: direct vs Switchback vs HAProxy");
        md.AppendLine();
        Line($"- Date: {started:yyyy-MM-dd HH:mm} UTC ({(finished - started).TotalMinutes:0.0} min)");
        Line($"- Commit: `{Git(layout.Root, "rev-parse --short HEAD")}`{(Git(layout.Root, "status --porcelain --untracked-files=no").Length > 0 ? " (with uncommitted changes)" : "")}, configuration {layout.Configuration}");
        Line($"- Machine: nproc = {Environment.ProcessorCount}, CPU `{CpuModel()}`, RAM {MemTotalGb():0.0} GB, {RuntimeInformation.OSDescription}");
        Line($"- Runtime: {RuntimeInformation.FrameworkDescription}; relay baseline: {Run("haproxy", "-v").Split('\n')[0].Trim()}");
        Line($"- Upstream: librdkafka mock, {options.Brokers} brokers, {options.Partitions} partitions per topic, a separate process per upstream (one for direct and Switchback, one whose brokers advertise HAProxy)");
        Line($"- Client: Confluent.Kafka in the load generator process; 1 KiB records, acks=all, linger 5 ms; consume re-reads a window pre-filled with {options.PrefillMbPerPartition} MiB per partition, fetch.wait.max.ms 10");
        Line($"- Workloads: produce = flat out; produce-fixed = {options.ProduceFixedRate:0} records/s; consume = flat out; latency = {options.LatencyRate:0} records/s, latency from the Produce call to its delivery report; latency-linger0 = the same with linger 0 ms");
        Line($"- Switchback runs as `switchback run` (its shipped defaults: workstation concurrent GC, Information logging to the console, here a file); its RSS was {F(proxyStartRssMb, "0")} MB after start and {F(proxyEndRssMb, "0")} MB after all rounds");
        Line($"- Rounds: {options.Rounds} x {options.RoundDuration.TotalSeconds:0} s per workload and target, targets interleaved and rotated every round; figures below are medians over rounds");
        Line($"- Throughput counts acknowledged (produce) or delivered (consume) record payload bytes; MB = 10^6 bytes. Relay CPU is user+system time of the relay process during the run (/proc/<pid>/stat); peak RSS is VmHWM, reset before each run. \"Other processes CPU\" is machine busy time not charged to the client, relay or upstream: the machine is shared, and this shows how much else ran; interrupt time (where the kernel does most loopback TCP work) and hypervisor steal are listed separately");
        md.AppendLine();

        md.AppendLine("## Medians");
        md.AppendLine();
        md.AppendLine("| Workload | Figure | direct | switchback | haproxy | switchback / direct | switchback / haproxy | haproxy / direct |");
        md.AppendLine("|---|---|--:|--:|--:|--:|--:|--:|");
        foreach (var workload in options.Workloads)
        {
            var rows = new List<(string Name, Func<RoundResult, double?> Value, string Format)>
            {
                ("throughput MB/s", r => r.Measurement.MegabytesPerSecond, "0.0"),
                ("records/s", r => r.Measurement.RecordsPerSecond, "0"),
            };
            if (workload.StartsWith("latency", StringComparison.Ordinal))
            {
                rows.Add(("p50 ms", r => r.Measurement.Latency?.P50Us / 1000, "0.000"));
                rows.Add(("p99 ms", r => r.Measurement.Latency?.P99Us / 1000, "0.000"));
                rows.Add(("p99.9 ms", r => r.Measurement.Latency?.P999Us / 1000, "0.000"));
                rows.Add(("max ms", r => r.Measurement.Latency?.MaxUs / 1000, "0.0"));
            }
            rows.Add(("relay CPU s", r => r.RelayCpuSeconds, "0.00"));
            rows.Add(("relay CPU s/GB (= ms/MB)", r => CpuPerGb(r), "0.00"));
            rows.Add(("relay peak RSS MB", r => r.RelayPeakRssMb, "0"));
            rows.Add(("upstream CPU s", r => r.UpstreamCpuSeconds, "0.00"));
            rows.Add(("client CPU s", r => r.ClientCpuSeconds, "0.00"));
            rows.Add(("machine busy %", r => r.MachineBusyPercent, "0"));
            rows.Add(("other processes CPU s", r => r.OtherCpuSeconds, "0.00"));
            rows.Add(("irq+softirq CPU s", r => r.InterruptCpuSeconds, "0.00"));
            rows.Add(("steal s", r => r.StealSeconds, "0.00"));
            foreach (var (name, value, format) in rows)
            {
                var medians = s_targets.Select(t => Median(results.Where(r => r.Workload == workload && r.Target == t).Select(value))).ToArray();
                Line($"| {workload} | {name} | {F(medians[0], format)} | {F(medians[1], format)} | {F(medians[2], format)} | {Ratio(medians[1], medians[0])} | {Ratio(medians[1], medians[2])} | {Ratio(medians[2], medians[0])} |");
            }
        }
        md.AppendLine();

        md.AppendLine("## Targets");
        md.AppendLine();
        md.AppendLine("| Target | Measured | Holds |");
        md.AppendLine("|---|---|---|");
        double? MedianOf(string workload, string target, Func<RoundResult, double?> value) =>
            Median(results.Where(r => r.Workload == workload && r.Target == target).Select(value));
        void Target(string name, double? measured, string format, Func<double, bool> holds) =>
            Line($"| {name} | {F(measured, format)} | {(measured is { } m ? (holds(m) ? "yes" : "**no**") : "not measured")} |");
        double? RatioValue(double? a, double? b) => a is { } x && b is { } y && y != 0 ? x / y : null;
        double? MB(RoundResult r) => r.Measurement.MegabytesPerSecond;
        Target("produce throughput switchback / direct >= 0.95", RatioValue(MedianOf("produce", SuiteRunner.Switchback, MB), MedianOf("produce", SuiteRunner.Direct, MB)), "0.00", v => v >= 0.95);
        Target("consume throughput switchback / direct >= 0.90", RatioValue(MedianOf("consume", SuiteRunner.Switchback, MB), MedianOf("consume", SuiteRunner.Direct, MB)), "0.00", v => v >= 0.90);
        foreach (var workload in options.Workloads)
        {
            var sb = MedianOf(workload, SuiteRunner.Switchback, CpuPerGb);
            var ha = MedianOf(workload, SuiteRunner.Haproxy, CpuPerGb);
            Target($"{workload}: proxy CPU per GB / HAProxy CPU per GB <= 2", RatioValue(sb, ha), "0.00", v => v <= 2);
            Target($"{workload}: proxy CPU ms per MB <= 5", sb, "0.00", v => v <= 5);
        }
        double? P(RoundResult r, Func<LatencySummary, double> pick) => r.Measurement.Latency is { } l ? pick(l) / 1000 : null;
        foreach (var workload in options.Workloads.Where(w => w.StartsWith("latency", StringComparison.Ordinal)))
        {
            foreach (var target in new[] { SuiteRunner.Switchback, SuiteRunner.Haproxy })
            {
                var addedP50 = MedianOf(workload, target, r => P(r, l => l.P50Us)) - MedianOf(workload, SuiteRunner.Direct, r => P(r, l => l.P50Us));
                var addedP99 = MedianOf(workload, target, r => P(r, l => l.P99Us)) - MedianOf(workload, SuiteRunner.Direct, r => P(r, l => l.P99Us));
                Target($"{workload}: {target} added p50 ms <= 0.2", addedP50, "0.000", v => v <= 0.2);
                Target($"{workload}: {target} added p99 ms <= 1", addedP99, "0.000", v => v <= 1);
            }
        }
        if (connections is not null)
        {
            Target($"{connections.Requested} idle connections: proxy RSS MB <= 300", connections.SettledRssMb, "0", v => v <= 300 && connections.Opened == connections.Requested);
        }
        md.AppendLine();

        if (connections is not null)
        {
            md.AppendLine("## Idle connections (Switchback)");
            md.AppendLine();
            Line($"On a freshly started proxy: opened {connections.Opened} of {connections.Requested} TCP connections to the proxy bootstrap ({connections.Failed} failed) in {connections.OpenSeconds:0.0} s, each with one ApiVersions v0 request answered, then held idle for 5 s.");
            md.AppendLine();
            md.AppendLine("| RSS before MB | RSS after opening MB | RSS after 5 s idle MB | peak RSS MB | KB per connection | proxy CPU s |");
            md.AppendLine("|--:|--:|--:|--:|--:|--:|");
            Line($"| {F(connections.BaselineRssMb, "0")} | {F(connections.LoadedRssMb, "0")} | {F(connections.SettledRssMb, "0")} | {F(connections.PeakRssMb, "0")} | {F(connections.KilobytesPerConnection, "0.0")} | {F(connections.CpuSeconds, "0.00")} |");
            md.AppendLine();
        }

        md.AppendLine("## Every round");
        md.AppendLine();
        md.AppendLine("| Round | Workload | Target | MB/s | records/s | p50 ms | p99 ms | p99.9 ms | max ms | relay CPU s | relay CPU s/GB | relay peak RSS MB | upstream CPU s | client CPU s | machine busy % | other processes CPU s | irq+softirq s | steal s | errors |");
        md.AppendLine("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        foreach (var r in results)
        {
            var m = r.Measurement;
            Line($"| {r.Round} | {r.Workload} | {r.Target} | {m.MegabytesPerSecond:0.0} | {m.RecordsPerSecond:0} | {F(P(r, l => l.P50Us), "0.000")} | {F(P(r, l => l.P99Us), "0.000")} | {F(P(r, l => l.P999Us), "0.000")} | {F(P(r, l => l.MaxUs), "0.0")} | {F(r.RelayCpuSeconds, "0.00")} | {F(CpuPerGb(r), "0.00")} | {F(r.RelayPeakRssMb, "0")} | {F(r.UpstreamCpuSeconds, "0.00")} | {r.ClientCpuSeconds:0.00} | {r.MachineBusyPercent:0} | {r.OtherCpuSeconds:0.00} | {r.InterruptCpuSeconds:0.00} | {r.StealSeconds:0.00} | {m.Errors} |");
        }
        return md.ToString();
    }

    private static double? CpuPerGb(RoundResult r) =>
        r.RelayCpuSeconds is { } cpu && r.Measurement.PayloadBytes > 0 ? cpu / (r.Measurement.PayloadBytes / 1e9) : null;

    private static double? Median(IEnumerable<double?> values)
    {
        var sorted = values.Where(v => v.HasValue).Select(v => v!.Value).Order().ToArray();
        if (sorted.Length == 0)
        {
            return null;
        }
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static string F(double? value, string format) =>
        value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    private static string Ratio(double? a, double? b) =>
        a is { } x && b is { } y && y != 0 ? (x / y).ToString("0.00", CultureInfo.InvariantCulture) : "-";

    private static string CpuModel() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";

    private static double MemTotalGb()
    {
        var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return long.Parse(line["MemTotal:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0 / 1024.0;
    }

    private static string Git(string root, string arguments) => Run("git", $"-C {root} {arguments}").Trim();

    private static string Run(string fileName, string arguments)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(fileName, arguments)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            })!;
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unavailable";
        }
    }
}
