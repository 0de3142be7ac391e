using System.Buffers;
using BenchmarkDotNet.Attributes;

namespace Switchback.Protocol.Benchmarks.Framing;

/// <summary>Splitting a multi-segment buffer of many frames, as the connection read loop does.</summary>
[MemoryDiagnoser]
public class FrameSplittingBenchmarks
{
    private const int FrameCount = 1000;
    private ReadOnlySequence<byte> _buffer;

    /// <summary>Size of each buffered segment (a socket read).</summary>
    [Params(4096, 65536)]
    public int SegmentSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(7);
        var frames = new List<byte>();
        for (var i = 0; i < FrameCount; i++)
        {
            var body = new byte[random.Next(16, 2048)];
            random.NextBytes(body);
            frames.AddRange(BenchInputs.RequestFrame(ApiKey.Fetch, 12, i, "bench-client", 2, body));
        }
        _buffer = BenchInputs.Segmented([.. frames], SegmentSize);
    }

    [Benchmark(OperationsPerInvoke = FrameCount)]
    public int SplitFrames()
    {
        var buffer = _buffer;
        var count = 0;
        while (FrameReader.TryReadFrame(ref buffer, 1 << 20, out _))
        {
            count++;
        }
        return count;
    }
}
