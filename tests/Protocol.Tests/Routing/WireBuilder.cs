using System.Buffers.Binary;
using System.Text;

namespace Switchback.Protocol.Tests.Routing;

/// <summary>
/// Minimal hand-written encoder of Kafka primitives for building request bodies in tests, written independently of
/// <see cref="KafkaWriter"/> so the readers are checked against a second implementation of the wire format.
/// </summary>
internal sealed class WireBuilder
{
    private readonly List<byte> _bytes = [];

    public int Length => _bytes.Count;

    public byte[] ToArray() => [.. _bytes];

    public WireBuilder Raw(params byte[] bytes)
    {
        _bytes.AddRange(bytes);
        return this;
    }

    public WireBuilder Int8(sbyte v) => Raw((byte)v);

    public WireBuilder Int16(short v)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteInt16BigEndian(b, v);
        return Raw(b);
    }

    public WireBuilder Int32(int v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b, v);
        return Raw(b);
    }

    public WireBuilder Int64(long v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(b, v);
        return Raw(b);
    }

    public WireBuilder Uuid(Guid v) => Raw(v.ToByteArray(bigEndian: true));

    public WireBuilder UVarInt(uint v)
    {
        while (v >= 0x80)
        {
            _bytes.Add((byte)(v | 0x80));
            v >>= 7;
        }
        _bytes.Add((byte)v);
        return this;
    }

    /// <summary>STRING / COMPACT_STRING, or the nullable variants when <paramref name="value"/> is null.</summary>
    public WireBuilder String(string? value, bool flexible)
    {
        if (value is null)
        {
            return flexible ? UVarInt(0) : Int16(-1);
        }
        var utf8 = Encoding.UTF8.GetBytes(value);
        if (flexible)
        {
            UVarInt((uint)utf8.Length + 1);
        }
        else
        {
            Int16((short)utf8.Length);
        }
        return Raw(utf8);
    }

    /// <summary>BYTES / COMPACT_BYTES (RECORDS), or null.</summary>
    public WireBuilder Bytes(byte[]? value, bool flexible)
    {
        if (value is null)
        {
            return flexible ? UVarInt(0) : Int32(-1);
        }
        if (flexible)
        {
            UVarInt((uint)value.Length + 1);
        }
        else
        {
            Int32(value.Length);
        }
        return Raw(value);
    }

    public WireBuilder ArrayLength(int count, bool flexible) => flexible ? UVarInt((uint)(count + 1)) : Int32(count);

    /// <summary>An empty tagged-field section when <paramref name="flexible"/>, nothing otherwise.</summary>
    public WireBuilder NoTags(bool flexible) => flexible ? UVarInt(0) : this;

    /// <summary>A tagged field: tag, size, payload.</summary>
    public WireBuilder Tag(uint tag, byte[] payload) => UVarInt(tag).UVarInt((uint)payload.Length).Raw(payload);
}
