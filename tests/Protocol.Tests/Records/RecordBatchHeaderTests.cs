using Switchback.Protocol.Records;

namespace Switchback.Protocol.Tests.Records;

public class RecordBatchHeaderTests
{
    [Fact]
    public void Header_CapturedBrokerBatch_ExposesEveryField()
    {
        var batch = new RecordBatchHeader(CapturedBatches.SingleRecord);

        Assert.Equal(0, batch.BaseOffset);
        Assert.Equal(59, batch.BatchLength);
        Assert.Equal(71, batch.TotalSize);
        Assert.Equal(1, batch.PartitionLeaderEpoch);
        Assert.Equal(2, batch.Magic);
        Assert.Equal(0x0318A270u, batch.Crc);
        Assert.Equal(0, batch.Attributes);
        Assert.Equal(RecordCompression.None, batch.Compression);
        Assert.Equal(RecordTimestampType.CreateTime, batch.TimestampType);
        Assert.False(batch.IsTransactional);
        Assert.False(batch.IsControl);
        Assert.Equal(0, batch.LastOffsetDelta);
        Assert.Equal(1503229838908, batch.BaseTimestamp);
        Assert.Equal(1503229838908, batch.MaxTimestamp);
        Assert.Equal(-1, batch.ProducerId);
        Assert.Equal(-1, batch.ProducerEpoch);
        Assert.Equal(-1, batch.BaseSequence);
        Assert.Equal(1, batch.RecordCount);
        Assert.Equal(10, batch.Records.Length);
    }

    [Fact]
    public void ComputeCrc_CapturedBrokerBatches_EqualsCrcTheBrokerWrote()
    {
        foreach (var bytes in new[] { CapturedBatches.SingleRecord, CapturedBatches.TwoRecords })
        {
            var batch = new RecordBatchHeader(bytes);
            Assert.Equal(batch.Crc, batch.ComputeCrc());
            Assert.Equal(Crc32CReference.Compute(bytes.AsSpan(RecordBatchLayout.CrcStart)), batch.ComputeCrc());
            Assert.True(CrcValidation.IsValid(batch));
        }
    }

    [Fact]
    public void Attributes_FlagBits_DecodeIndependently()
    {
        var bytes = CapturedBatches.SingleRecord;
        bytes[RecordBatchLayout.Attributes + 1] = 0b0111_1100; // zstd, log-append time, transactional, control, delete horizon
        var batch = new RecordBatchHeader(bytes);
        Assert.Equal(RecordCompression.Zstd, batch.Compression);
        Assert.Equal(RecordTimestampType.LogAppendTime, batch.TimestampType);
        Assert.True(batch.IsTransactional);
        Assert.True(batch.IsControl);
        Assert.True(batch.HasDeleteHorizon);
    }

    [Fact]
    public void Rewrite_ProducerFieldsThenRecomputeCrc_ProducesValidBatchAndLeavesRecordsAlone()
    {
        var bytes = CapturedBatches.TwoRecords;
        var recordsBefore = bytes.AsSpan(RecordBatchLayout.HeaderSize).ToArray();
        var batch = new MutableRecordBatch(bytes);

        batch.ProducerId = 0x1234_5678_9ABC;
        batch.ProducerEpoch = 7;
        batch.BaseSequence = 42;
        batch.BaseOffset = 1000;
        Assert.False(CrcValidation.IsValid(bytes));

        var crc = batch.RecomputeCrc();

        Assert.True(CrcValidation.IsValid(bytes));
        Assert.Equal(Crc32CReference.Compute(bytes.AsSpan(RecordBatchLayout.CrcStart)), crc);
        var header = batch.Header;
        Assert.Equal(0x1234_5678_9ABC, header.ProducerId);
        Assert.Equal(7, header.ProducerEpoch);
        Assert.Equal(42, header.BaseSequence);
        Assert.Equal(1000, header.BaseOffset);
        Assert.Equal(recordsBefore, bytes.AsSpan(RecordBatchLayout.HeaderSize).ToArray());
    }

    [Fact]
    public void BaseOffsetAndLeaderEpoch_AreOutsideTheCrc()
    {
        var bytes = CapturedBatches.SingleRecord;
        var batch = new MutableRecordBatch(bytes);
        batch.BaseOffset = 99;
        batch.PartitionLeaderEpoch = 12;
        Assert.True(CrcValidation.IsValid(bytes));
    }

    [Fact]
    public void IsValid_FlippedRecordByte_IsFalse()
    {
        var bytes = CapturedBatches.SingleRecord;
        bytes[^2] ^= 0x01;
        Assert.False(CrcValidation.IsValid(bytes));
    }

    [Fact]
    public void Constructor_LegacyMagic_Throws()
    {
        var bytes = CapturedBatches.SingleRecord;
        bytes[RecordBatchLayout.Magic] = 1;
        Assert.Throws<KafkaProtocolException>(() => new RecordBatchHeader(bytes));
    }

    [Fact]
    public void Constructor_ShorterThanHeader_Throws() =>
        Assert.Throws<KafkaProtocolException>(() => new RecordBatchHeader(CapturedBatches.SingleRecord.AsSpan(0, 60)));

    [Fact]
    public void ComputeCrc_LengthBeyondBuffer_Throws()
    {
        var bytes = CapturedBatches.SingleRecord;
        bytes[RecordBatchLayout.BatchLength + 3] = 0x7F;
        Assert.Throws<KafkaProtocolException>(() => new RecordBatchHeader(bytes).ComputeCrc());
    }
}
