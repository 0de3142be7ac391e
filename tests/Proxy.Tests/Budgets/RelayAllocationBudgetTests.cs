using System.Text.Json;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Switchback.Proxy.Benchmarks.Relay;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Budgets;

/// <summary>
/// Allocation budgets of the whole relay path (client session, dispatcher, partition handlers, upstream connection),
/// enforced: the BenchmarkDotNet relay benches run in-process with the memory diagnoser against a librdkafka mock
/// cluster, their JSON results file is read back, and every bench must stay within its budget. The memory
/// diagnoser counts the whole process's allocations, on every thread, so this runs alone, after the parallel tests.
/// </summary>
[Collection(RelayAllocationBudgetCollection.Name)]
public sealed class RelayAllocationBudgetTests(ITestOutputHelper output)
{
    /// <summary>
    /// Regression ceilings, not targets: the target is 0 B per request beyond pooled buffers. Each is the figure
    /// measured on 2026-11-26 plus about 130 B; lower them as allocations are removed. Run to run a figure moves by
    /// up to ~75 B (one-off allocations elsewhere in the process, the pooled state-machine cache missing now and
    /// then), so this catches one more object of a couple of hundred bytes per request. Left per request: the two
    /// 32 B pooled-frame wrappers (request and answer), which callers may dispose twice, so they are not reused.
    /// </summary>
    private static readonly Dictionary<string, long> BudgetBytesPerOperation = new()
    {
        [nameof(RelayBenchmarks.RelayProduce)] = 200, // measured 65-66 B (was 2,964-3,016 B on 2026-11-25)
        [nameof(RelayBenchmarks.RelayFetch)] = 200, // measured 66-69 B (was 3,134-3,208 B)
    };

    [Fact]
    public void RelayPath_StaysWithinItsAllocationBudget()
    {
        var artifacts = Path.Combine(Path.GetTempPath(), $"switchback-relay-budgets-{Guid.NewGuid():N}");
        try
        {
            var job = new Job("budget")
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithWarmupCount(2)
                .WithIterationCount(3)
                // About a second per iteration. One-off allocations in the process meanwhile (timers, Kestrel's
                // heartbeat) average out below a byte per operation; an object allocated per request never does.
                .WithInvocationCount(8192)
                .WithUnrollFactor(16);
            var config = ManualConfig.CreateEmpty()
                .AddJob(job)
                .AddDiagnoser(MemoryDiagnoser.Default)
                .AddExporter(JsonExporter.Full)
                .AddLogger(NullLogger.Instance)
                .WithArtifactsPath(artifacts)
                .WithOptions(ConfigOptions.DisableOptimizationsValidator); // allocation counts do not depend on the build
            var summary = BenchmarkRunner.Run<RelayBenchmarks>(config);
            Assert.False(summary.HasCriticalValidationErrors, string.Join("; ", summary.ValidationErrors.Select(e => e.Message)));

            var results = Directory.GetFiles(Path.Combine(artifacts, "results"), "*-report-full.json");
            Assert.Single(results);
            using var document = JsonDocument.Parse(File.ReadAllText(results[0]));
            var measured = new Dictionary<string, long>();
            foreach (var benchmark in document.RootElement.GetProperty("Benchmarks").EnumerateArray())
            {
                var method = benchmark.GetProperty("Method").GetString()!;
                measured[method] = benchmark.GetProperty("Memory").GetProperty("BytesAllocatedPerOperation").GetInt64();
                output.WriteLine($"{method}: {measured[method]} B per operation (budget {BudgetBytesPerOperation.GetValueOrDefault(method)} B)");
            }
            Assert.Equal(BudgetBytesPerOperation.Keys.Order(), measured.Keys.Order());
            foreach (var (method, budget) in BudgetBytesPerOperation)
            {
                Assert.True(measured[method] <= budget, $"{method} allocated {measured[method]} B per operation; its budget is {budget} B.");
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
public sealed class RelayAllocationBudgetCollection
{
    public const string Name = "Relay allocation budgets";
}
