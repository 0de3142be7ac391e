using System.Buffers.Binary;
using System.Text;

namespace Switchback.Proxy.Translation;

/// <summary>
/// One MirrorMaker 2 offset sync: the source record at <see cref="Upstream"/> of <see cref="Topic"/>[<see cref="Partition"/>]
/// (the source topic's name) was written to the target at <see cref="Downstream"/>.
/// </summary>
public readonly record struct OffsetSync(string Topic, int Partition, long Upstream, long Downstream);

/// <summary>
/// One MirrorMaker 2 checkpoint: group <see cref="Group"/>'s offset <see cref="Upstream"/> on the source, translated
/// to <see cref="Downstream"/> for <see cref="Topic"/> (the topic's name on the target) on the target.
/// </summary>
public sealed record Checkpoint(string Group, string Topic, int Partition, long Upstream, long Downstream, string Metadata);

/// <summary>A record of an internal MirrorMaker 2 topic that is not in the layout it should be.</summary>
public sealed class MirrorRecordFormatException(string message) : Exception(message);

/// <summary>
/// MirrorMaker 2's record layouts (Kafka's <c>Struct</c> serialisation: fields in schema order, big-endian integers,
/// STRING = int16 length + UTF-8, no field names, no tags). Offset sync key: topic STRING, partition INT32; value:
/// upstreamOffset INT64, offset INT64 (no version). Checkpoint key: group STRING, topic STRING, partition INT32; value:
/// version INT16 (0), upstreamOffset INT64, offset INT64, metadata STRING. Bytes after the last field are ignored, as
/// Kafka's schema reader does.
/// </summary>
public static class MirrorRecords
{
    /// <summary>The only checkpoint value version MirrorMaker 2 writes (and reads).</summary>
    public const short CheckpointVersion = 0;

    public static byte[] OffsetSyncKey(OffsetSync sync)
    {
        var writer = new StructWriter(StringSize(sync.Topic) + 4);
        writer.String(sync.Topic);
        writer.Int32(sync.Partition);
        return writer.Bytes;
    }

    public static byte[] OffsetSyncValue(OffsetSync sync)
    {
        var writer = new StructWriter(16);
        writer.Int64(sync.Upstream);
        writer.Int64(sync.Downstream);
        return writer.Bytes;
    }

    public static OffsetSync ReadOffsetSync(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        var k = new StructReader(key, "offset sync key");
        var topic = k.String();
        var partition = k.Int32();
        var v = new StructReader(value, "offset sync value");
        var upstream = v.Int64();
        var downstream = v.Int64();
        return new OffsetSync(topic, partition, upstream, downstream);
    }

    public static byte[] CheckpointKey(Checkpoint checkpoint)
    {
        var writer = new StructWriter(StringSize(checkpoint.Group) + StringSize(checkpoint.Topic) + 4);
        writer.String(checkpoint.Group);
        writer.String(checkpoint.Topic);
        writer.Int32(checkpoint.Partition);
        return writer.Bytes;
    }

    public static byte[] CheckpointValue(Checkpoint checkpoint)
    {
        var writer = new StructWriter(2 + 16 + StringSize(checkpoint.Metadata));
        writer.Int16(CheckpointVersion);
        writer.Int64(checkpoint.Upstream);
        writer.Int64(checkpoint.Downstream);
        writer.String(checkpoint.Metadata);
        return writer.Bytes;
    }

    public static Checkpoint ReadCheckpoint(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        var v = new StructReader(value, "checkpoint value");
        var version = v.Int16();
        if (version != CheckpointVersion)
        {
            throw new MirrorRecordFormatException($"checkpoint value version {version} is not supported (only {CheckpointVersion})");
        }
        var upstream = v.Int64();
        var downstream = v.Int64();
        var metadata = v.String();
        var k = new StructReader(key, "checkpoint key");
        var group = k.String();
        var topic = k.String();
        var partition = k.Int32();
        return new Checkpoint(group, topic, partition, upstream, downstream, metadata);
    }

    private static int StringSize(string value) => 2 + Encoding.UTF8.GetByteCount(value);

    private ref struct StructWriter(int size)
    {
        private int _position;

        public byte[] Bytes { get; } = new byte[size];

        public void Int16(short value)
        {
            BinaryPrimitives.WriteInt16BigEndian(Bytes.AsSpan(_position), value);
            _position += 2;
        }

        public void Int32(int value)
        {
            BinaryPrimitives.WriteInt32BigEndian(Bytes.AsSpan(_position), value);
            _position += 4;
        }

        public void Int64(long value)
        {
            BinaryPrimitives.WriteInt64BigEndian(Bytes.AsSpan(_position), value);
            _position += 8;
        }

        public void String(string value)
        {
            var length = Encoding.UTF8.GetByteCount(value);
            if (length > short.MaxValue)
            {
                throw new ArgumentException($"a STRING holds at most {short.MaxValue} bytes, not {length}", nameof(value));
            }
            Int16((short)length);
            _position += Encoding.UTF8.GetBytes(value, Bytes.AsSpan(_position));
        }
    }

    private ref struct StructReader(ReadOnlySpan<byte> bytes, string what)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private int _position;

        public short Int16() => BinaryPrimitives.ReadInt16BigEndian(Take(2));

        public int Int32() => BinaryPrimitives.ReadInt32BigEndian(Take(4));

        public long Int64() => BinaryPrimitives.ReadInt64BigEndian(Take(8));

        public string String()
        {
            var length = Int16();
            if (length < 0)
            {
                throw new MirrorRecordFormatException($"{what}: a STRING field has length {length} (null is not allowed)");
            }
            return Encoding.UTF8.GetString(Take(length));
        }

        private ReadOnlySpan<byte> Take(int count)
        {
            if (_bytes.Length - _position < count)
            {
                throw new MirrorRecordFormatException($"{what}: {_bytes.Length} byte(s) end inside a field");
            }
            var span = _bytes.Slice(_position, count);
            _position += count;
            return span;
        }
    }
}
