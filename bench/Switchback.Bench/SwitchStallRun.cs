using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using HdrHistogram;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;

namespace Switchback.Bench;

/// <summary>
/// <c>switch-stall</c>: producers write at a fixed total rate through the proxy to two in-process mock clusters
/// while the family's writes switch source -> target and roll back, <see cref="SwitchStallOptions.Cycles"/> times.
/// Reports the client-observed produce latency (send to delivery report) of records sent within
/// <see cref="SwitchStallOptions.Window"/> of a switch or rollback, against the records sent at other times.
/// </summary>
public static class SwitchStallRun
{
    private const string Family = "orders";
    private const string Topic = "orders.events";

    public static async Task<int> RunAsync(SwitchStallOptions options)
    {
        using var source = MockKafkaCluster.Start(3);
        using var target = MockKafkaCluster.Start(3);
        source.CreateTopic(Topic, options.Partitions);
        target.CreateTopic(Topic, options.Partitions);
        var state = Path.Combine(Path.GetTempPath(), $"switchback-bench-{Environment.ProcessId}");
        await using var host = ProxyHost.Create(Configuration(source, target, state), logging => logging.ClearProviders().AddConsole().SetMinimumLevel(LogLevel.Error));
        await host.StartAsync();
        using var http = new HttpClient { BaseAddress = host.AdminUri, Timeout = TimeSpan.FromSeconds(60) };
        Console.WriteLine($"switch-stall: {options.Rate} records/s of {options.RecordBytes} B from {options.Producers} producers " +
            $"(idempotence {(options.Idempotent ? "on" : "off")}) to {options.Partitions} partitions; {options.Cycles} switch/rollback cycles, {options.Gap.TotalMilliseconds:0} ms apart");

        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var producers = Enumerable.Range(0, options.Producers)
            .Select(i => new PacedProducer(host.BootstrapServers, i, options, clock))
            .ToList();
        var threads = producers.Select(p => new Thread(() => p.Run(stop.Token)) { IsBackground = true, Name = $"producer-{p.Index}" }).ToList();
        threads.ForEach(t => t.Start());

        await Task.Delay(options.Warmup);
        var measuredFrom = clock.Elapsed;
        var switches = new List<(TimeSpan At, string Action, double PauseMs, TimeSpan Answered)>();
        for (var cycle = 0; cycle < options.Cycles; cycle++)
        {
            foreach (var (action, body) in new[] { ("switch", """{"write":"target","force":true,"reason":"switch-stall bench"}"""), ("rollback", """{"reason":"switch-stall bench"}""") })
            {
                var at = clock.Elapsed;
                using var response = await http.PostAsync($"v1/families/{Family}/{action}", new StringContent(body, Encoding.UTF8, "application/json"));
                var answered = clock.Elapsed - at;
                var text = await response.Content.ReadAsStringAsync();
                if (!response.IsSuccessStatusCode)
                {
                    Console.Error.WriteLine($"{action} failed: {(int)response.StatusCode} {text}");
                    return 1;
                }
                var pause = JsonDocument.Parse(text).RootElement.GetProperty("pauseMs").GetDouble();
                switches.Add((at, action, pause, answered));
                await Task.Delay(options.Gap);
            }
        }
        var measuredTo = clock.Elapsed;
        await stop.CancelAsync();
        threads.ForEach(t => t.Join());

        var around = NewHistogram();
        var steady = NewHistogram();
        long failed = 0, sent = 0;
        foreach (var producer in producers)
        {
            failed += producer.Failed;
            foreach (var (sentAt, latency) in producer.Deliveries)
            {
                if (sentAt < measuredFrom || sentAt > measuredTo)
                {
                    continue;
                }
                sent++;
                var near = switches.Exists(s => (sentAt - s.At).Duration() <= options.Window);
                (near ? around : steady).RecordValue(Math.Max(1, (long)latency.TotalMicroseconds));
            }
        }

        Console.WriteLine();
        Console.WriteLine($"{"action",-9} {"pause ms",9} {"answered ms",12}");
        foreach (var s in switches)
        {
            Console.WriteLine($"{s.Action,-9} {s.PauseMs,9:0.000} {s.Answered.TotalMilliseconds,12:0.0}");
        }
        Console.WriteLine();
        Console.WriteLine($"acknowledged in the measured {(measuredTo - measuredFrom).TotalSeconds:0.0} s: {sent} ({sent / (measuredTo - measuredFrom).TotalSeconds:0} records/s); failed deliveries: {failed}");
        Console.WriteLine($"{"produce latency (ms)",-32} {"count",8} {"p50",8} {"p99",8} {"p99.9",8} {"max",8}");
        Print($"within {options.Window.TotalMilliseconds:0} ms of a switch", around);
        Print("steady state", steady);
        try
        {
            Directory.Delete(state, recursive: true);
        }
        catch (IOException)
        {
        }
        return failed == 0 ? 0 : 1;
    }

