using System.Globalization;

namespace Switchback.Bench;

/// <summary>Settings of the <c>mirror</c> run, from <c>--name value</c> arguments.</summary>
public sealed record MirrorBenchOptions(int Rate, int Partitions, int RecordBytes, TimeSpan Duration, TimeSpan Warmup, int Backlog)
{
    public static MirrorBenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new MirrorBenchOptions(Rate: 20_000, Partitions: 12, RecordBytes: 256, Duration: TimeSpan.FromSeconds(20), Warmup: TimeSpan.FromSeconds(3), Backlog: 150_000);
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Number() => int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                ? n
                : throw new ArgumentException($"{args[i - 1]} needs a positive whole number");
            options = args[i] switch
            {
                "--rate" => options with { Rate = Number() },
                "--partitions" => options with { Partitions = Number() },
                "--record-bytes" => options with { RecordBytes = Number() },
                "--seconds" => options with { Duration = TimeSpan.FromSeconds(Number()) },
                "--warmup-ms" => options with { Warmup = TimeSpan.FromMilliseconds(Number()) },
                "--backlog" => options with { Backlog = Number() },
                _ => throw new ArgumentException($"unknown option '{args[i]}'"),
            };
        }
        return options;
    }

    public const string Usage = """
        mirror [--rate 20000] [--partitions 12] [--record-bytes 256] [--seconds 20] [--warmup-ms 3000] [--backlog 150000]
        """;
}
