using System.Collections.Concurrent;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Xunit;

namespace Switchback.Proxy.Tests.Integration;

/// <summary>
/// Two three-broker mock clusters, <c>source</c> and <c>target</c>, and one proxy in front of them with the families
/// <c>orders</c> (write and read on source) and <c>payments</c> (write and read on target); everything else follows
/// source. Shared by every integration test; tests use fresh topic and group names.
/// </summary>
public sealed class ProxyFixture : IAsyncLifetime
{
    public const int Partitions = 3;

    private readonly ConcurrentBag<string> _stateDirectories = [];

    public MockKafkaCluster Source { get; } = MockKafkaCluster.Start(3);
    public MockKafkaCluster Target { get; } = MockKafkaCluster.Start(3);
    public CapturingLoggerProvider Logs { get; } = new();
    public ProxyHost Proxy { get; private set; } = null!;
    public string Bootstrap => Proxy.BootstrapServers;

    public async Task InitializeAsync()
    {
        Proxy = await StartProxyAsync();
    }

    public async Task DisposeAsync()
    {
        await Proxy.DisposeAsync();
        Source.Dispose();
        Target.Dispose();
        foreach (var directory in _stateDirectories.Where(Directory.Exists))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Starts another proxy in front of the same clusters, with settings overridden or added.</summary>
    public async Task<ProxyHost> StartProxyAsync(IReadOnlyDictionary<string, string?>? overrides = null, CapturingLoggerProvider? logs = null)
    {
        var settings = DemoRunner.DemoSettings(Source.BootstrapServers, Target.BootstrapServers);
        settings["Switchback:Listener:Bind"] = "127.0.0.1:0";
        settings["Switchback:Admin:Bind"] = "127.0.0.1:0";
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-itest-{Guid.NewGuid():N}");
        _stateDirectories.Add(stateDirectory);
        settings["Switchback:StateDirectory"] = stateDirectory;
        settings["Switchback:Limits:MetadataRefreshIntervalMs"] = "2000";
        settings["Switchback:Limits:UpstreamConnectTimeoutMs"] = "1000";
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var provider = logs ?? Logs;
        var host = ProxyHost.Create(configuration, logging =>
        {
            logging.ClearProviders();
            logging.SetMinimumLevel(LogLevel.Debug);
            logging.AddFilter("Microsoft", LogLevel.Warning);
            logging.AddProvider(provider);
        });
        await host.StartAsync();
        return host;
    }

    /// <summary>A fresh topic name, created with <see cref="Partitions"/> partitions on both clusters.</summary>
    public string NewTopic(string family)
    {
        var name = $"{family}.{Guid.NewGuid():N}";
        Source.CreateTopic(name, Partitions);
        Target.CreateTopic(name, Partitions);
        return name;
    }

    /// <summary>A fresh group name in the family's group namespace.</summary>
    public static string NewGroup(string family) => $"{family}-{Guid.NewGuid():N}";

    public ProducerConfig ProducerConfig(string? bootstrap = null) => new()
    {
        BootstrapServers = bootstrap ?? Bootstrap,
        Acks = Acks.All,
        LingerMs = 5,
        MessageTimeoutMs = 20_000,
        SocketTimeoutMs = 10_000,
    };

    public ConsumerConfig ConsumerConfig(string groupId, string? bootstrap = null) => new()
    {
        BootstrapServers = bootstrap ?? Bootstrap,
        GroupId = groupId,
        AutoOffsetReset = AutoOffsetReset.Earliest,
        EnableAutoCommit = false,
        SessionTimeoutMs = 6000,
        FetchWaitMaxMs = 100,
        SocketTimeoutMs = 10_000,
    };

    /// <summary>
    /// Reads a topic straight from one cluster, not through the proxy: every partition assigned from the start and
    /// read up to the high watermark taken before reading.
    /// </summary>
    public static List<ConsumeResult<string, string>> ReadDirectly(MockKafkaCluster cluster, string topic, int partitions = Partitions)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = $"direct-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 50,
        };
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        var records = new List<ConsumeResult<string, string>>();
        var ends = new Dictionary<int, long>();
        for (var p = 0; p < partitions; p++)
        {
            var partition = new TopicPartition(topic, p);
            var watermarks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10));
            if (watermarks.High.Value > watermarks.Low.Value)
            {
                ends[p] = watermarks.High.Value;
            }
        }
        if (ends.Count == 0)
        {
            return records;
        }
        consumer.Assign(ends.Keys.Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (ends.Count > 0)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Reading {topic} directly from {cluster} stalled; partitions left: {string.Join(',', ends.Keys)}.");
            }
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null || result.IsPartitionEOF)
            {
                continue;
            }
            records.Add(result);
            if (result.Offset.Value + 1 >= ends.GetValueOrDefault(result.Partition.Value, long.MaxValue))
            {
                ends.Remove(result.Partition.Value);
            }
        }
        consumer.Close();
        return records;
    }

    /// <summary>Produces <paramref name="count"/> keyed records through the proxy and waits for every delivery.</summary>
    public async Task<List<string>> ProduceAsync(IProducer<string, string> producer, string topic, int count, string tag)
    {
        var values = Enumerable.Range(0, count).Select(i => $"{tag}-{i}").ToList();
        var deliveries = values.Select((v, i) => producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 7}", Value = v }));
        var results = await Task.WhenAll(deliveries).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
        return values;
    }

    /// <summary>
    /// Consumes through the proxy with a group until <paramref name="expected"/> records arrived, commits them, and
    /// returns what arrived and the offsets the group has committed (read back through the proxy).
    /// </summary>
    public static (List<ConsumeResult<string, string>> Records, List<TopicPartitionOffset> Committed) ConsumeAndCommit(
        ConsumerConfig config, IReadOnlyCollection<string> topics, int expected, TimeSpan timeout)
    {
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(topics);
        var received = new List<ConsumeResult<string, string>>();
        var deadline = DateTime.UtcNow + timeout;
        while (received.Count < expected && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is { IsPartitionEOF: false })
            {
                received.Add(result);
            }
        }
        Assert.True(received.Count >= expected, $"Consumed {received.Count} of {expected} records through the proxy in {timeout}.");
        // Nothing more should arrive: a duplicate would show here.
        var extraDeadline = DateTime.UtcNow + TimeSpan.FromMilliseconds(500);
        while (DateTime.UtcNow < extraDeadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { IsPartitionEOF: false } extra)
            {
                received.Add(extra);
            }
        }
        consumer.Commit();
        var partitions = topics.SelectMany(t => Enumerable.Range(0, Partitions).Select(p => new TopicPartition(t, p))).ToList();
        var committed = consumer.Committed(partitions, TimeSpan.FromSeconds(10));
        consumer.Close();
        return (received, committed);
    }
}

[CollectionDefinition(Name)]
public sealed class ProxyCollection : ICollectionFixture<ProxyFixture>
{
    public const string Name = "proxy";
}
