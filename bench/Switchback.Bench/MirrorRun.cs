using System.Diagnostics;
using System.Globalization;
using System.Net;
using Confluent.Kafka;
using HdrHistogram;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Window;

namespace Switchback.Bench;

/// <summary>
/// <c>mirror</c>: the rollback window's mirror between two in-process mock clusters (no proxy in between). First a
/// backlog of <see cref="MirrorBenchOptions.Backlog"/> records on the new cluster is copied flat out (throughput);
/// then producers write the new cluster at a fixed rate while the mirror keeps up, and its lag (records, and ms by
/// the records' timestamps) is sampled every 50 ms; last, how long the mirror takes to copy everything once writes stop.
/// </summary>
public static class MirrorRun
{
    private const string Topic = "orders.events";

    public static async Task<int> RunAsync(MirrorBenchOptions options)
    {
        using var oldCluster = MockKafkaCluster.Start(3);
        using var newCluster = MockKafkaCluster.Start(3);
        oldCluster.CreateTopic(Topic, options.Partitions);
        newCluster.CreateTopic(Topic, options.Partitions);
        var state = Path.Combine(Path.GetTempPath(), $"switchback-bench-mirror-{Environment.ProcessId}");
        Console.WriteLine($"mirror: {options.Partitions} partitions, {options.RecordBytes} B records; backlog {options.Backlog}, then {options.Rate} records/s for {options.Duration.TotalSeconds:0} s");

        var partitions = Enumerable.Range(0, options.Partitions).Select(p => new TopicPartition(Topic, p)).ToList();
        var value = new byte[options.RecordBytes];
        Random.Shared.NextBytes(value);
        using (var producer = Producer(newCluster.BootstrapServers))
        {
            for (var i = 0; i < options.Backlog; i++)
            {
                Produce(producer, partitions[i % partitions.Count], i, value, null);
            }
            producer.Flush(TimeSpan.FromMinutes(2));
        }
        var backlogEnds = Ends(newCluster.BootstrapServers, partitions);

        var clock = Stopwatch.StartNew();
        var cpuFrom = Process.GetCurrentProcess().TotalProcessorTime;
        await using var mirror = await RollbackMirror.BeginAsync("orders", Cluster("new", 1, newCluster), Cluster("old", 0, oldCluster),
            partitions.ToDictionary(p => p, _ => 0L), new MirrorProgressStore(state), MirrorOptions.Default, NullLogger.Instance);
        await mirror.WaitCopiedAsync(backlogEnds, new CancellationTokenSource(TimeSpan.FromMinutes(5)).Token);
        var backlogTime = clock.Elapsed;
        // The mock clusters run in this process too: this is the whole copy's CPU, theirs included.
        var backlogCpu = Process.GetCurrentProcess().TotalProcessorTime - cpuFrom;
        var backlogFigures = mirror.Figures();

        using var stop = new CancellationTokenSource();
        var pacing = new Thread(() => Paced(newCluster.BootstrapServers, partitions, value, options, stop.Token)) { IsBackground = true, Name = "paced-producer" };
        pacing.Start();
        await Task.Delay(options.Warmup);
        var lagRecords = new LongHistogram(100_000_000, 3);
        var lagMs = new LongHistogram(3_600_000, 3);
        // What a rollback waits for inside its hold: everything written up to a moment (the new cluster's end offsets
        // then) copied. Measured every 500 ms, with the producers going on (a rollback would have held them).
        var catchUp = new LongHistogram(TimeSpan.FromMinutes(5).Ticks / 10, 3);
        using var watermarks = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = newCluster.BootstrapServers, GroupId = "mirror-bench-ends" })
            .SetLogHandler(static (_, _) => { }).Build();
        var from = mirror.Figures();
        var measuredFrom = clock.Elapsed;
        var nextCatchUp = measuredFrom;
        while (clock.Elapsed - measuredFrom < options.Duration)
        {
            await Task.Delay(50);
            var figures = mirror.Figures();
            lagRecords.RecordValue(figures.Totals.LagRecords);
            lagMs.RecordValue(figures.Totals.MaxLagMs ?? 0);
            if (clock.Elapsed >= nextCatchUp)
            {
                var ends = partitions.ToDictionary(p => p, p => watermarks.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(10)).High.Value);
                var waitFrom = clock.Elapsed;
                await mirror.WaitCopiedAsync(ends, new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token);
                catchUp.RecordValue(Math.Max(1, (long)(clock.Elapsed - waitFrom).TotalMicroseconds));
                nextCatchUp = clock.Elapsed + TimeSpan.FromMilliseconds(500);
            }
        }
        var to = mirror.Figures();
        var measured = clock.Elapsed - measuredFrom;
        await stop.CancelAsync();
        pacing.Join();
        var finalEnds = Ends(newCluster.BootstrapServers, partitions);
        var drainFrom = clock.Elapsed;
        await mirror.WaitCopiedAsync(finalEnds, new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token);
        var drain = clock.Elapsed - drainFrom;
        var end = mirror.Figures();

        Console.WriteLine();
        Console.WriteLine($"backlog: {backlogFigures.Totals.Copied} records copied in {backlogTime.TotalSeconds:0.00} s: " +
            $"{backlogFigures.Totals.Copied / backlogTime.TotalSeconds:0} records/s, {backlogFigures.Totals.CopiedBytes / backlogTime.TotalSeconds / 1e6:0.0} MB/s (key+value+header bytes); " +
            $"process CPU {backlogCpu.TotalSeconds:0.00} s (mock clusters included), {backlogCpu.TotalMilliseconds / (backlogFigures.Totals.CopiedBytes / 1e6):0.0} ms per MB");
        var copied = to.Totals.Copied - from.Totals.Copied;
        Console.WriteLine($"paced: {copied} records copied in the measured {measured.TotalSeconds:0.0} s: {copied / measured.TotalSeconds:0} records/s, " +
            $"{(to.Totals.CopiedBytes - from.Totals.CopiedBytes) / measured.TotalSeconds / 1e6:0.00} MB/s");
        Console.WriteLine($"{"lag (sampled every 50 ms)",-28} {"count",7} {"p50",8} {"p99",8} {"max",8}");
        Console.WriteLine($"{"records",-28} {lagRecords.TotalCount,7} {lagRecords.GetValueAtPercentile(50),8} {lagRecords.GetValueAtPercentile(99),8} {lagRecords.GetMaxValue(),8}");
        Console.WriteLine($"{"ms (record timestamps)",-28} {lagMs.TotalCount,7} {lagMs.GetValueAtPercentile(50),8} {lagMs.GetValueAtPercentile(99),8} {lagMs.GetMaxValue(),8}");
        static string Ms(long micros) => (micros / 1000.0).ToString("0.0", CultureInfo.InvariantCulture);
        Console.WriteLine($"{"caught-up wait (ms)",-28} {catchUp.TotalCount,7} {Ms(catchUp.GetValueAtPercentile(50)),8} {Ms(catchUp.GetValueAtPercentile(99)),8} {Ms(catchUp.GetMaxValue()),8}");
        Console.WriteLine($"after writes stopped, everything was copied within {drain.TotalMilliseconds:0.0} ms; total copied {end.Totals.Copied}, " +
            $"stray writes {end.Totals.StrayWrites}, divergent copies {end.Alignment.Divergent}");
        await mirror.StopAsync();
        try
        {
            Directory.Delete(state, recursive: true);
        }
        catch (IOException)
        {
        }
        // Every record on the new cluster copied once, each at its own offset.
        return end.Totals.Copied == finalEnds.Values.Sum() && end.Alignment.Divergent == 0 ? 0 : 1;
    }

    private static void Paced(string bootstrap, List<TopicPartition> partitions, byte[] value, MirrorBenchOptions options, CancellationToken stop)
    {
        using var producer = Producer(bootstrap);
        var started = Stopwatch.StartNew();
        long produced = 0;
        while (!stop.IsCancellationRequested)
        {
            var due = (long)(started.Elapsed.TotalSeconds * options.Rate);
            for (; produced < due; produced++)
            {
                Produce(producer, partitions[(int)(produced % partitions.Count)], produced, value, null);
            }
            Thread.Sleep(1);
        }
        producer.Flush(TimeSpan.FromSeconds(60));
    }

    private static IProducer<byte[], byte[]> Producer(string bootstrap) => new ProducerBuilder<byte[], byte[]>(new ProducerConfig
    {
        BootstrapServers = bootstrap,
        EnableIdempotence = true,
        Acks = Acks.All,
        LingerMs = 2,
    }).SetLogHandler(static (_, _) => { }).Build();

    private static void Produce(IProducer<byte[], byte[]> producer, TopicPartition partition, long index, byte[] value, Action<DeliveryReport<byte[], byte[]>>? delivered)
    {
        while (true)
        {
            try
            {
                producer.Produce(partition, new Message<byte[], byte[]> { Key = BitConverter.GetBytes(index), Value = value }, delivered);
                return;
            }
            catch (ProduceException<byte[], byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(10));
            }
        }
    }

    private static Dictionary<TopicPartition, long> Ends(string bootstrap, List<TopicPartition> partitions)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "mirror-bench-ends" })
            .SetLogHandler(static (_, _) => { }).Build();
        return partitions.ToDictionary(p => p, p => consumer.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(10)).High.Value);
    }

    private static ClusterConfig Cluster(string name, int ordinal, MockKafkaCluster cluster) =>
        new(name, ordinal, [.. cluster.BootstrapServers.Split(',').Select(a => new DnsEndPoint(a[..a.LastIndexOf(':')], int.Parse(a[(a.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture)))]);
}
