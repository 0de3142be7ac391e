using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace Switchback.CaptureTool;

/// <summary>Drives Confluent.Kafka (librdkafka 2.16) in-process: idempotent and transactional producers, a classic
/// and a KIP-848 consumer group, and a few admin calls the mock implements.</summary>
internal static class ConfluentDriver
{
    private const int MessageCount = 6;
    private const int CompressedPerCodec = 2;

    public static async Task RunAsync(CaptureSession session, Action<string> log)
    {
        var topic = $"confluent-{Guid.NewGuid():N}"[..20];
        session.Cluster.CreateTopic(topic, partitions: 3, replicationFactor: 3);

        var producerConfig = new ProducerConfig
        {
            BootstrapServers = session.BootstrapServers,
            ClientId = "capture-confluent",
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 5,
            MessageTimeoutMs = 15_000,
        };
        using (var producer = new ProducerBuilder<string, string>(producerConfig).Build())
        {
            for (var i = 0; i < MessageCount; i++)
            {
                var message = new Message<string, string>
                {
                    Key = $"k{i}",
                    Value = $"confluent value {i}",
                    Headers = i == 0 ? new Headers { { "h", "v"u8.ToArray() } } : null,
                };
                await producer.ProduceAsync(topic, message);
            }
            log($"produced {MessageCount} (idempotent)");
        }

        // One small batch per codec, so the captures hold compressed record batches too.
        var codecs = new[] { CompressionType.Gzip, CompressionType.Snappy, CompressionType.Lz4, CompressionType.Zstd };
        foreach (var codec in codecs)
        {
            var config = new ProducerConfig(producerConfig) { CompressionType = codec, LingerMs = 50 };
            using var producer = new ProducerBuilder<string, string>(config).Build();
            var batch = Enumerable.Range(0, CompressedPerCodec)
                .Select(i => producer.ProduceAsync(topic, new Message<string, string> { Key = "same", Value = $"{codec} value {i} {new string('x', 40)}" }));
            await Task.WhenAll(batch);
        }
        log($"produced {codecs.Length * CompressedPerCodec} compressed ({string.Join(", ", codecs)})");

        await TryAsync(log, "transactional produce", () =>
        {
            var config = new ProducerConfig(producerConfig) { TransactionalId = $"tx-{Guid.NewGuid():N}" };
            using var producer = new ProducerBuilder<string, string>(config).Build();
            producer.InitTransactions(TimeSpan.FromSeconds(10));
            producer.BeginTransaction();
            producer.Produce(topic, new Message<string, string> { Key = "tx", Value = "in a transaction" });
            producer.CommitTransaction(TimeSpan.FromSeconds(10));
            return Task.CompletedTask;
        });

        var total = MessageCount + (4 * CompressedPerCodec);
        var classicGroup = $"classic-{Guid.NewGuid():N}"[..16];
        Consume(session, topic, classicGroup, groupProtocol: null, total, log);
        Consume(session, topic, $"kip848-{Guid.NewGuid():N}"[..16], GroupProtocol.Consumer, total, log);

        var adminConfig = new AdminClientConfig { BootstrapServers = session.BootstrapServers, ClientId = "capture-confluent-admin" };
        using var admin = new AdminClientBuilder(adminConfig).Build();
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(10));
        log($"admin metadata: {metadata.Brokers.Count} brokers, {metadata.Topics[0].Partitions.Count} partitions");

        await TryAsync(log, "admin ListOffsets", async () =>
        {
            var request = Enumerable.Range(0, 3)
                .Select(p => new TopicPartitionOffsetSpec { TopicPartition = new TopicPartition(topic, p), OffsetSpec = OffsetSpec.Latest() });
            var result = await admin.ListOffsetsAsync(request, new ListOffsetsOptions { RequestTimeout = TimeSpan.FromSeconds(10) });
            log($"admin ListOffsets: {string.Join(",", result.ResultInfos.Select(r => r.TopicPartitionOffsetError.Offset.Value))}");
        });

        await TryAsync(log, "admin ListConsumerGroupOffsets", async () =>
        {
            var result = await admin.ListConsumerGroupOffsetsAsync(
                [new ConsumerGroupTopicPartitions(classicGroup, null)],
                new ListConsumerGroupOffsetsOptions { RequestTimeout = TimeSpan.FromSeconds(10) });
            log($"admin ListConsumerGroupOffsets: {result[0].Partitions.Count} partitions");
        });
    }

    private static void Consume(CaptureSession session, string topic, string groupId, GroupProtocol? groupProtocol, int count, Action<string> log)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = session.BootstrapServers,
            ClientId = "capture-confluent",
            GroupId = groupId,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            FetchWaitMaxMs = 100,
        };
        if (groupProtocol is { } protocol)
        {
            config.GroupProtocol = protocol;
        }
        else
        {
            config.SessionTimeoutMs = 6000;
        }

        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(topic);
        var received = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (received < count && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is { IsPartitionEOF: false })
            {
                received++;
            }
        }
        consumer.Commit();
        consumer.Close();
        log($"group {groupId} ({groupProtocol?.ToString() ?? "classic"}): consumed {received}/{count}");
        if (received < count)
        {
            throw new InvalidOperationException($"Consumer group {groupId} read {received} of {count} records.");
        }
    }

    private static async Task TryAsync(Action<string> log, string what, Func<Task> action)
    {
        try
        {
            await action().WaitAsync(TimeSpan.FromSeconds(20));
            log($"{what}: ok");
        }
        catch (Exception ex) when (ex is KafkaException or TimeoutException)
        {
            // The mock implements only part of these APIs; the frames are captured either way.
            log($"{what}: failed against the mock ({ex.Message})");
        }
    }
}