    private static LongHistogram NewHistogram() => new(TimeSpan.FromMinutes(5).Ticks / 10, 3);

    private static void Print(string label, LongHistogram histogram)
    {
        static string Ms(long micros) => (micros / 1000.0).ToString("0.00", CultureInfo.InvariantCulture);
        if (histogram.TotalCount == 0)
        {
            Console.WriteLine($"{label,-32} {0,8}");
            return;
        }
        Console.WriteLine($"{label,-32} {histogram.TotalCount,8} {Ms(histogram.GetValueAtPercentile(50)),8} {Ms(histogram.GetValueAtPercentile(99)),8} " +
            $"{Ms(histogram.GetValueAtPercentile(99.9)),8} {Ms(histogram.GetMaxValue()),8}");
    }

    private static IConfiguration Configuration(MockKafkaCluster source, MockKafkaCluster target, string stateDirectory) =>
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Switchback:Listener:Bind"] = "127.0.0.1:0",
            ["Switchback:Listener:AdvertisedHost"] = "127.0.0.1",
            ["Switchback:Listener:BrokerPortStart"] = "0",
            ["Switchback:Admin:Bind"] = "127.0.0.1:0",
            ["Switchback:StateDirectory"] = stateDirectory,
            ["Switchback:Clusters:source:BootstrapServers"] = source.BootstrapServers,
            ["Switchback:Clusters:target:BootstrapServers"] = target.BootstrapServers,
            ["Switchback:Families:0:Name"] = Family,
            ["Switchback:Families:0:Topics:0"] = "orders.*",
            ["Switchback:Families:0:Groups:0"] = "orders-*",
            ["Switchback:Families:0:Write"] = "source",
            ["Switchback:Families:0:Read"] = "source",
            ["Switchback:Default:Write"] = "source",
            ["Switchback:Default:Read"] = "source",
        }).Build();

    /// <summary>One producer sending its share of the rate, in 1 ms steps, recording each record's delivery latency.</summary>
    private sealed class PacedProducer(string bootstrapServers, int index, SwitchStallOptions options, Stopwatch clock)
    {
        private readonly List<(TimeSpan SentAt, TimeSpan Latency)> _deliveries = new(1 << 16);
        private long _failed;

        public int Index { get; } = index;
        public long Failed => Interlocked.Read(ref _failed);

        /// <summary>Only read once the producer has been flushed and disposed.</summary>
        public IReadOnlyList<(TimeSpan SentAt, TimeSpan Latency)> Deliveries => _deliveries;

        public void Run(CancellationToken stop)
        {
            using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig
            {
                BootstrapServers = bootstrapServers,
                ClientId = $"switch-stall-{Index}",
                EnableIdempotence = options.Idempotent,
                MaxInFlight = options.Idempotent ? 5 : 1,
                Acks = Acks.All,
                LingerMs = 1,
                MessageTimeoutMs = 60_000,
            }).SetLogHandler(static (_, _) => { }).Build();
            var value = new byte[options.RecordBytes];
            var perSecond = (double)options.Rate / options.Producers;
            var started = clock.Elapsed;
            long produced = 0;
            while (!stop.IsCancellationRequested)
            {
                var due = (long)((clock.Elapsed - started).TotalSeconds * perSecond);
                for (; produced < due; produced++)
                {
                    var sentAt = clock.Elapsed;
                    var key = BitConverter.GetBytes(produced * options.Producers + Index);
                    // Delivery reports arrive on the producer's one poll thread, so the list needs no lock.
                    producer.Produce(Topic, new Message<byte[], byte[]> { Key = key, Value = value }, report =>
                    {
                        if (report.Error.IsError)
                        {
                            Interlocked.Increment(ref _failed);
                        }
                        else
                        {
                            _deliveries.Add((sentAt, clock.Elapsed - sentAt));
                        }
                    });
                }
                Thread.Sleep(1);
            }
            producer.Flush(TimeSpan.FromSeconds(60));
        }
    }
}
