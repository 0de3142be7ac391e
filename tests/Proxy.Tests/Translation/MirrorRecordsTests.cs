using System.Text;
using Switchback.Proxy.Translation;
using Xunit;

namespace Switchback.Proxy.Tests.Translation;

/// <summary>
/// MirrorMaker 2's record layouts, byte for byte. Kafka's own tests only round-trip these records (CheckpointTest,
/// MirrorRecordVersionTest) and hold no byte dump, so the expected bytes are built here by hand from the schemas in
/// OffsetSync.java and Checkpoint.java: fields in schema order, big-endian, STRING = int16 length + UTF-8, and for a
/// checkpoint value the int16 version header (0) first.
/// </summary>
public sealed class MirrorRecordsTests
{
    [Fact]
    public void OffsetSync_KeyAndValue_AreKafkasStructLayout()
    {
        var sync = new OffsetSync("orders.events", 2, 100, 37);

        byte[] key = [0x00, 0x0D, .. "orders.events"u8, 0x00, 0x00, 0x00, 0x02];
        byte[] value = [0, 0, 0, 0, 0, 0, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0x25];
        Assert.Equal(key, MirrorRecords.OffsetSyncKey(sync));
        Assert.Equal(value, MirrorRecords.OffsetSyncValue(sync));
        Assert.Equal(sync, MirrorRecords.ReadOffsetSync(key, value));
    }

    [Fact]
    public void Checkpoint_KeyAndValue_AreKafkasStructLayout_WithVersionHeader()
    {
        // The values of Kafka's CheckpointTest.testSerializationRoundtrip.
        var checkpoint = new Checkpoint("cg1", "some-topic", 4, 11, 22, "meta");

        byte[] key = [0x00, 0x03, .. "cg1"u8, 0x00, 0x0A, .. "some-topic"u8, 0x00, 0x00, 0x00, 0x04];
        byte[] value = [0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0x16, 0x00, 0x04, .. "meta"u8];
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
