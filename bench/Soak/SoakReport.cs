using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Switchback.Soak;

/// <summary>The Markdown report of one soak run and its verdict.</summary>
public sealed class SoakReport(
    SoakOptions options,
    IReadOnlyList<string> args,
    string repository,
    DateTimeOffset startedUtc,
    TimeSpan loadEnd,
    IReadOnlyList<PacedProducer> producers,
    IReadOnlyList<GroupConsumer> consumers,
    ConnectionChurn churn,
    DeliveryLedger ledger,
    IReadOnlyList<RouteChange> changes,
    IReadOnlyList<FaultWindow> faults,
    IReadOnlyList<Sample> samples,
    Sample idle,
    IReadOnlyList<(string Group, long Lag)> finalLag,
    DeliveryCheckResult check,
    IReadOnlyList<Trend> trends,
    ProxyLogSummary log,
    bool proxyAlive,
    int metricErrors)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private bool SwitchesOk => changes.Count > 0 && changes.All(c => c.Succeeded);
    private bool IdleClean => Metric(idle, "switchback_client_connections") == 0 && Metric(idle, "switchback_requests_in_flight") == 0;
    private bool Flat => trends.Count > 0 && trends.All(t => t.Flat);

    public bool Passed => check.Passed && SwitchesOk && Flat && IdleClean && proxyAlive;

    public string Summary()
    {
        var sb = new StringBuilder();
        sb.AppendLine(Inv, $"Verdict: **{(Passed ? "PASS" : "FAIL")}**");
        sb.AppendLine();
        sb.AppendLine(Inv, $"- Delivery: {check.Acked} records acknowledged, {ledger.FailedCount} failed deliveries; {check.FoundExactlyOnce} found exactly once, " +
            $"{check.Missing} missing, {check.Duplicated} duplicated, {check.OffsetMismatch} at another offset than acknowledged, " +
            $"{check.OrderViolations} per-key order violations, {check.Evicted} no longer checkable (evicted by the mock's retention). " +
            $"On the cluster the route named at send time: {check.OnExpectedCluster}; on the other cluster: {check.OnOtherCluster}; " +
            $"sent while a switch was under way (either cluster correct): {check.AmbiguousRoute}. **{(check.Passed ? "pass" : "fail")}**");
        sb.AppendLine(Inv, $"- Switches: {changes.Count(c => c.Action == "switch")} forced write switches and {changes.Count(c => c.Action == "rollback")} rollbacks of `orders`, " +
            $"{changes.Count(c => !c.Succeeded)} failed; pause {PauseRange()}. **{(SwitchesOk ? "pass" : "fail")}**");
        sb.AppendLine(Inv, $"- Faults on `source`: {faults.Count(f => f.Kind.Contains("down", StringComparison.Ordinal))} broker outages of 5 s, " +
            $"{faults.Count(f => f.Kind.StartsWith("rtt", StringComparison.Ordinal))} RTT spikes of {SoakRun.RttSpikeMs} ms for 5 s.");
        foreach (var t in trends)
        {
            sb.AppendLine(Inv, $"- {t.Name}: median {F(t.FirstThird)}{U(t)} in the first third after warm-up, {F(t.LastThird)}{U(t)} in the last third " +
                $"(delta {Signed(t.Delta)}{U(t)}, allowed {F(t.Allowed)}{U(t)}; slope {Signed(t.SlopePerHour)}{U(t)}/h). **{(t.Flat ? "flat" : "NOT flat")}**");
        }
        if (trends.Count == 0)
        {
            sb.AppendLine("- Memory and handles: too few samples to compare. **fail**");
        }
        sb.AppendLine(Inv, $"- After all clients closed: {Metric(idle, "switchback_client_connections")} client connections, " +
            $"{Metric(idle, "switchback_requests_in_flight")} requests in flight, {idle.Proc.OpenFds} fds ({idle.Proc.Sockets} sockets), {idle.Proc.Threads} threads, " +
            $"RSS {idle.Proc.RssKb / 1024.0:0.0} MiB (peak VmHWM {idle.Proc.HwmKb / 1024.0:0.0} MiB); at the first sample, with the clients connecting: " +
            $"{samples[0].Proc.OpenFds} fds ({samples[0].Proc.Sockets} sockets), {samples[0].Proc.Threads} threads, RSS {samples[0].Proc.RssKb / 1024.0:0.0} MiB. **{(IdleClean ? "pass" : "fail")}**");
        if (!proxyAlive)
        {
            sb.AppendLine("- The proxy process exited during the run. **fail**");
        }
        return sb.ToString();
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Switchback soak report");
        sb.AppendLine();
        sb.AppendLine(Inv, $"- Date: {startedUtc:yyyy-MM-dd HH:mm} UTC; loaded phase {loadEnd.TotalMinutes:0.0} min, then flush, {SoakRun.DrainFor.TotalSeconds:0} s consumer drain and an idle sample");
        sb.AppendLine(Inv, $"- Commit: `{Git("rev-parse --short HEAD")}`{(Git("status --porcelain --untracked-files=no").Length > 0 ? " (with uncommitted changes)" : "")}");
        sb.AppendLine(Inv, $"- Machine: {Environment.ProcessorCount} CPUs ({CpuModel()}), {MemTotal()}, {OsName()}, {RuntimeInformation.FrameworkDescription}");
        sb.AppendLine(Inv, $"- Command: `dotnet run -c Release --project bench/Soak --{(args.Count > 0 ? " " + string.Join(' ', args) : "")}`");
        sb.AppendLine();
        sb.AppendLine("## Workload");
        sb.AppendLine();
        sb.AppendLine(Inv, $"- Two librdkafka mock clusters (`source`, `target`, 3 brokers each) in the soak process; `{SoakRun.OrdersTopic}` and `{SoakRun.PaymentsTopic}` with {options.Partitions} partitions on both.");
        sb.AppendLine("- The proxy's Release build as a separate process (`switchback.dll run --config`); families `orders` (write/read `source`) and `payments` (write/read `target`).");
        sb.AppendLine(Inv, $"- Idempotent producers (acks=all, linger 5 ms), {options.RatePerFamily} records/s each: `orders-steady` -> `{SoakRun.OrdersTopic}`, `payments-steady` -> `{SoakRun.PaymentsTopic}`; values of {options.ValueBytes} B padding; 64 keys per producer. " +
            $"Fatal producer errors (producer rebuilt): {string.Join(", ", producers.Select(p => $"{p.Stream} {p.FatalErrors}"))}.");
        sb.AppendLine(Inv, $"- Connection churn: a short-lived producer every {SoakRun.ChurnEvery.TotalSeconds:0} s (10 records, flush, close; every other one idempotent): {churn.Opened} opened.");
        sb.AppendLine("- Consumer groups, one member each, committing every 2 s:");
        foreach (var c in consumers)
        {
            var lag = finalLag.FirstOrDefault(l => l.Group == c.Group).Lag;
            sb.AppendLine(Inv, $"  - `{c.Group}` ({(c.Protocol == Confluent.Kafka.GroupProtocol.Consumer ? "KIP-848" : "classic")}) on `{c.Topic}`: {c.Consumed} consumed, {c.Commits} commits, {c.CommitErrors} commit errors, {c.Errors} client errors, lag at the end {lag}");
        }
        sb.AppendLine(Inv, $"- Forced write switch of `orders` to `target` every {SoakRun.SwitchEvery.TotalSeconds:0} s from {SoakRun.SwitchFirst.TotalSeconds:0} s, rolled back {SoakRun.SwitchHold.TotalSeconds:0} s later. Consumers of `orders` read `source` throughout.");
        sb.AppendLine(Inv, $"- Faults on `source` every {SoakRun.FaultEvery.TotalSeconds:0} s from {SoakRun.FaultFirst.TotalSeconds:0} s: one broker down for {SoakRun.FaultLength.TotalSeconds:0} s (rotating), and half a period later a {SoakRun.RttSpikeMs} ms RTT on all brokers for {SoakRun.FaultLength.TotalSeconds:0} s.");
        sb.AppendLine();
        sb.AppendLine("## Verdict");
        sb.AppendLine();
        sb.Append(Summary());
        sb.AppendLine();
        var heapRule = trends.Any(t => t.Name.StartsWith("GC", StringComparison.Ordinal))
            ? string.Create(Inv, $", max({Flatness.HeapTolerance:P0}, 8 MiB) for the GC heap")
            : "";
        sb.AppendLine(Inv, $"Flat means: after a warm-up of {Flatness.Warmup(options.Duration).TotalSeconds:0} s, the median of the last third of the samples exceeds the median of the first third by at most max({Flatness.RssTolerance:P0}, {Flatness.RssFloorMiB:0} MiB) for RSS, {Flatness.FdTolerance:0} descriptors, {Flatness.ThreadTolerance:0} threads{heapRule}. The slope is a least-squares fit over all post-warm-up samples, for information.");
        sb.AppendLine();
        if (!samples.Any(s => s.Metrics.ContainsKey("process_working_set_bytes")))
        {
            sb.AppendLine("The proxy's `/metrics` exposes no `process_*` or `dotnet_*` series (its registry holds only the `switchback_*` metrics), so memory, threads and descriptors come from `/proc/<pid>` only.");
            sb.AppendLine();
        }
        sb.AppendLine("## Time series");
        sb.AppendLine();
        sb.AppendLine("| t | RSS MiB | HWM MiB | fds | sockets | threads | connections | in flight | GC heap MiB | acked | failed | consumed | lag | orders write | fault |");
        sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
        foreach (var s in samples)
        {
            var heap = s.Metrics.TryGetValue("dotnet_total_memory_bytes", out var h) ? (h / (1024 * 1024)).ToString("0.0", Inv) : "n/a";
            var label = ReferenceEquals(s, idle) ? $"{Clock(s.At)} (idle)" : s.At > loadEnd ? $"{Clock(s.At)} (after load)" : Clock(s.At);
            sb.AppendLine(Inv, $"| {label} | {s.Proc.RssKb / 1024.0:0.0} | {s.Proc.HwmKb / 1024.0:0.0} | {s.Proc.OpenFds} | {s.Proc.Sockets} | {s.Proc.Threads} | " +
                $"{ResourceSampler.Metric(s, "switchback_client_connections")} | {ResourceSampler.Metric(s, "switchback_requests_in_flight")} | {heap} | " +
                $"{s.Acked} | {s.Failed} | {s.Consumed} | {s.ConsumerLag} | {s.OrdersWrite} | {s.Fault} |");
        }
        if (metricErrors > 0)
        {
            sb.AppendLine();
            sb.AppendLine(Inv, $"{metricErrors} scrapes of `/metrics` failed (shown as n/a).");
        }
        sb.AppendLine();
        sb.AppendLine("## Switches and rollbacks");
        sb.AppendLine();
        sb.AppendLine("| requested at | action | HTTP | write after | pause ms (admin API) | answered in ms | detail |");
        sb.AppendLine("|---:|---|---:|---|---:|---:|---|");
        foreach (var c in changes)
        {
            sb.AppendLine(Inv, $"| {Clock(c.RequestedAt)} | {c.Action} | {c.Status} | {c.WriteAfter ?? "-"} | {c.PauseMs?.ToString("0.###", Inv) ?? "-"} | " +
                $"{(c.AnsweredAt - c.RequestedAt).TotalMilliseconds:0} | {c.Detail.Replace("|", "\\|", StringComparison.Ordinal).ReplaceLineEndings(" ")} |");
        }
        sb.AppendLine();
        sb.AppendLine("## Faults");
        sb.AppendLine();
        sb.AppendLine("| from | to | cluster | fault | target |");
        sb.AppendLine("|---:|---:|---|---|---|");
        foreach (var f in faults)
        {
            sb.AppendLine(Inv, $"| {Clock(f.From)} | {Clock(f.To)} | {f.Cluster} | {f.Kind} | {f.Target} |");
        }
        sb.AppendLine();
        sb.AppendLine("## Delivery check");
        sb.AppendLine();
        sb.AppendLine("After the run every partition of both topics was read directly from both clusters (not through the proxy) and each acknowledged record (identified by producer stream and sequence number in its value) looked up.");
        sb.AppendLine();
        var failures = ledger.FailuresSnapshot();
        sb.AppendLine(Inv, $"- Failed deliveries by error: {(failures.Count == 0 ? "none" : string.Join(", ", failures.Select(f => $"{f.Key} {f.Value}")))}");
        sb.AppendLine(Inv, $"- Stored but never acknowledged (failed or unacknowledged sends that were nevertheless written): {check.StoredNotAcked}; stored records without a soak value: {check.UnparsedStored}");
        sb.AppendLine(Inv, $"- Partitions (cluster topic/partition low..high): {string.Join("; ", check.Partitions.Select(p => $"{p.Cluster} {p.Topic}/{p.Partition} {p.Low}..{p.High}"))}");
        if (check.Examples.Count > 0)
        {
            sb.AppendLine("- First problems found:");
            foreach (var e in check.Examples)
            {
                sb.AppendLine(Inv, $"  - {e}");
            }
        }
        sb.AppendLine();
        sb.AppendLine("## Proxy log");
        sb.AppendLine();
        if (log.Counts.Count == 0)
        {
            sb.AppendLine("No warning, error or critical lines.");
        }
        else
        {
            sb.AppendLine("Lines at warning level or above, by level and category (switches log at warning by design):");
            sb.AppendLine();
            foreach (var (level, category, count) in log.Counts.Take(15))
            {
                sb.AppendLine(Inv, $"- {level} `{category}`: {count}");
            }
            if (log.ErrorExamples.Count > 0)
            {
                sb.AppendLine();
                sb.AppendLine("First distinct error lines:");
                sb.AppendLine();
                sb.AppendLine("```");
                foreach (var line in log.ErrorExamples)
                {
                    sb.AppendLine(line);
                }
                sb.AppendLine("```");
            }
        }
        return sb.ToString();
    }

    private string PauseRange()
    {
        var pauses = changes.Where(c => c.PauseMs is not null).Select(c => c.PauseMs!.Value).Order().ToList();
        return pauses.Count == 0 ? "n/a" : $"{pauses[0]:0.###} to {pauses[^1]:0.###} ms (median {pauses[pauses.Count / 2]:0.###} ms)";
    }

    private static double Metric(Sample s, string name) => s.Metrics.TryGetValue(name, out var v) ? v : double.NaN;
    private static string F(double v) => v.ToString("0.0", Inv);
    private static string Signed(double v) => v.ToString("+0.0;-0.0;0.0", Inv);
    private static string U(Trend t) => t.Unit.Length == 0 ? "" : " " + t.Unit;
    private static string Clock(TimeSpan t) => t.ToString(@"mm\:ss", Inv);

    private string Git(string arguments)
    {
        try
        {
            var start = new ProcessStartInfo("git", $"-C \"{repository}\" {arguments}") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit();
            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }

    private static string CpuModel() => ReadField("/proc/cpuinfo", "model name", ':') ?? RuntimeInformation.ProcessArchitecture.ToString();
    private static string MemTotal() => ReadField("/proc/meminfo", "MemTotal", ':') is { } kb && long.TryParse(kb.Replace("kB", "", StringComparison.Ordinal).Trim(), Inv, out var k)
        ? $"{k / 1024.0 / 1024.0:0.0} GiB RAM" : "RAM unknown";
    private static string OsName() => ReadField("/etc/os-release", "PRETTY_NAME", '=')?.Trim('"') ?? RuntimeInformation.OSDescription;

    private static string? ReadField(string path, string name, char separator)
    {
        try
        {
            foreach (var line in File.ReadLines(path))
            {
                var at = line.IndexOf(separator, StringComparison.Ordinal);
                if (at > 0 && line[..at].Trim() == name)
                {
                    return line[(at + 1)..].Trim();
                }
            }
        }
        catch (IOException)
        {
        }
        return null;
    }
}
