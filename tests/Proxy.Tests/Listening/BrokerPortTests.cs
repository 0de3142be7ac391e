using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Tests.Faults;
using Switchback.Proxy.Tests.Integration;
using Xunit;

namespace Switchback.Proxy.Tests.Listening;

/// <summary>
/// Virtual broker ports that another socket holds: at start-up the proxy refuses to start, naming the port and the
/// setting to change; for a broker found later the broker is left out of answers, readiness and the log say so once,
/// and clients go on through the other brokers. Each test has its own mock cluster (one adds a broker to it) and
/// ports below the kernel's ephemeral range.
/// </summary>
public sealed class BrokerPortTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly MockKafkaCluster _cluster = MockKafkaCluster.Start(3);
    private readonly string _stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-ports-{Guid.NewGuid():N}");

    public void Dispose()
    {
        _cluster.Dispose();
        if (Directory.Exists(_stateDirectory))
        {
            Directory.Delete(_stateDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task Start_WithAPortOfTheBrokerRangeTaken_Fails_NamingThePortAndTheSetting_AndReleasesWhatItBound()
    {
        var bootstrap = FreePorts.Range(4);
        // Broker 100001 shares the bootstrap port; 100002 takes bootstrap+1 and 100003 bootstrap+2, which is held.
        using (Hold(bootstrap + 2))
        {
            var host = Create(Settings(bootstrap, brokerPortStart: bootstrap + 1), new CapturingLoggerProvider());
            try
            {
                var failure = await Assert.ThrowsAsync<BrokerPortException>(() => host.StartAsync().WaitAsync(Timeout));
                Assert.Equal(
                    $"Port {bootstrap + 2} (virtual broker 100003 of cluster 'source', from Switchback:Listener:BrokerPortStart={bootstrap + 1}) "
                    + "is already in use; choose another Switchback:Listener:BrokerPortStart or free the port.",
                    failure.Message);
            }
            finally
            {
                await host.DisposeAsync();
            }
        }
        // Nothing is left bound: the port of 100002 and the bootstrap port can be taken again.
        Hold(bootstrap + 1).Dispose();
        Hold(bootstrap).Dispose();
    }

    [Fact]
    public async Task Start_WithMoreBrokersThanMaxBrokers_Fails_NamingMaxBrokers()
    {
        var bootstrap = FreePorts.Range(2);
        var settings = Settings(bootstrap, brokerPortStart: bootstrap + 1);
        settings["Switchback:Listener:MaxBrokers"] = "1";
        await using var host = Create(settings, new CapturingLoggerProvider());
        var failure = await Assert.ThrowsAsync<BrokerPortException>(() => host.StartAsync().WaitAsync(Timeout));
        Assert.StartsWith("No port for virtual broker 100003 of cluster 'source'", failure.Message, StringComparison.Ordinal);
        Assert.EndsWith("raise Switchback:Listener:MaxBrokers.", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunCommand_WithTheDefaultBrokerPortTaken_ExitsNonZero_WithOneLineNamingThePortAndTheSettings()
    {
        var bootstrap = FreePorts.Range(4);
        using var taken = Hold(bootstrap + 1);
        var executable = Path.Combine(AppContext.BaseDirectory, "switchback.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            executable, "run", $"--Switchback:Listener:Bind=127.0.0.1:{bootstrap}", "--Switchback:Admin:Bind=127.0.0.1:0",
            $"--Switchback:Clusters:source:BootstrapServers={_cluster.BootstrapServers}", $"--Switchback:StateDirectory={_stateDirectory}",
        })
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start switchback run.");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        var stderr = await errors;
        Assert.True(process.ExitCode != 0, $"switchback run exited 0; stdout:\n{await output}");
        Assert.Contains(
            $"switchback: Port {bootstrap + 1} (virtual broker 100002 of cluster 'source', from Switchback:Listener:BrokerPortStart={bootstrap + 1}, "
            + "which is not set and follows the Switchback:Listener:Bind port) is already in use; set Switchback:Listener:BrokerPortStart "
            + "(or change Switchback:Listener:Bind) or free the port.",
            stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BrokerFoundLater_WithItsPortTaken_IsLeftOut_ReadyzAndLogSaySoOnce_ClientsGoOn_AndItJoinsOnceThePortIsFree()
    {
        var topic = $"ports.{Guid.NewGuid():N}";
        _cluster.CreateTopic(topic, 3);
        var bootstrap = FreePorts.Range(5);
        // 100001 on the bootstrap port, 100002 and 100003 on the next two: a fourth broker's port is bootstrap+3.
        using var taken = Hold(bootstrap + 3);
        var logs = new CapturingLoggerProvider();
        await using var host = Create(Settings(bootstrap, brokerPortStart: bootstrap + 1), logs);
        await host.StartAsync().WaitAsync(Timeout);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var readyz = new Uri(host.AdminUri, "readyz");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(readyz)).StatusCode);

        var clientErrors = new ConcurrentQueue<string>();
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = host.BootstrapServers,
            Acks = Acks.All,
            LingerMs = 5,
            MessageTimeoutMs = 20_000,
        }).SetErrorHandler((_, e) => clientErrors.Enqueue($"producer: {e.Code} {e.Reason}")).Build();
        var produced = await ProduceAsync(producer, topic, 10, "before");

        // Broker 4 joins. The mock spreads leadership over all four again: the test topic's leaders go back to 1-3,
        // an orphan topic is led by 4, and the coordinators used below are pinned.
        _cluster.AddBroker(4);
        for (var p = 0; p < 3; p++)
        {
            _cluster.SetPartitionLeader(topic, p, p + 1);
        }
        var orphan = $"ports.orphan.{Guid.NewGuid():N}";
        _cluster.CreateTopic(orphan, 1);
        _cluster.SetPartitionLeader(orphan, 0, 4);
        var group = $"ports-{Guid.NewGuid():N}";
        _cluster.SetCoordinator("group", group, 1);
        var orphanGroup = $"ports-orphan-{Guid.NewGuid():N}";
        _cluster.SetCoordinator("group", orphanGroup, 4);

        Assert.True(await Poll.UntilAsync(() => host.State.Cluster("source").View is { } view
            && view.BrokersById.ContainsKey(4)
            && view.Topics.TryGetValue(orphan, out var o) && o.Partitions[0].Leader == 4
            && Enumerable.Range(0, 3).All(p => view.LeaderOf(topic, p) == p + 1), Timeout), "the proxy never saw broker 4 and the new leaders");
        var (status, body) = await WaitForReadyzAsync(http, readyz, s => s == HttpStatusCode.ServiceUnavailable);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains($"Port {bootstrap + 3} (virtual broker 100004 of cluster 'source', from Switchback:Listener:BrokerPortStart={bootstrap + 1}) is already in use", body, StringComparison.Ordinal);
        var unbound = Assert.Single(logs.Entries, e => e.EventId == 1102);
        Assert.Equal(LogLevel.Warning, unbound.Level);
        Assert.Contains($"Port {bootstrap + 3} ", unbound.Message, StringComparison.Ordinal);
        var refreshesAtFailure = logs.Entries.Count(e => e.EventId == 3001);

        // A real client's Metadata and DescribeCluster: broker 4 left out, its partition without a leader.
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = host.BootstrapServers })
            .SetErrorHandler((_, e) => clientErrors.Enqueue($"admin: {e.Code} {e.Reason}")).Build())
        {
            var metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
            Assert.Equal(new[] { 100001, 100002, 100003 }, metadata.Brokers.Select(b => b.BrokerId).Order());
            var orphanPartition = Assert.Single(metadata.Topics.Single(t => t.Topic == orphan).Partitions);
            Assert.Equal(-1, orphanPartition.Leader);
            Assert.Equal(Confluent.Kafka.ErrorCode.LeaderNotAvailable, orphanPartition.Error.Code);
            Assert.DoesNotContain(100004, orphanPartition.Replicas);
            Assert.Equal(new[] { 100001, 100002, 100003 }, metadata.Topics.Single(t => t.Topic == topic).Partitions.OrderBy(p => p.PartitionId).Select(p => p.Leader));
            var cluster = await admin.DescribeClusterAsync(new DescribeClusterOptions { RequestTimeout = TimeSpan.FromSeconds(10) });
            Assert.Equal(new[] { 100001, 100002, 100003 }, cluster.Nodes.Select(n => n.Id).Order());
        }

        // Produce and consume through the other brokers.
        produced.AddRange(await ProduceAsync(producer, topic, 20, "after"));
        var consumed = Consume(host.BootstrapServers, group, topic, produced.Count, clientErrors);
        Assert.Equal(produced.Order(), consumed.Order());

        // FindCoordinator for a group whose coordinator is broker 4: COORDINATOR_NOT_AVAILABLE, and the connection
        // stays open for the next requests.
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(IPAddress.Loopback, host.State.AdvertisedPort);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            var orphaned = await WireExchange.ExchangeAsync<FindCoordinatorResponse>(stream, ApiKey.FindCoordinator, 3,
                new FindCoordinatorRequest { Key = orphanGroup, KeyType = 0 }, "ports-test", Timeout);
            Assert.Equal((short)Protocol.ErrorCode.CoordinatorNotAvailable, orphaned.ErrorCode);
            Assert.Equal(-1, orphaned.NodeId);
            var batched = await WireExchange.ExchangeAsync<FindCoordinatorResponse>(stream, ApiKey.FindCoordinator, 4,
                new FindCoordinatorRequest { CoordinatorKeys = [orphanGroup, group], KeyType = 0 }, "ports-test", Timeout);
            Assert.Equal((short)Protocol.ErrorCode.CoordinatorNotAvailable, batched.Coordinators.Single(c => c.Key == orphanGroup).ErrorCode);
            var served = batched.Coordinators.Single(c => c.Key == group);
            Assert.Equal((0, 100001, bootstrap), (served.ErrorCode, served.NodeId, served.Port));
            var metadata = await WireExchange.ExchangeAsync<MetadataResponse>(stream, ApiKey.Metadata, 12,
                new MetadataRequest { Topics = [new MetadataRequest.MetadataRequestTopic { Name = orphan }] }, "ports-test", Timeout);
            Assert.DoesNotContain(metadata.Brokers, b => b.NodeId == 100004);
            var partition = Assert.Single(Assert.Single(metadata.Topics).Partitions);
            Assert.Equal(((short)Protocol.ErrorCode.LeaderNotAvailable, -1), (partition.ErrorCode, partition.LeaderId));
        }

        // Retries at later refreshes fail again without logging again.
        Assert.True(await Poll.UntilAsync(() => logs.Entries.Count(e => e.EventId == 3001) >= refreshesAtFailure + 3, Timeout), "no further refreshes");
        Assert.Single(logs.Entries, e => e.EventId == 1102);

        // The proxy closed no connection (clients closed theirs: those reasons are not among these), and no client
        // saw one closed.
        Assert.DoesNotContain(logs.Entries, e => e.EventId == 1003);
        string[] closedByProxy = ["could not answer a request", "upstream unavailable", "internal error", "protocol error"];
        Assert.DoesNotContain(logs.Entries, e => e.EventId == 1002 && closedByProxy.Any(reason => e.Message.Contains(reason, StringComparison.Ordinal)));
        Assert.DoesNotContain(clientErrors, e => e.Contains("Transport", StringComparison.Ordinal) || e.Contains("Disconnect", StringComparison.OrdinalIgnoreCase));

        // Once the port is free, the next refresh binds it: ready again, and broker 4 is back in Metadata.
        taken.Dispose();
        (status, body) = await WaitForReadyzAsync(http, readyz, s => s == HttpStatusCode.OK);
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Single(logs.Entries, e => e.EventId == 1103);
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = host.BootstrapServers }).Build())
        {
            var metadata = admin.GetMetadata(orphan, TimeSpan.FromSeconds(10));
            var broker = Assert.Single(metadata.Brokers, b => b.BrokerId == 100004);
            Assert.Equal(bootstrap + 3, broker.Port);
            Assert.Equal(100004, Assert.Single(Assert.Single(metadata.Topics).Partitions).Leader);
        }
    }

    private Dictionary<string, string?> Settings(int bootstrapPort, int brokerPortStart) => new()
    {
        ["Switchback:Listener:Bind"] = $"127.0.0.1:{bootstrapPort}",
        ["Switchback:Listener:BrokerPortStart"] = $"{brokerPortStart}",
        ["Switchback:Admin:Bind"] = "127.0.0.1:0",
        ["Switchback:Clusters:source:BootstrapServers"] = _cluster.BootstrapServers,
        ["Switchback:StateDirectory"] = _stateDirectory,
        ["Switchback:Limits:MetadataRefreshIntervalMs"] = "2000",
        ["Switchback:Limits:UpstreamConnectTimeoutMs"] = "1000",
    };

    private static ProxyHost Create(Dictionary<string, string?> settings, CapturingLoggerProvider logs) =>
        ProxyHost.Create(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), logging =>
        {
            logging.ClearProviders();
            logging.SetMinimumLevel(LogLevel.Debug);
            logging.AddFilter("Microsoft", LogLevel.Warning);
            logging.AddProvider(logs);
        });

    /// <summary>Holds a port as another process would: bound and listening on the proxy's address.</summary>
    private static TcpListener Hold(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        return listener;
    }

    private static async Task<(HttpStatusCode Status, string Body)> WaitForReadyzAsync(HttpClient http, Uri readyz, Func<HttpStatusCode, bool> until)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            using var response = await http.GetAsync(readyz);
            var body = await response.Content.ReadAsStringAsync();
            if (until(response.StatusCode) || DateTime.UtcNow > deadline)
            {
                return (response.StatusCode, body);
            }
            await Task.Delay(50);
        }
    }

    private static async Task<List<string>> ProduceAsync(IProducer<string, string> producer, string topic, int count, string tag)
    {
        var values = Enumerable.Range(0, count).Select(i => $"{tag}-{i}").ToList();
        var results = await Task.WhenAll(values.Select((v, i) => producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 7}", Value = v })))
            .WaitAsync(Timeout);
        Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
        return values;
    }

    private static List<string> Consume(string bootstrap, string group, string topic, int expected, ConcurrentQueue<string> errors)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = group,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            SessionTimeoutMs = 6000,
            FetchWaitMaxMs = 100,
        }).SetErrorHandler((_, e) => errors.Enqueue($"consumer: {e.Code} {e.Reason}")).Build();
        consumer.Subscribe(topic);
        var values = new List<string>();
        var deadline = DateTime.UtcNow + Timeout;
        while (values.Count < expected && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { IsPartitionEOF: false } result)
            {
                values.Add(result.Message.Value);
            }
        }
        consumer.Close();
        return values;
    }
}
