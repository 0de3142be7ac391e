namespace Switchback.Bench.LoadGenerator.Workloads;

/// <summary>What one client run observed: records and payload bytes moved, over how long, and latencies if asked.</summary>
public sealed record RunMeasurement(
    long Records,
    long PayloadBytes,
    double Seconds,
    long Errors,
    LatencySummary? Latency)
{
    public double MegabytesPerSecond => PayloadBytes / Seconds / 1_000_000;
    public double RecordsPerSecond => Records / Seconds;
}

/// <summary>Latency percentiles in microseconds.</summary>
public sealed record LatencySummary(long Count, double P50Us, double P99Us, double P999Us, double MaxUs);
