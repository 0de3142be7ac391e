using BenchmarkDotNet.Attributes;

namespace Switchback.Protocol.Benchmarks.Headers;

/// <summary>Request header parsing: the allocation-free peek used for routing, and the full read.</summary>
[MemoryDiagnoser]
public class RequestHeaderBenchmarks
{
    private byte[] _frameV1 = [];
    private byte[] _frameV2 = [];

    [GlobalSetup]
    public void Setup()
    {
        _frameV1 = BenchInputs.RequestFrame(ApiKey.Produce, 8, 42, "bench-client", 1, new byte[64])[4..];
        _frameV2 = BenchInputs.RequestFrame(ApiKey.Produce, 9, 42, "bench-client", 2, new byte[64])[4..];
    }

    [Benchmark(Baseline = true)]
    public int TryPeek()
    {
        RequestHeader.TryPeek(_frameV2, out var apiKey, out var version, out var correlationId);
        return (int)apiKey + version + correlationId;
    }

    [Benchmark]
    public int ReadV1()
    {
        var reader = new KafkaReader(_frameV1.AsMemory());
        var header = default(RequestHeader);
        header.Read(ref reader, 1);
        return header.CorrelationId;
    }

    [Benchmark]
    public int ReadV2()
    {
        var reader = new KafkaReader(_frameV2.AsMemory());
        var header = default(RequestHeader);
        header.Read(ref reader, 2);
        return header.CorrelationId;
    }
}
