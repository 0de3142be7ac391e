namespace Switchback.Soak;

/// <summary>One resource compared between the first and the last third of the post-warm-up samples.</summary>
public sealed record Trend(string Name, string Unit, double FirstThird, double LastThird, double SlopePerHour, double Allowed, bool Flat)
{
    public double Delta => LastThird - FirstThird;
}

/// <summary>
/// Decides whether memory and handles stayed flat: after the warm-up, the median of the last third of the samples
/// against the median of the first third, plus a least-squares slope over all post-warm-up samples.
/// </summary>
public static class Flatness
{
    /// <summary>RSS may grow by this fraction of the first third (or 16 MiB, whichever is more).</summary>
    public const double RssTolerance = 0.10;
    public const double RssFloorMiB = 16;
    public const double FdTolerance = 10;
    public const double ThreadTolerance = 5;
    public const double HeapTolerance = 0.25;

    public static TimeSpan Warmup(TimeSpan duration) => TimeSpan.FromTicks(Math.Min(TimeSpan.FromMinutes(2).Ticks, duration.Ticks / 5));

    public static IReadOnlyList<Trend> Analyse(IReadOnlyList<Sample> loaded, TimeSpan warmup)
    {
        var post = loaded.Where(s => s.At >= warmup).ToList();
        if (post.Count < 6)
        {
            return [];
        }
        var third = post.Count / 3;
        var first = post.Take(third).ToList();
        var last = post.Skip(post.Count - third).ToList();
        var trends = new List<Trend>
        {
            Compare("proxy RSS", "MiB", post, first, last, s => s.Proc.RssKb / 1024.0, f => Math.Max(f * RssTolerance, RssFloorMiB)),
            Compare("open file descriptors", "", post, first, last, s => s.Proc.OpenFds, _ => FdTolerance),
            Compare("threads", "", post, first, last, s => s.Proc.Threads, _ => ThreadTolerance),
        };
        if (post.All(s => s.Metrics.ContainsKey("dotnet_total_memory_bytes")))
        {
            trends.Add(Compare("GC heap (dotnet_total_memory_bytes)", "MiB", post, first, last,
                s => s.Metrics["dotnet_total_memory_bytes"] / (1024 * 1024), f => Math.Max(f * HeapTolerance, 8)));
        }
        return trends;
    }

    private static Trend Compare(string name, string unit, List<Sample> post, List<Sample> first, List<Sample> last, Func<Sample, double> value, Func<double, double> allowed)
    {
        var a = Median(first.Select(value));
        var b = Median(last.Select(value));
        var slope = Slope(post.Select(s => (s.At.TotalHours, value(s))).ToList());
        var limit = allowed(a);
        return new Trend(name, unit, a, b, slope, limit, b - a <= limit);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static double Slope(List<(double X, double Y)> points)
    {
        var mx = points.Average(p => p.X);
        var my = points.Average(p => p.Y);
        var sxx = points.Sum(p => (p.X - mx) * (p.X - mx));
        return sxx == 0 ? 0 : points.Sum(p => (p.X - mx) * (p.Y - my)) / sxx;
    }
}
