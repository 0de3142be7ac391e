using System.Diagnostics;
using System.Globalization;

namespace Switchback.Soak;

/// <summary>One row of the time series.</summary>
public sealed record Sample(
    TimeSpan At,
    ProcSample Proc,
    IReadOnlyDictionary<string, double> Metrics,
    long Acked,
    long Failed,
    long Consumed,
    long ConsumerLag,
    string OrdersWrite,
    string Fault);

/// <summary>Reads the proxy's /proc entries and /metrics, and the workload's counters, at a fixed interval.</summary>
public sealed class ResourceSampler(ProxyProcess proxy, Func<(long Acked, long Failed, long Consumed, long Lag, string OrdersWrite, string Fault)> workload, Stopwatch clock)
{
    /// <summary>The unlabelled series read from /metrics, when present.</summary>
    public static readonly string[] MetricNames =
    [
        "switchback_client_connections", "switchback_requests_in_flight",
        "process_working_set_bytes", "process_private_memory_bytes", "process_open_handles", "process_num_threads",
        "dotnet_total_memory_bytes",
    ];

    private readonly Lock _gate = new();
    private readonly List<Sample> _samples = [];
    private int _metricErrors;

    public IReadOnlyList<Sample> Samples
    {
        get
        {
            lock (_gate)
            {
                return [.. _samples];
            }
        }
    }

    public int MetricErrors => Volatile.Read(ref _metricErrors);

    public async Task RunAsync(TimeSpan every, CancellationToken stop)
    {
        using var http = new HttpClient { BaseAddress = proxy.AdminUri, Timeout = TimeSpan.FromSeconds(5) };
        using var timer = new PeriodicTimer(every);
        await SampleOnce(http);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                await SampleOnce(http);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Takes one sample now (also used once after the load stops).</summary>
    public async Task<Sample> SampleOnce(HttpClient http)
    {
        var proc = proxy.ReadProc();
        var metrics = await ScrapeAsync(http);
        var (acked, failed, consumed, lag, write, fault) = workload();
        var sample = new Sample(clock.Elapsed, proc, metrics, acked, failed, consumed, lag, write, fault);
        lock (_gate)
        {
            _samples.Add(sample);
        }
        Console.WriteLine($"[{sample.At:mm\\:ss}] rss {proc.RssKb / 1024.0:0.0} MiB, fds {proc.OpenFds}, threads {proc.Threads}, " +
            $"connections {Metric(sample, "switchback_client_connections")}, in flight {Metric(sample, "switchback_requests_in_flight")}, " +
            $"acked {acked}, failed {failed}, lag {lag}");
        return sample;
    }

    public static string Metric(Sample sample, string name) =>
        sample.Metrics.TryGetValue(name, out var value) ? value.ToString("0", CultureInfo.InvariantCulture) : "n/a";

    private async Task<IReadOnlyDictionary<string, double>> ScrapeAsync(HttpClient http)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        try
        {
            var text = await http.GetStringAsync("metrics");
            foreach (var line in text.Split('\n'))
            {
                if (line.Length == 0 || line[0] == '#')
                {
                    continue;
                }
                var space = line.LastIndexOf(' ');
                if (space <= 0)
                {
                    continue;
                }
                var name = line[..space];
                if (Array.IndexOf(MetricNames, name) >= 0
                    && double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                {
                    values[name] = value;
                }
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            Interlocked.Increment(ref _metricErrors);
        }
        return values;
    }
}
