using Confluent.Kafka;
using Switchback.Proxy.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.ClientMatrix;

/// <summary>
/// The client matrix: every client in PEERS.md runs the same scenario through the proxy (<see cref="ClientMatrixScenario"/>):
/// produce, consume with a group, a forced write switch source -> target, a rollback, and an exact-once check of
/// both clusters read directly. Each test has its own two clusters and proxy. Clients are installed when missing;
/// first-run costs on 2 cores: apt packages ~20 s in all, the Sarama build ~10 s, the
/// @confluentinc/kafka-javascript native build ~2.5 min (cached per machine under the temp directory, keyed by
/// version). With caches warm the whole matrix takes well under a minute.
/// Set MATRIX_DEBUG=1 to have every driver log its client's protocol debug on stderr (shown when a step fails).
/// </summary>
public sealed class ClientMatrixTests(ITestOutputHelper output)
{
    private readonly ClientMatrixScenario _scenario = new(output);

    /// <summary>
    /// In process, so one idempotent producer lives across the switch and the rollback (its producer id and sequence
    /// numbers carry over); the group uses the KIP-848 consumer protocol.
    /// </summary>
    [Fact]
    public async Task ConfluentKafka_OneProducerAcrossSwitchAndRollback_EachRecordOnceOnItsWriteCluster()
    {
        IProducer<string, string>? producer = null;
        try
        {
            await _scenario.RunAsync("confluent-kafka",
                async (bootstrap, topic, count, prefix) =>
                {
                    producer ??= new ProducerBuilder<string, string>(new ProducerConfig
                    {
                        BootstrapServers = bootstrap,
                        Acks = Acks.All,
                        EnableIdempotence = true,
                        LingerMs = 5,
                        MessageTimeoutMs = 20_000,
                    }).SetLogHandler(static (_, _) => { }).Build();
                    var records = new List<ClientRecord>();
                    foreach (var (key, value) in ClientMatrixScenario.Expected(prefix, count))
                    {
                        var report = await producer.ProduceAsync(topic, new Message<string, string> { Key = key, Value = value });
                        Assert.Equal(PersistenceStatus.Persisted, report.Status);
                        records.Add(new ClientRecord("produced", key, value, report.Partition.Value, report.Offset.Value));
                    }
                    return records;
                },
                (bootstrap, topic, group, count) => Task.Run(() => Consume(bootstrap, topic, group, count)));
        }
        finally
        {
            producer?.Dispose();
        }
    }

    [Fact]
    public async Task Kcat_ProduceConsumeSwitchRollback_EachRecordOnceOnItsWriteCluster()
    {
        var kcat = await ExternalClients.EnsureKcatAsync();
        await _scenario.RunAsync(new ClientDriver("kcat", "/bin/sh", [MatrixClientInstalls.Script("kcat_client.sh")],
            new Dictionary<string, string> { ["KCAT"] = kcat }));
    }

    [Fact]
    public async Task KafkaPython_ProduceConsumeSwitchRollback_EachRecordOnceOnItsWriteCluster()
    {
        await ExternalClients.EnsureKafkaPythonAsync();
        await _scenario.RunAsync(new ClientDriver("kafka-python", ExternalClients.SystemPython, [MatrixClientInstalls.Script("kafka_python_matrix.py")]));
    }

    [Fact]
    public async Task ConfluentKafkaPython_ProduceConsumeSwitchRollback_EachRecordOnceOnItsWriteCluster()
    {
        await MatrixClientInstalls.EnsureConfluentKafkaPythonAsync();
        await _scenario.RunAsync(new ClientDriver("confluent-kafka-python", ExternalClients.SystemPython,
            [MatrixClientInstalls.Script("confluent_kafka_python_matrix.py")]));
    }

    [Fact]
    public async Task Kafkajs_ProduceConsumeSwitchRollback_EachRecordOnceOnItsWriteCluster()
    {
        var nodeModules = await ExternalClients.EnsureKafkajsAsync();
        await _scenario.RunAsync(new ClientDriver("kafkajs", "node", [MatrixClientInstalls.Script("kafkajs_matrix.js")],
            new Dictionary<string, string> { ["NODE_PATH"] = nodeModules, ["KAFKAJS_NO_PARTITIONER_WARNING"] = "1" }));
    }

    /// <summary>Sarama 1.22 sends no ApiVersions; its driver pins Config.Version to V2_0_0_0 (see sarama_matrix.go).</summary>
    [Fact]
    public async Task Sarama_ProduceConsumeSwitchRollback_EachRecordOnceOnItsWriteCluster()
    {
        var binary = await MatrixClientInstalls.EnsureSaramaDriverAsync();
        await _scenario.RunAsync(new ClientDriver("sarama", binary, []));
    }

    /// <summary>
    /// The lowest Sarama setting that still has consumer groups: Produce v2 with legacy magic-1 message sets, Fetch v3,
    /// Metadata v1, so pre-record-batch frames cross the switch too.
    /// </summary>
    [Fact]
    public async Task SaramaAtKafka0102_LegacyMessageSetsAcrossSwitchAndRollback_EachRecordOnceOnItsWriteCluster()
    {
        var binary = await MatrixClientInstalls.EnsureSaramaDriverAsync();
        await _scenario.RunAsync(new ClientDriver("sarama-0.10.2", binary, [],
            new Dictionary<string, string> { ["SARAMA_KAFKA_VERSION"] = "0.10.2.0" }));
    }

    [Fact]
    public async Task KafkaJavascript_ProduceConsumeSwitchRollback_EachRecordOnceOnItsWriteCluster()
    {
        var nodeModules = await MatrixClientInstalls.EnsureKafkaJavascriptAsync();
        await _scenario.RunAsync(new ClientDriver("kafka-javascript", "node", [MatrixClientInstalls.Script("kafka_javascript_matrix.js")],
            new Dictionary<string, string> { ["NODE_PATH"] = nodeModules }));
    }

    private static List<ClientRecord> Consume(string bootstrap, string topic, string group, int count)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = group,
            GroupProtocol = GroupProtocol.Consumer,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            FetchWaitMaxMs = 100,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Subscribe(topic);
        var records = new List<ClientRecord>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
        while (records.Count < count && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { IsPartitionEOF: false } result)
            {
                records.Add(new ClientRecord("consumed", result.Message.Key, result.Message.Value, result.Partition.Value, result.Offset.Value));
            }
        }
        if (records.Count > 0)
        {
            consumer.Commit();
        }
        consumer.Close();
        return records;
    }
}
