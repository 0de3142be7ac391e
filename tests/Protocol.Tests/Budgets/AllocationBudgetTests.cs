using System.Text.Json;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Switchback.Protocol.Benchmarks.HotPath;
using Xunit;

namespace Switchback.Protocol.Tests.Budgets;

/// <summary>
/// Allocation budgets of the relay hot path, enforced: the BenchmarkDotNet hot-path benches run in-process with the
/// memory diagnoser, their JSON results file is read back, and every bench must stay within its budget. A change
/// that makes the hot path allocate fails here, not in a later profile. The in-process memory diagnoser counts the
/// whole process's allocations, so this runs alone, after the parallel tests.
/// </summary>
[Collection(AllocationBudgetCollection.Name)]
public sealed class AllocationBudgetTests
{
    private static readonly Dictionary<string, long> BudgetBytesPerOperation = new()
    {
        [nameof(HotPathBenchmarks.ProduceRoutingKeys)] = 0,
        [nameof(HotPathBenchmarks.ProduceRequestOutlineWrite)] = 0,
        [nameof(HotPathBenchmarks.FetchRequestPatchInPlace)] = 0,
        [nameof(HotPathBenchmarks.IdempotentBatchRebase)] = 0,
        [nameof(HotPathBenchmarks.ProduceAnswerRelayCheck)] = 0,
        [nameof(HotPathBenchmarks.FetchAnswerPatchInPlace)] = 0,
    };

    /// <summary>
    /// Below the size of the smallest object (24 B): a one-off allocation elsewhere in the process during an iteration
    /// (tiered JIT, a timer, the runtime's own work) can show as a few bytes per operation of a fast bench (measured
    /// once: 9 B for a 50 ns operation), while an object allocated per operation, or on every other one, still fails.
    /// </summary>
    private const long OneOffNoiseBytes = 11;

    [Fact]
    public void HotPath_StaysWithinItsAllocationBudget()
    {
        var artifacts = Path.Combine(Path.GetTempPath(), $"switchback-budgets-{Guid.NewGuid():N}");
        try
        {
            var job = new Job("budget")
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithWarmupCount(3)
                .WithIterationCount(3)
                .WithInvocationCount(16384) // a one-off allocation (JIT tiering, timers) averages out below 1 B; a per-operation object never does
                .WithUnrollFactor(16);
            var config = ManualConfig.CreateEmpty()
                .AddJob(job)
                .AddDiagnoser(MemoryDiagnoser.Default)
                .AddExporter(JsonExporter.Full)
                .AddLogger(NullLogger.Instance)
                .WithArtifactsPath(artifacts)
                .WithOptions(ConfigOptions.DisableOptimizationsValidator); // allocation counts do not depend on the build
            BenchmarkRunner.Run<HotPathBenchmarks>(config);

            var results = Directory.GetFiles(Path.Combine(artifacts, "results"), "*-report-full.json");
            Assert.Single(results);
            using var document = JsonDocument.Parse(File.ReadAllText(results[0]));
            var measured = new Dictionary<string, long>();
            foreach (var benchmark in document.RootElement.GetProperty("Benchmarks").EnumerateArray())
            {
                var method = benchmark.GetProperty("Method").GetString()!;
                measured[method] = benchmark.GetProperty("Memory").GetProperty("BytesAllocatedPerOperation").GetInt64();
            }
            Assert.Equal(BudgetBytesPerOperation.Keys.Order(), measured.Keys.Order());
            foreach (var (method, budget) in BudgetBytesPerOperation)
            {
                Assert.True(measured[method] <= budget + OneOffNoiseBytes, $"{method} allocated {measured[method]} B per operation; its budget is {budget} B.");
            }
        }
        finally
        {
            if (Directory.Exists(artifacts))
            {
                Directory.Delete(artifacts, recursive: true);
            }
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationBudgetCollection
{
    public const string Name = "Allocation budgets";
}
