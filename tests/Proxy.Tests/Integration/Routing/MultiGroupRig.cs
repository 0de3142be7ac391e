using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Xunit;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>
/// Two three-broker mock clusters, each behind a <see cref="GroupApisFront"/> (so they answer the APIs that name
/// several groups and the topic-admin APIs), and a proxy with the demo families: <c>orders</c> on source,
/// <c>payments</c> on target.
/// </summary>
public sealed class MultiGroupRig : IAsyncLifetime
{
    private readonly string _stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-groups-{Guid.NewGuid():N}");

    public MockKafkaCluster Source { get; } = MockKafkaCluster.Start(3);
    public MockKafkaCluster Target { get; } = MockKafkaCluster.Start(3);
    public GroupApisFront SourceFront { get; private set; } = null!;
    public GroupApisFront TargetFront { get; private set; } = null!;
    public ProxyHost Proxy { get; private set; } = null!;
    public CapturingLoggerProvider Logs { get; } = new();

    /// <summary>Settings laid over the rig's own before the proxy starts (a rig created by a test for itself).</summary>
    public IReadOnlyDictionary<string, string?> Overrides { get; init; } = new Dictionary<string, string?>();

    public async Task InitializeAsync()
    {
        SourceFront = new GroupApisFront(Source);
        TargetFront = new GroupApisFront(Target);
        var settings = DemoRunner.DemoSettings(SourceFront.BootstrapServers, TargetFront.BootstrapServers);
        settings["Switchback:Listener:Bind"] = "127.0.0.1:0";
        settings["Switchback:Admin:Bind"] = "127.0.0.1:0";
        settings["Switchback:StateDirectory"] = _stateDirectory;
        settings["Switchback:Limits:MetadataRefreshIntervalMs"] = "2000";
        settings["Switchback:Limits:UpstreamConnectTimeoutMs"] = "1000";
        settings["Switchback:Limits:UpstreamRequestTimeoutMs"] = "5000";
        foreach (var (key, value) in Overrides)
        {
            settings[key] = value;
        }
        Proxy = ProxyHost.Create(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), logging =>
        {
            logging.ClearProviders();
            logging.SetMinimumLevel(LogLevel.Debug);
            logging.AddFilter("Microsoft", LogLevel.Warning);
            logging.AddProvider(Logs);
        });
        await Proxy.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await SourceFront.DisposeAsync();
        await TargetFront.DisposeAsync();
        Source.Dispose();
        Target.Dispose();
        if (Directory.Exists(_stateDirectory))
        {
            Directory.Delete(_stateDirectory, recursive: true);
        }
    }

    public string NewTopic(string family)
    {
        var name = $"{family}.{Guid.NewGuid():N}";
        Source.CreateTopic(name, ProxyFixture.Partitions);
        Target.CreateTopic(name, ProxyFixture.Partitions);
        return name;
    }

    /// <summary>An AdminClient of the proxy.</summary>
    public IAdminClient AdminClient() =>
        new AdminClientBuilder(new AdminClientConfig { BootstrapServers = Proxy.BootstrapServers, SocketTimeoutMs = 10_000 }).Build();

    /// <summary>An AdminClient of one cluster, behind its front but not the proxy (to look at what the cluster holds).</summary>
    public static IAdminClient ClusterAdminClient(GroupApisFront front) =>
        new AdminClientBuilder(new AdminClientConfig { BootstrapServers = front.BootstrapServers }).Build();

    public ConsumerConfig ConsumerConfig(string group) => new()
    {
        BootstrapServers = Proxy.BootstrapServers,
        GroupId = group,
        AutoOffsetReset = AutoOffsetReset.Earliest,
        EnableAutoCommit = false,
        // Long enough that a loaded machine's late heartbeat never expels a member: membership is not under test.
        SessionTimeoutMs = 30_000,
        FetchWaitMaxMs = 100,
        SocketTimeoutMs = 10_000,
    };

    /// <summary>
    /// A classic consumer of <paramref name="topic"/> in <paramref name="group"/>, returned once it has its partitions
    /// and then polled in the background as an application would, so a rebalance never waits on the test.
    /// </summary>
    /// <param name="cluster">A cluster's front to join on directly, not through the proxy (a group the proxy's clients may not use).</param>
    public GroupMember JoinedConsumer(string group, string topic, GroupApisFront? cluster = null)
    {
        var config = ConsumerConfig(group);
        if (cluster is not null)
        {
            config.BootstrapServers = cluster.BootstrapServers;
        }
        var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(topic);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
        while (consumer.Assignment.Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"Consumer of {group} got no partitions of {topic} in 40 s.");
            try
            {
                consumer.Consume(TimeSpan.FromMilliseconds(200));
            }
            catch (ConsumeException e) when (e.Error.Code == Confluent.Kafka.ErrorCode.UnknownTopicOrPart)
            {
                // A topic created a moment ago: the proxy learns of it at its next metadata refresh.
            }
        }
        return new GroupMember(consumer);
    }

    public async Task ProduceAsync(string topic, int count)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = Proxy.BootstrapServers, Acks = Acks.All }).Build();
        for (var i = 0; i < count; i++)
        {
            await producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i}", Value = $"v{i}" });
        }
    }

    /// <summary>One request to the proxy's bootstrap port, over a connection of its own, and its decoded answer.</summary>
    public async Task<T> ExchangeAsync<T>(ApiKey apiKey, short version, IKafkaMessage request) where T : IKafkaMessage, new()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", Proxy.State.AdvertisedPort);
        await using var stream = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false);
        return await WireExchange.ExchangeAsync<T>(stream, apiKey, version, request, "multi-group-test", TimeSpan.FromSeconds(20));
    }
}

/// <summary>A joined consumer kept polled on a thread of its own until it is closed.</summary>
public sealed class GroupMember : IDisposable
{
    private readonly IConsumer<string, string> _consumer;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _poller;

    public GroupMember(IConsumer<string, string> consumer)
    {
        _consumer = consumer;
        _poller = new Thread(() =>
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    _consumer.Consume(TimeSpan.FromMilliseconds(100));
                }
                catch (ConsumeException)
                {
                    // Errors of the records' side (a topic not yet known) do not concern membership.
                }
            }
        })
        { IsBackground = true, Name = "group-member-poll" };
        _poller.Start();
    }

    /// <summary>The member id the group coordinator gave this consumer (empty while it is not a member).</summary>
    public string MemberId => _consumer.MemberId;

    /// <summary>Leaves the group.</summary>
    public void Close()
    {
        StopPolling();
        _consumer.Close();
    }

    public void Dispose()
    {
        StopPolling();
        _consumer.Dispose();
        _stop.Dispose();
    }

    private void StopPolling()
    {
        if (!_stop.IsCancellationRequested)
        {
            _stop.Cancel();
            _poller.Join();
        }
    }
}
