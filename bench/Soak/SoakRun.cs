using System.Diagnostics;
using Confluent.Kafka;
using Switchback.Proxy.Demo;

namespace Switchback.Soak;

/// <summary>The soak's schedule: load, switches, faults and sampling for the run's length, then the checks and the report.</summary>
public static class SoakRun
{
    public const string OrdersTopic = "orders.events";
    public const string PaymentsTopic = "payments.events";

    public static readonly TimeSpan SampleEvery = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan SwitchFirst = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan SwitchEvery = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan SwitchHold = TimeSpan.FromSeconds(20);
    public static readonly TimeSpan FaultFirst = TimeSpan.FromSeconds(75);
    public static readonly TimeSpan FaultEvery = TimeSpan.FromSeconds(90);
    public static readonly TimeSpan FaultLength = TimeSpan.FromSeconds(5);
    public const int RttSpikeMs = 300;
    public static readonly TimeSpan ChurnEvery = TimeSpan.FromSeconds(3);
    public static readonly TimeSpan DrainFor = TimeSpan.FromSeconds(15);

    public static async Task<int> RunAsync(SoakOptions options, IReadOnlyList<string> args)
    {
        var repository = RepositoryRoot();
        var proxyDll = Path.Combine(repository, "src", "Proxy", "bin", "Release", "net10.0", "switchback.dll");
        if (!File.Exists(proxyDll))
        {
            Console.Error.WriteLine($"Switchback.Soak: {proxyDll} not found; run `dotnet build -c Release src/Proxy` first.");
            return 2;
        }
        var outputPath = Path.GetFullPath(options.OutputPath);
        LibrdkafkaLoader.EnsureLoaded();
        var startedUtc = DateTimeOffset.UtcNow;
        var workDirectory = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"switchback-soak-{Environment.ProcessId}")).FullName;

        using var source = MockKafkaCluster.Start(3);
        using var target = MockKafkaCluster.Start(3);
        foreach (var cluster in new[] { source, target })
        {
            cluster.CreateTopic(OrdersTopic, options.Partitions);
            cluster.CreateTopic(PaymentsTopic, options.Partitions);
        }
        var proxy = await ProxyProcess.StartAsync(proxyDll, workDirectory, source.BootstrapServers, target.BootstrapServers);
        Console.WriteLine($"proxy pid {proxy.Pid}: bootstrap {proxy.BootstrapServers}, admin {proxy.AdminUri}; log {proxy.LogPath}");
        Console.WriteLine($"soak for {options.Duration.TotalMinutes:0} min, report to {outputPath}");

        var clock = Stopwatch.StartNew();
        var ledger = new DeliveryLedger(clock);
        var padding = new string('x', options.ValueBytes);
        var runId = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var producers = new[]
        {
            new PacedProducer(proxy.BootstrapServers, "orders-steady", OrdersTopic, options.RatePerFamily, padding, ledger),
            new PacedProducer(proxy.BootstrapServers, "payments-steady", PaymentsTopic, options.RatePerFamily, padding, ledger),
        };
        var consumers = new[]
        {
            new GroupConsumer(proxy.BootstrapServers, $"orders-soak-classic-{runId}", OrdersTopic, GroupProtocol.Classic),
            new GroupConsumer(proxy.BootstrapServers, $"orders-soak-848-{runId}", OrdersTopic, GroupProtocol.Consumer),
            new GroupConsumer(proxy.BootstrapServers, $"payments-soak-classic-{runId}", PaymentsTopic, GroupProtocol.Classic),
            new GroupConsumer(proxy.BootstrapServers, $"payments-soak-848-{runId}", PaymentsTopic, GroupProtocol.Consumer),
        };
        var churn = new ConnectionChurn(proxy.BootstrapServers, [OrdersTopic, PaymentsTopic], padding, ledger);
        var switches = new SwitchDriver(proxy.AdminUri, "orders", "target", clock);
        var faults = new FaultDriver(source, "source", clock);
        var sampler = new ResourceSampler(proxy, () => (ledger.Acked, ledger.FailedCount, consumers.Sum(c => c.Consumed),
            consumers.Sum(c => Math.Max(0, c.Lag)), switches.CurrentWrite, faults.Active), clock);

        using var stopLoad = new CancellationTokenSource();
        using var stopConsumers = new CancellationTokenSource();
        using var stopSampling = new CancellationTokenSource();
        var producerThreads = producers.Select(p => Start($"producer-{p.Stream}", () => p.Run(stopLoad.Token))).ToList();
        var consumerThreads = consumers.Select(c => Start($"consumer-{c.Group}", () => c.Run(stopConsumers.Token))).ToList();
        var sampling = sampler.RunAsync(SampleEvery, stopSampling.Token);
        var churning = churn.RunAsync(ChurnEvery, stopLoad.Token);
        var switching = switches.RunAsync(SwitchFirst, SwitchEvery, SwitchHold, options.Duration - SwitchHold - TimeSpan.FromSeconds(5), stopLoad.Token);
        var faulting = faults.RunAsync(FaultFirst, FaultEvery, FaultLength, RttSpikeMs, options.Duration - FaultLength - TimeSpan.FromSeconds(5), stopLoad.Token);

        await Task.Delay(options.Duration);
        var loadEnd = clock.Elapsed;
        Console.WriteLine($"[{loadEnd:mm\\:ss}] load phase over; flushing producers");
        await stopLoad.CancelAsync();
        await Task.WhenAll(switching, faulting, churning);
        producerThreads.ForEach(t => t.Join());
        // Let the groups catch up, then read their remaining lag before they leave.
        await Task.Delay(DrainFor);
        var finalLag = consumers.Select(c => (c.Group, c.Lag)).ToList();
        await stopConsumers.CancelAsync();
        consumerThreads.ForEach(t => t.Join());
        await stopSampling.CancelAsync();
        await sampling;
        // With every client gone, connections and in-flight requests should be back to zero; allow them 30 s.
        Sample idle;
        using (var http = new HttpClient { BaseAddress = proxy.AdminUri, Timeout = TimeSpan.FromSeconds(5) })
        {
            var idleDeadline = clock.Elapsed + TimeSpan.FromSeconds(30);
            do
            {
                await Task.Delay(TimeSpan.FromSeconds(5));
                idle = await sampler.SampleOnce(http);
            }
            while (clock.Elapsed < idleDeadline
                && (idle.Metrics.GetValueOrDefault("switchback_client_connections", -1) != 0
                    || idle.Metrics.GetValueOrDefault("switchback_requests_in_flight", -1) != 0));
        }
        var log = proxy.SummariseLog();
        var proxyAlive = !proxy.HasExited;
        await proxy.DisposeAsync();

        Console.WriteLine("checking acknowledged records against both clusters");
        var changes = switches.Changes;
        var check = DeliveryCheck.Run(
            new Dictionary<string, string> { ["source"] = source.BootstrapServers, ["target"] = target.BootstrapServers },
            [(OrdersTopic, options.Partitions), (PaymentsTopic, options.Partitions)],
            ledger.AckedSnapshot(),
            record => ExpectedCluster(record, changes));

        var samples = sampler.Samples;
        var loaded = samples.Where(s => s.At <= loadEnd).ToList();
        var trends = Flatness.Analyse(loaded, Flatness.Warmup(options.Duration));
        var report = new SoakReport(options, args, repository, startedUtc, loadEnd, producers, consumers, churn, ledger, changes,
            faults.Faults, samples, idle, finalLag, check, trends, log, proxyAlive, sampler.MetricErrors);
        Directory.CreateDirectory(Path.GetDirectoryName(outputPath)!);
        await File.WriteAllTextAsync(outputPath, report.Markdown());
        Console.WriteLine();
        Console.WriteLine(report.Summary());
        Console.WriteLine($"report: {outputPath}");
        try
        {
            Directory.Delete(workDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
        return report.Passed ? 0 : 1;
    }

    /// <summary>
    /// The write cluster of the record's family when it was sent, or null when a switch or rollback was under way
    /// between its send and its acknowledgement (either cluster is then correct).
    /// </summary>
    public static string? ExpectedCluster(AckedRecord record, IReadOnlyList<RouteChange> orderChanges)
    {
        if (record.Topic.StartsWith("payments.", StringComparison.Ordinal))
        {
            return "target";
        }
        var write = "source";
        foreach (var change in orderChanges)
        {
            if (change.RequestedAt <= record.AckedAt && change.AnsweredAt >= record.SentAt)
            {
                return null;
            }
            if (change.AnsweredAt < record.SentAt)
            {
                if (change.Succeeded && change.WriteAfter is not null)
                {
                    write = change.WriteAfter;
                }
                else if (change.Status == 0)
                {
                    // No answer: the route after it is unknown.
                    return null;
                }
            }
        }
        return write;
    }

    private static Thread Start(string name, Action body)
    {
        var thread = new Thread(() => body()) { IsBackground = true, Name = name };
        thread.Start();
        return thread;
    }

    private static string RepositoryRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Proxy.sln")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException("Run from inside the Switchback repository (Proxy.sln not found above the current directory).");
    }
}
