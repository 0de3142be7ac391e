using System.Net;
using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Integration;
using Switchback.Proxy.Window;
using Xunit;

namespace Switchback.Proxy.Tests.Window;

/// <summary>One record as stored on a cluster, in comparable form (bytes as hex, null kept apart from empty).</summary>
public sealed record MirroredRecord(int Partition, long Offset, string? Key, string? Value, string Headers, long TimestampMs)
{
    /// <summary>The record without its offset: what a copy must keep.</summary>
    public (int, string?, string?, string, long) Content => (Partition, Key, Value, Headers, TimestampMs);
}

/// <summary>A record to produce, to an explicit partition, with headers and a timestamp of its own.</summary>
public sealed record TestRecord(int Partition, byte[]? Key, byte[]? Value, (string Key, byte[]? Value)[] Headers, long TimestampMs)
{
    /// <summary>The <paramref name="index"/>th record of a stream: some null keys and values, an empty header value, timestamps in the past.</summary>
    public static TestRecord Numbered(int index, int partitions, string tag = "r") => new(
        index % partitions,
        index % 23 == 0 ? null : Encoding.UTF8.GetBytes($"key-{index % 17}"),
        index % 31 == 0 ? null : Encoding.UTF8.GetBytes($"{tag}-{index}"),
        [("seq", BitConverter.GetBytes(index)), ("empty", []), ("tag", Encoding.UTF8.GetBytes(tag))],
        1_700_000_000_000 + index);
}

/// <summary>
/// Two in-process mock clusters with the same topic: <c>source</c>, the family's old (origin) write cluster the mirror
/// writes, and <c>target</c>, its new write cluster the mirror reads (optionally through a <see cref="ReadCommittedFront"/>).
/// Each rig has its own state directory.
/// </summary>
public sealed class MirrorRig : IAsyncDisposable
{
    public const string Family = "orders";
    public const string Topic = "orders.events";

    private MirrorRig(int partitions, bool readCommittedFront)
    {
        Partitions = partitions;
        Old = MockKafkaCluster.Start(3);
        New = MockKafkaCluster.Start(3);
        Old.CreateTopic(Topic, partitions);
        New.CreateTopic(Topic, partitions);
        if (readCommittedFront)
        {
            NewFront = new ReadCommittedFront(New);
        }
        StateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-mirror-{Guid.NewGuid():N}");
        Directory.CreateDirectory(StateDirectory);
        Store = new MirrorProgressStore(StateDirectory);
        Logger = Logs.CreateLogger("Switchback.Window");
    }

    public static MirrorRig Start(int partitions = 4, bool readCommittedFront = false) => new(partitions, readCommittedFront);

    public int Partitions { get; }
    public MockKafkaCluster Old { get; }
    public MockKafkaCluster New { get; }
    public ReadCommittedFront? NewFront { get; }
    public string StateDirectory { get; }
    public MirrorProgressStore Store { get; }
    public CapturingLoggerProvider Logs { get; } = new();
    public ILogger Logger { get; }

    /// <summary>Short intervals so that the tests see checkpoints and stray checks quickly.</summary>
    public MirrorOptions Options { get; init; } = new(StrayCheckInterval: TimeSpan.FromMilliseconds(200), CheckpointInterval: TimeSpan.FromMilliseconds(100));

    public string OldBootstrap => Old.BootstrapServers;
    public string NewBootstrap => NewFront?.BootstrapServers ?? New.BootstrapServers;
    public ClusterConfig OldCluster => Cluster("source", 0, OldBootstrap);
    public ClusterConfig NewCluster => Cluster("target", 1, NewBootstrap);

    public ClusterConfig? ClusterNamed(string name) => name switch { "source" => OldCluster, "target" => NewCluster, _ => null };

    public IEnumerable<TopicPartition> TopicPartitions => Enumerable.Range(0, Partitions).Select(p => new TopicPartition(Topic, p));

    public Task<RollbackMirror> BeginAsync(IReadOnlyDictionary<TopicPartition, long> startOffsets, MirrorOptions? options = null) =>
        RollbackMirror.BeginAsync(Family, NewCluster, OldCluster, startOffsets, Store, options ?? Options, Logger);

    public MirrorSupervisor Supervisor(Switchback.Proxy.Metrics.MirrorMetrics? metrics = null) =>
        new(ClusterNamed, Store, metrics ?? new Switchback.Proxy.Metrics.MirrorMetrics(new Prometheus.CollectorRegistry()), Options, new LoggerFactoryOf(Logs));

