using System.Net.Sockets;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Testcontainers.Kafka;
using Xunit;

namespace Switchback.Proxy.Tests.RealKafka;

/// <summary>
/// The proxy in front of two real Apache Kafka brokers (Testcontainers.Kafka). These run wherever a Docker engine
/// is reachable and are skipped, saying so, where none is (as on machines without Docker).
/// </summary>
public sealed class RealKafkaTests
{
    [SkippableFact]
    public async Task RealKafka_IdempotentProduceAcrossWriteSwitch_LandsOnEachClusterOnce()
    {
        Skip.IfNot(DockerIsReachable(out var why), $"No Docker engine: {why}. Real-Kafka tests run where Docker runs.");

        await using var source = new KafkaBuilder("confluentinc/cp-kafka:7.6.1").Build();
        await using var target = new KafkaBuilder("confluentinc/cp-kafka:7.6.1").Build();
        await Task.WhenAll(source.StartAsync(), target.StartAsync());
        LibrdkafkaLoader.EnsureLoaded();
        const string topic = "orders.real";
        foreach (var bootstrap in new[] { source.GetBootstrapAddress(), target.GetBootstrapAddress() })
        {
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).Build();
            await admin.CreateTopicsAsync([new Confluent.Kafka.Admin.TopicSpecification { Name = topic, NumPartitions = 3, ReplicationFactor = 1 }]);
        }

        var state = Path.Combine(Path.GetTempPath(), $"switchback-real-{Guid.NewGuid():N}");
        var settings = new Dictionary<string, string?>
        {
            ["Switchback:Listener:Bind"] = "127.0.0.1:0",
            ["Switchback:Listener:BrokerPortStart"] = "0",
            ["Switchback:Admin:Bind"] = "127.0.0.1:0",
            ["Switchback:StateDirectory"] = state,
            ["Switchback:Clusters:source:BootstrapServers"] = source.GetBootstrapAddress(),
            ["Switchback:Clusters:target:BootstrapServers"] = target.GetBootstrapAddress(),
            ["Switchback:Families:0:Name"] = "orders",
            ["Switchback:Families:0:Topics:0"] = "orders.*",
            ["Switchback:Families:0:Groups:0"] = "orders-*",
            ["Switchback:Families:0:Write"] = "source",
            ["Switchback:Families:0:Read"] = "source",
        };
        await using var proxy = ProxyHost.Create(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), l => l.SetMinimumLevel(LogLevel.Warning));
        await proxy.StartAsync();

        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = proxy.BootstrapServers, EnableIdempotence = true }).Build())
        {
            for (var i = 0; i < 20; i++)
            {
                await producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 4}", Value = $"before-{i}" });
            }
            using var http = new HttpClient { BaseAddress = proxy.AdminUri };
            var switched = await http.PostAsync("v1/families/orders/switch",
                new StringContent("""{"write":"target","force":true,"reason":"real kafka"}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.True(switched.IsSuccessStatusCode, await switched.Content.ReadAsStringAsync());
            for (var i = 0; i < 20; i++)
            {
                await producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i % 4}", Value = $"after-{i}" });
            }
        }

        Assert.Equal(20, Count(source.GetBootstrapAddress(), topic));
        Assert.Equal(20, Count(target.GetBootstrapAddress(), topic));
    }

    private static int Count(string bootstrap, string topic)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = $"count-{Guid.NewGuid():N}",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        }).Build();
        consumer.Assign(Enumerable.Range(0, 3).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var count = 0;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline && consumer.Consume(TimeSpan.FromMilliseconds(500)) is { } result)
        {
            if (!result.IsPartitionEOF)
            {
                count++;
            }
        }
        return count;
    }

    private static bool DockerIsReachable(out string why)
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        if (!string.IsNullOrEmpty(host) && !host.StartsWith("unix://", StringComparison.Ordinal))
        {
            why = "";
            return true; // a remote engine; Testcontainers reports if it is not there
        }
        var path = string.IsNullOrEmpty(host) ? "/var/run/docker.sock" : host["unix://".Length..];
        if (!File.Exists(path))
        {
            why = $"{path} does not exist";
            return false;
        }
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(path));
            why = "";
            return true;
        }
        catch (SocketException e)
        {
            why = $"{path} refuses connections ({e.SocketErrorCode})";
            return false;
        }
    }
}
