using BenchmarkDotNet.Attributes;
using Switchback.Protocol.Messages;

namespace Switchback.Protocol.Benchmarks.Messages;

/// <summary>
/// Rewriting a Metadata response as the proxy must: decode an upstream answer (3 brokers, 50 topics x 12
/// partitions), replace every broker address and node id with the proxy's, re-encode. Measured at v9 (first
/// flexible version) and v12 (topic ids), the versions librdkafka-era clients use.
/// </summary>
[MemoryDiagnoser]
public class MetadataRewriteBenchmarks
{
    private const int Topics = 50;
    private const int PartitionsPerTopic = 12;
    private byte[] _upstream = [];
    private byte[] _output = [];

    [Params(9, 12)]
    public short Version { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var response = new MetadataResponse { ClusterId = "upstream-cluster", ControllerId = 1 };
        for (var b = 1; b <= 3; b++)
        {
            response.Brokers.Add(new MetadataResponse.MetadataResponseBroker { NodeId = b, Host = $"broker-{b}.kafka.internal", Port = 9092, Rack = "r1" });
        }
        for (var t = 0; t < Topics; t++)
        {
            var topic = new MetadataResponse.MetadataResponseTopic { Name = $"orders.events.{t:D3}", TopicId = Guid.NewGuid() };
            for (var p = 0; p < PartitionsPerTopic; p++)
            {
                var leader = 1 + (p % 3);
                topic.Partitions.Add(new MetadataResponse.MetadataResponsePartition
                {
                    PartitionIndex = p,
                    LeaderId = leader,
                    LeaderEpoch = 7,
                    ReplicaNodes = [leader, 1 + ((p + 1) % 3), 1 + ((p + 2) % 3)],
                    IsrNodes = [leader, 1 + ((p + 1) % 3)],
                });
            }
            response.Topics.Add(topic);
        }
        _upstream = response.ToArray(Version);
        _output = new byte[_upstream.Length * 2];
    }

    [Benchmark]
    public int DecodeRewriteEncode()
    {
        var reader = new KafkaReader((ReadOnlyMemory<byte>)_upstream);
        var response = new MetadataResponse();
        response.Read(ref reader, Version);
        response.ClusterId = "switchback";
        response.ControllerId = 100_001;
        foreach (var broker in response.Brokers)
        {
            broker.NodeId += 100_000;
            broker.Host = "127.0.0.1";
            broker.Port = 9093 + broker.NodeId % 100_000;
        }
        foreach (var topic in response.Topics)
        {
            foreach (var partition in topic.Partitions)
            {
                partition.LeaderId += 100_000;
                for (var i = 0; i < partition.ReplicaNodes.Count; i++)
                {
                    partition.ReplicaNodes[i] += 100_000;
                }
                for (var i = 0; i < partition.IsrNodes.Count; i++)
                {
                    partition.IsrNodes[i] += 100_000;
                }
            }
        }
        var writer = new KafkaWriter(_output);
        response.Write(ref writer, Version);
        return writer.Position;
    }
}