    private static ClusterConfig Cluster(string name, int ordinal, string bootstrap) =>
        new(name, ordinal, [.. bootstrap.Split(',').Select(a => new DnsEndPoint(a[..a.LastIndexOf(':')], int.Parse(a[(a.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture)))]);

    /// <summary>End offsets (high watermarks) of every partition of the topic, read directly.</summary>
    public Dictionary<TopicPartition, long> Ends(string bootstrap)
    {
        using var consumer = Consumer(bootstrap, IsolationLevel.ReadUncommitted);
        return TopicPartitions.ToDictionary(p => p, p => consumer.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(10)).High.Value);
    }

    /// <summary>Produces records straight to a cluster with an idempotent producer, in order per partition; all acknowledged.</summary>
    public static async Task ProduceAsync(string bootstrap, IEnumerable<TestRecord> records)
    {
        using var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
        {
            BootstrapServers = bootstrap,
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = 2,
            BatchNumMessages = 20,
        }).SetLogHandler(static (_, _) => { }).Build();
        var failed = 0;
        foreach (var record in records)
        {
            producer.Produce(new TopicPartition(Topic, record.Partition), Message(record), report =>
            {
                if (report.Error.IsError)
                {
                    Interlocked.Increment(ref failed);
                }
            });
        }
        await Task.Run(() => producer.Flush(TimeSpan.FromSeconds(30)));
        Assert.Equal(0, producer.Flush(TimeSpan.Zero));
        Assert.Equal(0, failed);
    }

    public static Message<byte[]?, byte[]?> Message(TestRecord record)
    {
        var headers = new Headers();
        foreach (var (key, value) in record.Headers)
        {
            headers.Add(key, value);
        }
        return new Message<byte[]?, byte[]?>
        {
            Key = record.Key,
            Value = record.Value,
            Headers = headers,
            Timestamp = new Timestamp(record.TimestampMs, TimestampType.CreateTime),
        };
    }

    /// <summary>Every record of the topic on a cluster from <paramref name="from"/> (per partition) to its end, read directly, in partition and offset order.</summary>
    public List<MirroredRecord> ReadAll(string bootstrap, IReadOnlyDictionary<TopicPartition, long>? from = null)
    {
        var ends = Ends(bootstrap);
        var starts = TopicPartitions.ToDictionary(p => p, p => from?.GetValueOrDefault(p) ?? 0);
        var remaining = TopicPartitions.Where(p => ends[p] > starts[p]).ToHashSet();
        var records = new List<MirroredRecord>();
        using var consumer = Consumer(bootstrap, IsolationLevel.ReadUncommitted);
        consumer.Assign(remaining.Select(p => new TopicPartitionOffset(p, starts[p])));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (remaining.Count > 0 && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                if (result.Offset.Value >= ends[result.TopicPartition])
                {
                    remaining.Remove(result.TopicPartition);
                }
                continue;
            }
            records.Add(Stored(result));
        }
        Assert.True(remaining.Count == 0, $"could not read back all of {bootstrap} (ends {string.Join(",", ends.Values)}, read {records.Count})");
        return [.. records.OrderBy(r => r.Partition).ThenBy(r => r.Offset)];
    }

    public static MirroredRecord Stored(ConsumeResult<byte[]?, byte[]?> result) => new(
        result.Partition.Value, result.Offset.Value, Hex(result.Message.Key), Hex(result.Message.Value),
        string.Join(";", (result.Message.Headers ?? []).Select(h => $"{h.Key}={Hex(h.GetValueBytes()) ?? "null"}")),
        result.Message.Timestamp.UnixTimestampMs);

    /// <summary>What a record produced from <paramref name="record"/> reads back as (without its offset).</summary>
    public static (int, string?, string?, string, long) Content(TestRecord record) => (record.Partition, Hex(record.Key), Hex(record.Value),
        string.Join(";", record.Headers.Select(h => $"{h.Key}={Hex(h.Value) ?? "null"}")), record.TimestampMs);

    private static string? Hex(byte[]? bytes) => bytes is null ? null : Convert.ToHexString(bytes);

    private static IConsumer<byte[]?, byte[]?> Consumer(string bootstrap, IsolationLevel isolation) =>
        new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = $"reader-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 20,
            IsolationLevel = isolation,
            EnablePartitionEof = true,
        }).SetLogHandler(static (_, _) => { }).Build();

    /// <summary>Waits, bounded, until <paramref name="condition"/> holds (checked every 20 ms); fails with <paramref name="what"/> otherwise.</summary>
    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (NewFront is not null)
        {
            await NewFront.DisposeAsync();
        }
        Old.Dispose();
        New.Dispose();
        try
        {
            Directory.Delete(StateDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class LoggerFactoryOf(ILoggerProvider provider) : ILoggerFactory
    {
        public void AddProvider(ILoggerProvider provider)
        {
        }

        public ILogger CreateLogger(string categoryName) => provider.CreateLogger(categoryName);

        public void Dispose()
        {
        }
    }
}
