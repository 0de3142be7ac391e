namespace Switchback.Soak;

/// <summary>
/// A bounded soak of the proxy, run by hand outside CI: two mock clusters in this process, the proxy as a separate
/// process, a mixed client workload with switches and faults, resource sampling and an end-of-run delivery check.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is ["-h"] or ["--help"])
        {
            Console.WriteLine(SoakOptions.Usage);
            return 0;
        }
        SoakOptions options;
        try
        {
            options = SoakOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"Switchback.Soak: {e.Message}");
            Console.Error.WriteLine(SoakOptions.Usage);
            return 2;
        }
        return await SoakRun.RunAsync(options, args);
    }
}
