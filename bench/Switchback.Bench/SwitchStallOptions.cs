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
    bool Idempotent,
    int Instances,
    bool Compare,
    int? ControlReadWaitMs,
    bool MirrorBack = false)
{
    /// <summary>The fleet size <c>--compare</c> measures against one instance when <c>--instances</c> is not given.</summary>
    public const int DefaultFleetSize = 3;

    /// <summary>The runs to make: this many instances, or with <c>--compare</c> one instance then the fleet.</summary>
    public IReadOnlyList<int> Runs => Compare ? [1, FleetSize] : [Instances];

    private int FleetSize => Instances > 1 ? Instances : DefaultFleetSize;

    public static SwitchStallOptions Parse(IReadOnlyList<string> args)
    {
        var options = new SwitchStallOptions(Rate: 20_000, Producers: 0, Partitions: 12, Cycles: 5,
            Gap: TimeSpan.FromSeconds(4), Warmup: TimeSpan.FromSeconds(3), Window: TimeSpan.FromSeconds(1), RecordBytes: 256, Idempotent: true,
            Instances: 1, Compare: false, ControlReadWaitMs: null);
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
                "--instances" => options with { Instances = Number() },
                "--compare" => options with { Compare = true },
                "--control-read-wait-ms" => options with { ControlReadWaitMs = Number() },
                "--mirror-back" => options with { MirrorBack = true },
                _ => throw new ArgumentException($"unknown option '{args[i]}'"),
            };
        }
        // One producer per fleet instance (more saturate 2 cores at 20k records/s: librdkafka's broker threads wake
        // for every 1 ms linger); --compare gives the single instance the same producers.
        return options.Producers > 0 ? options : options with { Producers = options.Compare || options.Instances > 1 ? options.FleetSize : 4 };
    }

    public const string Usage = """
        switch-stall [--rate 20000] [--producers 4] [--partitions 12] [--cycles 5] [--gap-ms 4000]
                     [--warmup-ms 3000] [--window-ms 1000] [--record-bytes 256] [--no-idempotence]
                     [--instances 1] [--compare] [--control-read-wait-ms N] [--mirror-back]
          --instances N  N proxy instances in one fleet (control topic on the source cluster); producer i
                         bootstraps to instance i mod N; switches are called on the first instance, rollbacks
                         on the second. --producers defaults to 1 per instance then.
          --compare      one run with 1 instance, then one with the fleet (--instances, default 3), same load
          --control-read-wait-ms N  the fleet's Fleet:ReadWaitMs (default: the proxy's, 10); the mock cluster
                         waits out every read of the control topic that finds nothing new, a real broker does not
          --mirror-back  the family's MirrorBack on: each rollback waits, inside its pause, for the rollback
                         window's mirror to copy back what was written to target (left behind is reported)
        """;
}
