using System.Globalization;

namespace Switchback.Bench.LoadGenerator.Suite;

/// <summary>Settings of the standard suite; the defaults keep it under ten minutes on a 2-core machine.</summary>
public sealed record SuiteOptions
{
    public string OutPath { get; init; } = Path.Combine("bench", "results", "latest.md");
    public int Rounds { get; init; } = 3;
    public TimeSpan RoundDuration { get; init; } = TimeSpan.FromSeconds(10);
    public int Partitions { get; init; } = 12;
    public int Brokers { get; init; } = 3;
    public double PrefillMbPerPartition { get; init; } = 4;
    public double LatencyRate { get; init; } = 10_000;
    public double ProduceFixedRate { get; init; } = 50_000;
    public int Connections { get; init; } = 10_000;
    public string[] Workloads { get; init; } = ["produce", "produce-fixed", "consume", "latency", "latency-linger0"];

    public static SuiteOptions Parse(IReadOnlyList<string> args)
    {
        var options = new SuiteOptions();
        for (var i = 0; i < args.Count; i++)
        {
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            options = args[i] switch
            {
                "--out" => options with { OutPath = Next() },
                "--rounds" => options with { Rounds = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--duration" => options with { RoundDuration = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture)) },
                "--partitions" => options with { Partitions = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--brokers" => options with { Brokers = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--prefill-mb-per-partition" => options with { PrefillMbPerPartition = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--latency-rate" => options with { LatencyRate = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--produce-rate" => options with { ProduceFixedRate = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--connections" => options with { Connections = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--workloads" => options with { Workloads = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                _ => throw new ArgumentException($"unknown suite option '{args[i]}'"),
            };
        }
        return options;
    }
}
