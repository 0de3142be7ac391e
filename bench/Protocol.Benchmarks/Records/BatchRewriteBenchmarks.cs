using BenchmarkDotNet.Attributes;
using Switchback.Protocol.Records;

namespace Switchback.Protocol.Benchmarks.Records;

/// <summary>Rewriting a batch's producer identity in place and recomputing its CRC-32C, the per-batch cost of producer-id mapping.</summary>
[MemoryDiagnoser]
public class BatchRewriteBenchmarks
{
    private byte[] _batch = [];
    private long _producerId;

    [Params(16 * 1024, 1024 * 1024)]
    public int BatchSize { get; set; }

    [GlobalSetup]
    public void Setup() => _batch = BenchInputs.RecordBatch(BatchSize);

    [Benchmark]
    public uint RewriteAndRecomputeCrc()
    {
        var batch = new MutableRecordBatch(_batch);
        batch.ProducerId = ++_producerId;
        batch.ProducerEpoch = 3;
        batch.BaseSequence = 1000;
        batch.BaseOffset = 0;
        return batch.RecomputeCrc();
    }

    [Benchmark]
    public bool ValidateCrc() => CrcValidation.IsValid(new RecordBatchHeader(_batch));
}
