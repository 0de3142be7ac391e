using System.Buffers.Binary;
using Switchback.Protocol.Records;
using Switchback.Proxy.Metrics;
using Xunit;

namespace Switchback.Proxy.Tests.Metrics;

/// <summary>The per-second produce outcomes the abort criteria judge, on a clock the test moves.</summary>
public sealed class ProduceOutcomesTests
{
    private long _now = 1_000;

    [Fact]
    public void ErrorRateAndP99_CoverTheLastSeconds_AndForgetOlderOnes()
    {
        var outcomes = new ProduceOutcomes(() => _now);
        Assert.Equal(default, outcomes.Summarize("orders", TimeSpan.FromSeconds(5)));

        for (var i = 0; i < 98; i++)
        {
            outcomes.Record("orders", 4, 0, TimeSpan.FromMilliseconds(2));
        }
        outcomes.Record("orders", 4, 4, TimeSpan.FromMilliseconds(300));
        outcomes.Record("orders", 4, 2, TimeSpan.FromMilliseconds(900));
        outcomes.Record("payments", 1, 1, TimeSpan.FromMilliseconds(1));

        var summary = outcomes.Summarize("orders", TimeSpan.FromSeconds(5));
        Assert.Equal(100, summary.Requests);
        Assert.Equal(400, summary.Partitions);
        Assert.Equal(6, summary.ErrorPartitions);
        Assert.Equal(1.5, summary.ErrorRatePercent);
        // The 99th of 100 latencies is the 300 ms one, reported as its bucket's bound (within 19 % above).
        Assert.InRange(summary.LatencyP99Ms!.Value, 300, 300 * 1.19);

        _now += 3;
        outcomes.Record("orders", 2, 2, TimeSpan.FromMilliseconds(5));
        Assert.Equal(402, outcomes.Summarize("orders", TimeSpan.FromSeconds(5)).Partitions);
        var lastSecond = outcomes.Summarize("orders", TimeSpan.FromSeconds(1));
        Assert.Equal((1L, 2L, 2L), (lastSecond.Requests, lastSecond.Partitions, lastSecond.ErrorPartitions));
        Assert.Equal(100, lastSecond.ErrorRatePercent);

        // A slot is reused a minute on: what it held then is not counted again.
        _now += 64;
        outcomes.Record("orders", 1, 0, TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, outcomes.Summarize("orders", ProduceOutcomes.Horizon).Requests);
    }

    [Fact]
    public void Records_AreCountedFromBatchHeaders()
    {
        var batches = new byte[2 * 70 + 5];
        WriteBatch(batches.AsSpan(0, 70), records: 7);
        WriteBatch(batches.AsSpan(70, 70), records: 3);
        Assert.Equal(10, RecordCounter.Count(batches.AsSpan(0, 140)));
        Assert.Equal(10, RecordCounter.Count(batches)); // a truncated tail is not counted
        Assert.Equal(0, RecordCounter.Count([]));
    }

    private static void WriteBatch(Span<byte> batch, int records)
    {
        BinaryPrimitives.WriteInt32BigEndian(batch[RecordBatchLayout.BatchLength..], batch.Length - RecordBatchLayout.LogOverhead);
        batch[RecordBatchLayout.Magic] = RecordBatchLayout.CurrentMagic;
        BinaryPrimitives.WriteInt32BigEndian(batch[RecordBatchLayout.RecordCount..], records);
    }
}
