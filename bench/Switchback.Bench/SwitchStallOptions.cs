using System.Globalization;

namespace Switchback.Bench;

/// <summary>Settings of the <c>switch-stall</c> run, from <c>--name value</c> arguments.</summary>
public sealed record SwitchStallOptions(
    int Rate,
    int Producers,
    int Partitions,
    int Cycles,
    TimeSpan Gap,
    TimeSpan Warmup,
    TimeSpan Window,
    int RecordBytes,
    bool Idempotent)
{
    public static SwitchStallOptions Parse(IReadOnlyList<string> args)
    {
        var options = new SwitchStallOptions(Rate: 20_000, Producers: 4, Partitions: 12, Cycles: 5,
            Gap: TimeSpan.FromSeconds(4), Warmup: TimeSpan.FromSeconds(3), Window: TimeSpan.FromSeconds(1), RecordBytes: 256, Idempotent: true);
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Number() => int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                ? n
                : throw new ArgumentException($"{args[i - 1]} needs a positive whole number");
            options = args[i] switch
            {
                "--rate" => options with { Rate = Number() },
                "--producers" => options with { Producers = Number() },
                "--partitions" => options with { Partitions = Number() },
                "--cycles" => options with { Cycles = Number() },
                "--gap-ms" => options with { Gap = TimeSpan.FromMilliseconds(Number()) },
                "--warmup-ms" => options with { Warmup = TimeSpan.FromMilliseconds(Number()) },
                "--window-ms" => options with { Window = TimeSpan.FromMilliseconds(Number()) },
                "--record-bytes" => options with { RecordBytes = Number() },
                "--no-idempotence" => options with { Idempotent = false },
                _ => throw new ArgumentException($"unknown option '{args[i]}'"),
            };
        }
        return options;
    }

    public const string Usage = """
        switch-stall [--rate 20000] [--producers 4] [--partitions 12] [--cycles 5] [--gap-ms 4000]
                     [--warmup-ms 3000] [--window-ms 1000] [--record-bytes 256] [--no-idempotence]
        """;
}
