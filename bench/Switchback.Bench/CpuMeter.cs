using System.Diagnostics;
using System.Globalization;

namespace Switchback.Bench;

/// <summary>
/// Measures, from its start, the CPU seconds used by this process (producers, proxies and mock clusters alike) and by
/// everything else on the machine, so a report can say how much other work shared the cores.
/// </summary>
public sealed class CpuMeter
{
    private const double JiffiesPerSecond = 100; // USER_HZ: 100 on every Linux the bench runs on
    private readonly double _process = ProcessSeconds();
    private readonly double _machine = MachineBusySeconds();
    private readonly long _started = Stopwatch.GetTimestamp();

    public static CpuMeter Start() => new();

    public CpuUse Read()
    {
        var process = ProcessSeconds() - _process;
        return new CpuUse(process, Math.Max(0, MachineBusySeconds() - _machine - process), Stopwatch.GetElapsedTime(_started).TotalSeconds);
    }

    private static double ProcessSeconds()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime.TotalSeconds;
    }

    /// <summary>The machine's busy time (user, nice, system, irq, softirq, steal) from /proc/stat; NaN where there is none.</summary>
    private static double MachineBusySeconds()
    {
        try
        {
            var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long Field(int i) => long.Parse(fields[i], CultureInfo.InvariantCulture);
            return (Field(1) + Field(2) + Field(3) + Field(6) + Field(7) + Field(8)) / JiffiesPerSecond;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }
}

/// <summary>CPU seconds of this process and of other processes over <see cref="WallSeconds"/>.</summary>
public readonly record struct CpuUse(double ThisProcessSeconds, double OtherSeconds, double WallSeconds)
{
    public override string ToString() =>
        $"this process {ThisProcessSeconds:0.0} CPU s, other processes {OtherSeconds:0.0} CPU s, in {WallSeconds:0.0} s on {Environment.ProcessorCount} cores";
}
