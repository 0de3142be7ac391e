using Switchback.Bench.LoadGenerator.Workloads;

namespace Switchback.Bench.LoadGenerator.Suite;

/// <summary>A target the suite measures: where clients connect and which processes to charge.</summary>
public sealed record BenchTarget(string Name, string BootstrapServers, int? RelayPid, int UpstreamPid);

/// <summary>One workload against one target in one round, with the CPU and memory it cost each process.</summary>
public sealed record RoundResult(
    string Workload,
    string Target,
    int Round,
    RunMeasurement Measurement,
    double? RelayCpuSeconds,
    double? RelayPeakRssMb,
    double? UpstreamCpuSeconds,
    double ClientCpuSeconds,
    double MachineBusyPercent,
    double OtherCpuSeconds,
    double InterruptCpuSeconds,
    double StealSeconds);
