using System.Globalization;

namespace Switchback.Soak;

/// <summary>Settings of a soak run, from <c>--name value</c> arguments.</summary>
public sealed record SoakOptions(TimeSpan Duration, string OutputPath, int RatePerFamily, int Partitions, int ValueBytes)
{
    public const string Usage = """
        usage: Switchback.Soak [--minutes 15] [--out bench/results/soak.md] [--rate 100] [--partitions 6] [--value-bytes 64]
          --minutes      length of the loaded phase (at least 3)
          --out          Markdown report to write
          --rate         records/s of the steady producer of each family
          --partitions   partitions of orders.events and payments.events on both clusters
          --value-bytes  padding per record (a mock partition keeps only ~5 MiB, so keep records small)
        """;

    public static SoakOptions Parse(IReadOnlyList<string> args)
    {
        var options = new SoakOptions(TimeSpan.FromMinutes(15), Path.Combine("bench", "results", "soak.md"), 100, 6, 64);
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Number() => int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                ? n
                : throw new ArgumentException($"{args[i - 1]} needs a positive whole number");
            options = args[i] switch
            {
                "--minutes" => options with { Duration = TimeSpan.FromMinutes(Number()) },
                "--out" => options with { OutputPath = Value() },
                "--rate" => options with { RatePerFamily = Number() },
                "--partitions" => options with { Partitions = Number() },
                "--value-bytes" => options with { ValueBytes = Number() },
                _ => throw new ArgumentException($"unknown option '{args[i]}'"),
            };
        }
        if (options.Duration < TimeSpan.FromMinutes(3))
        {
            throw new ArgumentException("--minutes must be at least 3 (warm-up plus two switch cycles)");
        }
        return options;
    }
}
