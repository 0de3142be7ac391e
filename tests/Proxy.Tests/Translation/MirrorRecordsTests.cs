using System.Text;
using Switchback.Proxy.Translation;
using Xunit;

namespace Switchback.Proxy.Tests.Translation;

/// <summary>
/// MirrorMaker 2's record layouts, byte for byte. The expected bytes are a dump of Kafka's own serialisation: Apache
/// Kafka's <c>OffsetSync</c> (connect/mirror, commit 06a2dac2) and <c>Checkpoint</c> (connect/mirror-client, commit
/// 0967a42a) with kafka-clients' <c>Struct</c>, <c>Schema</c>, <c>Field</c> and <c>Type</c> compiled unchanged and
/// run (javac 17) on the values below; <c>recordKey()</c>/<c>recordValue()</c> printed as hex, and each read back
/// equal through Kafka's own <c>deserializeRecord</c>. Kafka's own tests only round-trip these records and hold no
/// byte dump, hence one taken from its code.
/// </summary>
public sealed class MirrorRecordsTests
{
    [Theory]
    [InlineData("orders.events", 2, 100L, 37L, "000d6f72646572732e6576656e747300000002", "00000000000000640000000000000025")]
    [InlineData("z\u00e4hler", 0, long.MaxValue, -1L, "00077ac3a4686c657200000000", "7fffffffffffffffffffffffffffffff")]
    public void OffsetSync_KeyAndValue_AreKafkasOwnBytes(string topic, int partition, long upstream, long downstream, string keyHex, string valueHex)
    {
        var sync = new OffsetSync(topic, partition, upstream, downstream);
        byte[] key = Convert.FromHexString(keyHex), value = Convert.FromHexString(valueHex);
        Assert.Equal(key, MirrorRecords.OffsetSyncKey(sync));
        Assert.Equal(value, MirrorRecords.OffsetSyncValue(sync));
        Assert.Equal(sync, MirrorRecords.ReadOffsetSync(key, value));
    }

    [Theory]
    // The values of Kafka's CheckpointTest.testSerializationRoundtrip.
    [InlineData("cg1", "some-topic", 4, 11L, 22L, "meta", "0003636731000a736f6d652d746f70696300000004", "0000000000000000000b000000000000001600046d657461")]
    [InlineData("gr\u00fcppe", "t", 0, 1L, 2L, "", "00076772c3bc70706500017400000000", "0000000000000000000100000000000000020000")]
    public void Checkpoint_KeyAndValue_AreKafkasOwnBytes_WithVersionHeader(string group, string topic, int partition, long upstream, long downstream,
        string metadata, string keyHex, string valueHex)
    {
        var checkpoint = new Checkpoint(group, topic, partition, upstream, downstream, metadata);
        byte[] key = Convert.FromHexString(keyHex), value = Convert.FromHexString(valueHex);
        Assert.Equal(key, MirrorRecords.CheckpointKey(checkpoint));
        Assert.Equal(value, MirrorRecords.CheckpointValue(checkpoint));
        Assert.Equal(checkpoint, MirrorRecords.ReadCheckpoint(key, value));
    }

    [Fact]
    public void Strings_AreLengthPrefixedUtf8Bytes_NotCharacters()
    {
        var sync = new OffsetSync("zähler", 0, long.MaxValue, -1);
        var key = MirrorRecords.OffsetSyncKey(sync);
        Assert.Equal(Encoding.UTF8.GetByteCount("zähler"), key[1]);
        Assert.Equal(2 + 7 + 4, key.Length);
        Assert.Equal(sync, MirrorRecords.ReadOffsetSync(key, MirrorRecords.OffsetSyncValue(sync)));
    }

    [Fact]
    public void Malformed_AreRefused_CheckpointVersionsOtherThanZeroToo()
    {
        var checkpoint = new Checkpoint("g", "t", 0, 1, 2, "");
        var value = MirrorRecords.CheckpointValue(checkpoint);
        value[1] = 1;
        Assert.Throws<MirrorRecordFormatException>(() => MirrorRecords.ReadCheckpoint(MirrorRecords.CheckpointKey(checkpoint), value));
        Assert.Throws<MirrorRecordFormatException>(() => MirrorRecords.ReadOffsetSync([0x00, 0x05, (byte)'a'], new byte[16]));
        Assert.Throws<MirrorRecordFormatException>(() => MirrorRecords.ReadOffsetSync(MirrorRecords.OffsetSyncKey(new OffsetSync("t", 0, 0, 0)), new byte[15]));
        Assert.Throws<MirrorRecordFormatException>(() => MirrorRecords.ReadOffsetSync([0xFF, 0xFF, 0, 0, 0, 0], new byte[16]));
    }
}
