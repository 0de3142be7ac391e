using BenchmarkDotNet.Attributes;
using Switchback.Protocol.Routing;

namespace Switchback.Protocol.Benchmarks.Routing;

/// <summary>
/// Extracting routing keys (topics, partitions, records positions) from a Produce request of 4 topics x 8 partitions
/// with a 16 KiB batch each. The budget is zero bytes allocated; setup fails the run if that regresses.
/// </summary>
[MemoryDiagnoser]
public class ProduceRoutingBenchmarks
{
    private const int Topics = 4;
    private const int Partitions = 8;
    private const int BatchSize = 16 * 1024;
    private byte[] _body = [];

    [Params(3, 9, 11)]
    public short Version { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _body = BenchInputs.ProduceBody(Version, Topics, Partitions, BatchSize);
        if (ReadRouting() != Topics * Partitions)
        {
            throw new InvalidOperationException("Produce routing did not see every partition.");
        }
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            ReadRouting();
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (allocated != 0)
        {
            throw new InvalidOperationException($"Produce routing allocated {allocated} B over 100 requests; the budget is 0 B.");
        }
    }

    [Benchmark]
    public int ReadRouting()
    {
        var reader = new ProduceRequestRouting(_body, Version);
        var partitions = 0;
        while (reader.TryReadTopic(out var topic))
        {
            _ = topic.Name.Length;
            while (reader.TryReadPartition(out var partition))
            {
                partitions += partition.RecordsOffset > 0 ? 1 : 0;
            }
        }
        return partitions;
    }
}
