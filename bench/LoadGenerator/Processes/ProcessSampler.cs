using System.Globalization;
using System.Runtime.InteropServices;

namespace Switchback.Bench.LoadGenerator;

/// <summary>Reads a process's CPU time and resident memory from /proc, and the machine's busy time.</summary>
public static partial class ProcessSampler
{
    private const int ScClkTck = 2;
    private static readonly double s_ticksPerSecond = ReadTicksPerSecond();

    /// <summary>User plus system CPU seconds of <paramref name="pid"/> (all threads), or null if it is gone.</summary>
    public static double? TryReadCpuSeconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the parenthesised command name, which may itself contain spaces.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return ticks / s_ticksPerSecond;
        }
        catch (IOException)
        {
            return null;
        }
    }

    public static double? TryReadRssMb(int pid) => ReadStatusKilobytes(pid, "VmRSS:") / 1024.0;

    /// <summary>Peak resident set since the process started or since the last <see cref="TryResetPeakRss"/>.</summary>
    public static double? TryReadPeakRssMb(int pid) => ReadStatusKilobytes(pid, "VmHWM:") / 1024.0;

    /// <summary>Resets VmHWM to the current RSS (writing 5 to clear_refs), so a round reports its own peak.</summary>
    public static bool TryResetPeakRss(int pid)
    {
        try
        {
            File.WriteAllText($"/proc/{pid}/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// The machine's jiffies from the first line of /proc/stat: busy in processes (user, nice, system), in
    /// interrupts (irq, softirq: loopback TCP is mostly processed there), stolen by the hypervisor, and in total.
    /// </summary>
    public static MachineJiffies ReadMachineJiffies()
    {
        var line = File.ReadLines("/proc/stat").First();
        var v = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(x => long.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        return new MachineJiffies(v[0] + v[1] + v[2], v[5] + v[6], v[7], v.Sum());
    }

    /// <summary>Converts /proc/stat jiffies (USER_HZ, the same unit as clock ticks) to seconds.</summary>
    public static double JiffiesToSeconds(long jiffies) => jiffies / s_ticksPerSecond;

    private static long? ReadStatusKilobytes(int pid, string key)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(key, StringComparison.Ordinal))
                {
                    return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }
        return null;
    }

    private static double ReadTicksPerSecond()
    {
        var ticks = SysConf(ScClkTck);
        return ticks > 0 ? ticks : 100;
    }

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);
}

/// <summary>Cumulative machine CPU time in jiffies (see <see cref="ProcessSampler.ReadMachineJiffies"/>).</summary>
public readonly record struct MachineJiffies(long Processes, long Interrupts, long Steal, long Total)
{
    public long Busy => Processes + Interrupts + Steal;

    public static MachineJiffies operator -(MachineJiffies a, MachineJiffies b) =>
        new(a.Processes - b.Processes, a.Interrupts - b.Interrupts, a.Steal - b.Steal, a.Total - b.Total);
}
