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
/// several groups), and a proxy with the demo families: <c>orders</c> on source, <c>payments</c> on target.
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

    public ConsumerConfig ConsumerConfig(string group) => new()
    {
        BootstrapServers = Proxy.BootstrapServers,
        GroupId = group,
        AutoOffsetReset = AutoOffsetReset.Earliest,
        EnableAutoCommit = false,
        SessionTimeoutMs = 6000,
        FetchWaitMaxMs = 100,
        SocketTimeoutMs = 10_000,
    };

    /// <summary>A classic consumer of <paramref name="topic"/> in <paramref name="group"/>, returned once it has its partitions.</summary>
    public IConsumer<string, string> JoinedConsumer(string group, string topic)
    {
        var consumer = new ConsumerBuilder<string, string>(ConsumerConfig(group)).Build();
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
        return consumer;
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
