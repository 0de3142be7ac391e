using System.Globalization;

namespace Switchback.Bench;

/// <summary>
/// <c>fleet-idle</c>: the CPU that proxy instances and their mock clusters use with no client traffic at all. A
/// fleet's instances poll the control topic and heartbeat the group all the time; one instance alone does neither,
/// so the difference is the price of being a fleet (the control reader's fetch wait sets its polling rate).
/// </summary>
public static class FleetIdleRun
{
    public const string Usage = "fleet-idle [--instances 3] [--seconds 30] [--control-read-wait-ms N]   (CPU of idle instances; --instances 1 is no fleet)";

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        var (instances, seconds, readWaitMs) = Parse(args);
        await using var rig = await ProxyRig.StartAsync(instances, partitions: 12, readWaitMs);
        await Task.Delay(TimeSpan.FromSeconds(5)); // past the joins and the first metadata refreshes
        var cpu = CpuMeter.Start();
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        var used = cpu.Read();
        Console.WriteLine($"fleet-idle: {instances} instance(s){(rig.IsFleet ? " in a fleet" : "")}, no clients: {used}");
        Console.WriteLine($"this process: {1000 * used.ThisProcessSeconds / used.WallSeconds:0} CPU ms per second " +
            $"({1000 * used.ThisProcessSeconds / used.WallSeconds / instances:0} per instance)");
        return 0;
    }

    private static (int Instances, int Seconds, int? ReadWaitMs) Parse(IReadOnlyList<string> args)
    {
        var (instances, seconds, readWaitMs) = (3, 30, (int?)null);
        for (var i = 0; i < args.Count; i++)
        {
            int Number() => i + 1 < args.Count && int.TryParse(args[++i], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                ? n
                : throw new ArgumentException($"{args[i - 1]} needs a positive whole number");
            switch (args[i])
            {
                case "--instances":
                    instances = Number();
                    break;
                case "--seconds":
                    seconds = Number();
                    break;
                case "--control-read-wait-ms":
                    readWaitMs = Number();
                    break;
                default:
                    throw new ArgumentException($"unknown option '{args[i]}'");
            }
        }
        return (instances, seconds, readWaitMs);
    }
}
