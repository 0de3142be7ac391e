using System.Globalization;
using HdrHistogram;

namespace Switchback.Bench;

/// <summary>Prints a <c>switch-stall</c> run, and one instance against a fleet as a Markdown table.</summary>
public static class StallReport
{
    /// <summary>The fleet's p99 near a switch may be at most this many times the single instance's...</summary>
    private const double TargetRatio = 2;

    /// <summary>...and under this many milliseconds.</summary>
    private const double TargetP99Ms = 25;

    public static void PrintRun(StallResult result, SwitchStallOptions options)
    {
        // The last two columns: produce latency of the records sent within the window of that action.
        Console.WriteLine($"{"action",-9} {"called on",9} {"pause ms",9} {"answered ms",12} {"near p99 ms",12} {"near max ms",12}");
        for (var i = 0; i < result.Actions.Count; i++)
        {
            var (a, near) = (result.Actions[i], result.AroundByAction[i]);
            Console.WriteLine($"{a.Action,-9} {$"p{a.CalledOn + 1}",9} {a.PauseMs,9:0.000} {a.Answered.TotalMilliseconds,12:0.0} " +
                $"{Ms(near, 99),12} {Ms(near.GetMaxValue() / 1000.0),12}");
        }
        if (result.Timelines.Count > 0)
        {
            Console.WriteLine();
            Console.WriteLine("control log, ms after the prepare was appended (record create times):");
            Console.WriteLine($"{"action",-9} {"by",4} {"1st ready",10} {"last ready",11} {"commit",7} {"last applied",13} {"remaps",7} {"median remap",13} {"last remap",11}");
            foreach (var t in result.Timelines)
            {
                Console.WriteLine($"{t.Action,-9} {t.Coordinator,4} {t.FirstReadyMs,10} {t.LastReadyMs,11} {t.CommitMs,7} {t.LastAppliedMs,13} {t.Remaps,7} {t.MedianRemapMs,13} {t.LastRemapMs,11}");
            }
        }
        Console.WriteLine();
        var seconds = result.Measured.TotalSeconds;
        Console.WriteLine($"acknowledged in the measured {seconds:0.0} s: {result.Sent} ({result.Sent / seconds:0} records/s); failed deliveries: {result.Failed}; not queued (client buffer full): {result.QueueFull}");
        Console.WriteLine($"CPU while measured: {result.Cpu}");
        Console.WriteLine($"{"produce latency (ms)",-32} {"count",8} {"p50",8} {"p99",8} {"p99.9",8} {"max",8}");
        Print($"within {options.Window.TotalMilliseconds:0} ms of a switch", result.Around);
        if (result.Instances > 1)
        {
            for (var i = 0; i < result.Instances; i++)
            {
                Print($"  producers on p{i + 1}", result.AroundByInstance[i]);
            }
        }
        Print("steady state", result.Steady);
    }

    public static void PrintComparison(IReadOnlyList<StallResult> results, SwitchStallOptions options)
    {
        var window = $"±{options.Window.TotalMilliseconds:0} ms of a switch";
        Console.WriteLine();
        Console.WriteLine($"| | {string.Join(" | ", results.Select(r => r.Instances == 1 ? "1 instance" : $"{r.Instances} instances"))} |");
        Console.WriteLine($"|---|{string.Concat(results.Select(_ => "--:|"))}");
        Row("pause ms, median (min-max)", r =>
        {
            var pauses = r.Actions.Select(a => a.PauseMs).Order().ToList();
            return $"{Ms(pauses[pauses.Count / 2])} ({Ms(pauses[0])}-{Ms(pauses[^1])})";
        });
        Row($"{window}: p99 ms per action, median (min-max)", r =>
        {
            var p99s = r.AroundByAction.Select(P99Ms).Order().ToList();
            return $"{Ms(p99s[p99s.Count / 2])} ({Ms(p99s[0])}-{Ms(p99s[^1])})";
        });
        Row($"{window}: records", r => $"{r.Around.TotalCount:N0}");
        Row($"{window}: p50 / p99 / p99.9 / max ms", r => Percentiles(r.Around));
        Row("steady state: records", r => $"{r.Steady.TotalCount:N0}");
        Row("steady state: p50 / p99 / p99.9 / max ms", r => Percentiles(r.Steady));
        Row("failed deliveries / not queued", r => $"{r.Failed} / {r.QueueFull}");
        Row("CPU s: this process / other processes", r => $"{r.Cpu.ThisProcessSeconds:0} / {r.Cpu.OtherSeconds:0} in {r.Cpu.WallSeconds:0} s");

        var single = results.First(r => r.Instances == 1);
        foreach (var fleet in results.Where(r => r.Instances > 1))
        {
            var p99 = P99Ms(fleet.Around);
            var ratio = p99 / P99Ms(single.Around);
            var holds = ratio <= TargetRatio && p99 < TargetP99Ms;
            Console.WriteLine();
            Console.WriteLine($"target (fleet p99 near a switch <= {TargetRatio:0}x one instance's and < {TargetP99Ms:0} ms): " +
                $"{fleet.Instances} instances {Ms(p99)} ms = {ratio:0.00}x -> {(holds ? "holds" : "does not hold")}");
        }

        void Row(string label, Func<StallResult, string> cell) => Console.WriteLine($"| {label} | {string.Join(" | ", results.Select(cell))} |");
    }

    private static void Print(string label, LongHistogram histogram)
    {
        if (histogram.TotalCount == 0)
        {
            Console.WriteLine($"{label,-32} {0,8}");
            return;
        }
        Console.WriteLine($"{label,-32} {histogram.TotalCount,8} {Ms(histogram, 50),8} {Ms(histogram, 99),8} {Ms(histogram, 99.9),8} {Ms(histogram.GetMaxValue() / 1000.0),8}");
    }

    private static string Percentiles(LongHistogram h) => $"{Ms(h, 50)} / {Ms(h, 99)} / {Ms(h, 99.9)} / {Ms(h.GetMaxValue() / 1000.0)}";

    private static double P99Ms(LongHistogram h) => h.GetValueAtPercentile(99) / 1000.0;

    private static string Ms(LongHistogram h, double percentile) => Ms(h.GetValueAtPercentile(percentile) / 1000.0);

    private static string Ms(double ms) => ms.ToString("0.00", CultureInfo.InvariantCulture);
}
