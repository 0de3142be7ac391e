using System.Globalization;
using System.Net;
using Switchback.Bench.LoadGenerator.Suite;
using Switchback.Bench.LoadGenerator.Workloads;
using Switchback.Proxy.Demo;

namespace Switchback.Bench.LoadGenerator;

/// <summary>
/// End-to-end load generator. <c>suite</c> starts everything and writes the report; the other modes run one
/// workload against an address that is already up.
/// </summary>
public static class Program
{
    private const string Usage = """
        usage:
          suite [--out bench/results/latest.md] [--rounds 3] [--duration 10] [--partitions 12] [--brokers 3]
                [--latency-rate 10000] [--connections 10000] [--workloads produce,consume,latency]
          produce     --bootstrap host:port [--topic bench.produce] [--duration 10] [--rate N] [--linger-ms 5]
          latency     --bootstrap host:port [--topic bench.produce] [--duration 10] [--rate 10000] [--linger-ms 5]
          consume     --bootstrap host:port [--topic bench.consume] [--duration 10]
          connections --bootstrap host:port [--count 10000] [--pid PID-to-measure]
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
        {
            Console.Error.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        LibrdkafkaLoader.EnsureLoaded();
        try
        {
            var rest = args[1..];
            switch (args[0])
            {
                case "suite":
                    return await SuiteRunner.RunAsync(SuiteOptions.Parse(rest)).ConfigureAwait(false);
                case "produce":
                case "latency":
                    {
                        var o = SingleOptions.Parse(rest);
                        var latency = args[0] == "latency";
                        var m = ProduceWorkload.Run(new ProduceSettings(
                            o.Bootstrap, o.Topic ?? "bench.produce", o.Duration, LingerMs: o.LingerMs,
                            RecordsPerSecond: o.Rate ?? (latency ? 10_000 : null), RecordLatency: latency));
                        Print(m);
                        return 0;
                    }
                case "consume":
                    {
                        var o = SingleOptions.Parse(rest);
                        Print(ConsumeWorkload.Run(new ConsumeSettings(o.Bootstrap, o.Topic ?? "bench.consume", o.Duration)));
                        return 0;
                    }
                case "connections":
                    {
                        var o = SingleOptions.Parse(rest);
                        var r = await ConnectionScaleWorkload.RunAsync(IPEndPoint.Parse(o.Bootstrap), o.Count, o.Pid, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                        Console.WriteLine(r);
                        return r.Opened == r.Requested ? 0 : 1;
                    }
                default:
                    Console.Error.WriteLine($"unknown mode '{args[0]}'");
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(Usage);
            return 2;
        }
    }

    private static void Print(RunMeasurement m)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{m.Records} records, {m.MegabytesPerSecond:0.0} MB/s, {m.RecordsPerSecond:0} records/s over {m.Seconds:0.0} s, {m.Errors} errors"));
        if (m.Latency is { } l)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"latency ms: p50 {l.P50Us / 1000:0.000} p99 {l.P99Us / 1000:0.000} p99.9 {l.P999Us / 1000:0.000} max {l.MaxUs / 1000:0.0} ({l.Count} samples)"));
        }
    }

    private sealed record SingleOptions(string Bootstrap, string? Topic, TimeSpan Duration, double? Rate, int LingerMs, int Count, int? Pid)
    {
        public static SingleOptions Parse(string[] args)
        {
            string? bootstrap = null;
            string? topic = null;
            var duration = TimeSpan.FromSeconds(10);
            double? rate = null;
            var linger = 5;
            var count = 10_000;
            int? pid = null;
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--bootstrap": bootstrap = Next(); break;
                    case "--topic": topic = Next(); break;
                    case "--duration": duration = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture)); break;
                    case "--rate": rate = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--linger-ms": linger = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--count": count = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--pid": pid = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    default: throw new ArgumentException($"unknown option '{args[i]}'");
                }
            }
            return new SingleOptions(bootstrap ?? throw new ArgumentException("--bootstrap is required"), topic, duration, rate, linger, count, pid);
        }
    }
}
