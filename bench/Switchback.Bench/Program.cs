namespace Switchback.Bench;

/// <summary>End-to-end measurements of the proxy that are not micro-benchmarks.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // The proxy runs in this process: give it the socket threading `switchback run` has.
        Switchback.Proxy.Hosting.SocketEventThreads.PreferInlineCompletions();
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine($"usage: Switchback.Bench {SwitchStallOptions.Usage}");
            Console.WriteLine($"       Switchback.Bench {MirrorBenchOptions.Usage}");
            Console.WriteLine($"       Switchback.Bench {FleetIdleRun.Usage}");
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            return args[0] switch
            {
                "switch-stall" => await SwitchStallRun.RunAsync(SwitchStallOptions.Parse(args[1..])),
                "mirror" => await MirrorRun.RunAsync(MirrorBenchOptions.Parse(args[1..])),
                "fleet-idle" => await FleetIdleRun.RunAsync(args[1..]),
                _ => throw new ArgumentException($"unknown mode '{args[0]}' (switch-stall, mirror, fleet-idle)"),
            };
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"Switchback.Bench: {e.Message}");
            return 2;
        }
    }
}
