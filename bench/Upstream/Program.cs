using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using Switchback.Proxy.Demo;

namespace Switchback.Bench.Upstream;

/// <summary>
/// Runs librdkafka mock clusters in their own process, so that a load run can charge CPU to the upstream, the
/// relay and the client separately. Prints one JSON line describing the clusters, then serves until stdin closes
/// or reads "stop".
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        UpstreamOptions options;
        try
        {
            options = UpstreamOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"upstream: {e.Message}");
            Console.Error.WriteLine(UpstreamOptions.Usage);
            return 2;
        }

        var clusters = new List<MockKafkaCluster>();
        try
        {
            for (var i = 0; i < options.Clusters; i++)
            {
                var cluster = MockKafkaCluster.Start(options.Brokers);
                clusters.Add(cluster);
                foreach (var topic in options.Topics)
                {
                    cluster.CreateTopic(topic, options.Partitions);
                }
            }

            if (options.PrefillTopic is not null && options.PrefillBytesPerPartition > 0)
            {
                foreach (var cluster in clusters)
                {
                    Prefill(DirectBootstrap(cluster), options);
                }
            }

            // Advertise a relay only after pre-filling: until the relay runs, its ports lead nowhere.
            if (options.Advertise.Count > 0)
            {
                foreach (var cluster in clusters)
                {
                    if (options.Advertise.Count != cluster.BrokerIds.Count)
                    {
                        throw new ArgumentException($"--advertise lists {options.Advertise.Count} addresses for {cluster.BrokerIds.Count} brokers.");
                    }
                    for (var b = 0; b < cluster.BrokerIds.Count; b++)
                    {
                        var (host, port) = options.Advertise[b];
                        cluster.SetBrokerAdvertisedAddress(cluster.BrokerIds[b], host, port);
                    }
                }
            }

            var description = clusters.Select(c => new ClusterDescription(
                c.BootstrapServers,
                c.BrokerIds.ToDictionary(id => id.ToString(CultureInfo.InvariantCulture), id => c.GetBrokerListener(id).ToString()))).ToList();

            Console.Out.WriteLine(JsonSerializer.Serialize(new UpstreamDescription(Environment.ProcessId, description)));
            Console.Out.Flush();

            string? line;
            while ((line = Console.In.ReadLine()) is not null && line.Trim() != "stop")
            {
            }
            return 0;
        }
        finally
        {
            foreach (var cluster in clusters)
            {
                cluster.Dispose();
            }
        }
    }

    private static string DirectBootstrap(MockKafkaCluster cluster) =>
        string.Join(',', cluster.BrokerIds.Select(id => cluster.GetBrokerListener(id).ToString()));

    /// <summary>Writes the same number of 1 KiB records to every partition, so a consumer finds them evenly spread.</summary>
    private static void Prefill(string bootstrap, UpstreamOptions options)
    {
        var recordsPerPartition = (int)(options.PrefillBytesPerPartition / options.RecordBytes);
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrap,
            Acks = Acks.Leader,
            LingerMs = 5,
        };
        var payload = new byte[options.RecordBytes];
        Random.Shared.NextBytes(payload);
        long failed = 0;
        using var producer = new ProducerBuilder<Null, byte[]>(config).Build();
        for (var i = 0; i < recordsPerPartition; i++)
        {
            for (var p = 0; p < options.Partitions; p++)
            {
                while (true)
                {
                    try
                    {
                        producer.Produce(new TopicPartition(options.PrefillTopic, p), new Message<Null, byte[]> { Value = payload },
                            r =>
                            {
                                if (r.Error.IsError)
                                {
                                    Interlocked.Increment(ref failed);
                                }
                            });
                        break;
                    }
                    catch (ProduceException<Null, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                    {
                        Thread.Sleep(1);
                    }
                }
            }
        }
        producer.Flush(TimeSpan.FromSeconds(60));
        if (failed > 0)
        {
            throw new InvalidOperationException($"pre-fill: {failed} records failed.");
        }
        Console.Error.WriteLine($"upstream: pre-filled {options.PrefillTopic} with {recordsPerPartition} x {options.RecordBytes} B per partition");
    }
}

/// <summary>What a load run needs to know about one mock cluster.</summary>
public sealed record ClusterDescription(string BootstrapServers, Dictionary<string, string> Listeners);

/// <summary>The line printed on stdout once every cluster is ready.</summary>
public sealed record UpstreamDescription(int ProcessId, List<ClusterDescription> Clusters);
