using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace Switchback.Protocol;

/// <summary>
/// Forward-only reader of Kafka primitive types over one contiguous frame. Every length read from the wire is
/// checked against the bytes left before anything is allocated, so hostile input can only cause a
/// <see cref="KafkaProtocolException"/>.
/// </summary>
public ref struct KafkaReader
{
    private readonly ReadOnlyMemory<byte> _memory;
    private readonly ReadOnlySpan<byte> _span;
    private int _position;

    public KafkaReader(ReadOnlyMemory<byte> frame)
    {
        _memory = frame;
        _span = frame.Span;
        _position = 0;
    }

    /// <summary>Reader over a span; <see cref="ReadRecords"/> and <see cref="ReadBytes"/> copy in this mode.</summary>
    public KafkaReader(ReadOnlySpan<byte> frame)
    {
        _memory = default;
        _span = frame;
        _position = 0;
    }

    public readonly int Position => _position;
    public readonly int Remaining => _span.Length - _position;
    public readonly bool End => _position >= _span.Length;
    public readonly ReadOnlySpan<byte> RemainingSpan => _span[_position..];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ReadOnlySpan<byte> Take(int count)
    {
        if ((uint)count > (uint)(_span.Length - _position))
        {
            KafkaProtocolException.ThrowTruncated(count, _span.Length - _position);
        }
        var slice = _span.Slice(_position, count);
        _position += count;
        return slice;
    }

    public void Skip(int count) => Take(count);

    public sbyte ReadInt8() => (sbyte)Take(1)[0];
    public bool ReadBoolean() => Take(1)[0] != 0;
    public short ReadInt16() => BinaryPrimitives.ReadInt16BigEndian(Take(2));
    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16BigEndian(Take(2));
    public int ReadInt32() => BinaryPrimitives.ReadInt32BigEndian(Take(4));
    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32BigEndian(Take(4));
    public long ReadInt64() => BinaryPrimitives.ReadInt64BigEndian(Take(8));
    public double ReadFloat64() => BinaryPrimitives.ReadDoubleBigEndian(Take(8));

    public Guid ReadUuid() => new(Take(16), bigEndian: true);

    public uint ReadUnsignedVarInt()
    {
        uint value = 0;
        for (var shift = 0; shift < 35; shift += 7)
        {
            var b = Take(1)[0];
            if (shift == 28 && b > 0x0F)
            {
                KafkaProtocolException.Throw("Unsigned varint does not fit in 32 bits.");
            }
            value |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
        KafkaProtocolException.Throw("Unsigned varint longer than 5 bytes.");
        return 0;
    }

    public ulong ReadUnsignedVarLong()
    {
        ulong value = 0;
        for (var shift = 0; shift < 70; shift += 7)
        {
            var b = Take(1)[0];
            if (shift == 63 && b > 0x01)
            {
                KafkaProtocolException.Throw("Unsigned varlong does not fit in 64 bits.");
            }
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
        KafkaProtocolException.Throw("Unsigned varlong longer than 10 bytes.");
        return 0;
    }

    /// <summary>Zig-zag encoded signed varint (record fields).</summary>
    public int ReadVarInt()
    {
        var raw = ReadUnsignedVarInt();
        return (int)(raw >> 1) ^ -(int)(raw & 1);
    }

    /// <summary>Zig-zag encoded signed varlong (record fields).</summary>
    public long ReadVarLong()
    {
        var raw = ReadUnsignedVarLong();
        return (long)(raw >> 1) ^ -(long)(raw & 1);
    }

    /// <summary>Reads a string length (int16 or compact uvarint) and returns -1 for null.</summary>
    private int ReadStringLength(bool flexible)
    {
        int length;
        if (flexible)
        {
            var raw = ReadUnsignedVarInt();
            length = (int)(raw - 1);
            if (raw == 0)
            {
                return -1;
            }
            if (raw > int.MaxValue)
            {
                KafkaProtocolException.ThrowBadLength("compact string", raw, Remaining);
            }
        }
        else
        {
            length = ReadInt16();
        }
        if (length < -1 || length > Remaining)
        {
            KafkaProtocolException.ThrowBadLength("string", length, Remaining);
        }
        return length;
    }

    public string? ReadNullableString(bool flexible)
    {
        var length = ReadStringLength(flexible);
        return length < 0 ? null : Encoding.UTF8.GetString(Take(length));
    }

    public string ReadString(bool flexible)
    {
        var length = ReadStringLength(flexible);
        if (length < 0)
        {
            KafkaProtocolException.Throw("Null string in a non-nullable field.");
        }
        return Encoding.UTF8.GetString(Take(length));
    }

    /// <summary>The raw UTF-8 bytes of a string without allocating; empty span with <paramref name="isNull"/> for null.</summary>
    public ReadOnlySpan<byte> ReadStringSpan(bool flexible, out bool isNull)
    {
        var length = ReadStringLength(flexible);
        isNull = length < 0;
        return isNull ? default : Take(length);
    }

    private int ReadBytesLength(bool flexible)
    {
        long length;
        if (flexible)
        {
            length = (long)ReadUnsignedVarInt() - 1;
        }
        else
        {
            length = ReadInt32();
        }
        if (length < -1 || length > Remaining)
        {
            KafkaProtocolException.ThrowBadLength("bytes", length, Remaining);
        }
        return (int)length;
    }

    /// <summary>Bytes field; a slice of the frame (no copy) when the reader was built over memory.</summary>
    public ReadOnlyMemory<byte>? ReadNullableBytes(bool flexible)
    {
        var length = ReadBytesLength(flexible);
        if (length < 0)
        {
            return null;
        }
        return Slice(length);
    }

    public ReadOnlyMemory<byte> ReadBytes(bool flexible)
    {
        var length = ReadBytesLength(flexible);
        if (length < 0)
        {
            KafkaProtocolException.Throw("Null bytes in a non-nullable field.");
        }
        return Slice(length);
    }

    /// <summary>Record data (message sets or record batches) are relayed as slices and never decoded here.</summary>
    public ReadOnlyMemory<byte>? ReadRecords(bool flexible) => ReadNullableBytes(flexible);

    /// <summary>The raw span of a bytes/records field, without allocating.</summary>
    public ReadOnlySpan<byte> ReadBytesSpan(bool flexible, out bool isNull)
    {
        var length = ReadBytesLength(flexible);
        isNull = length < 0;
        return isNull ? default : Take(length);
    }

    private ReadOnlyMemory<byte> Slice(int length)
    {
        var start = _position;
        var span = Take(length);
        return _memory.IsEmpty && length > 0 ? span.ToArray() : _memory.Slice(start, length);
    }

    /// <summary>Reads an array length; -1 means null. Each element takes at least one byte, so the count is bounded by the bytes left.</summary>
    public int ReadArrayLength(bool flexible)
    {
        long length = flexible ? (long)ReadUnsignedVarInt() - 1 : ReadInt32();
        if (length < -1 || length > Remaining)
        {
            KafkaProtocolException.ThrowBadLength("array", length, Remaining);
        }
        return (int)length;
    }

    /// <summary>Reads a tagged-field section, calling <paramref name="onField"/> for each (tag, payload); unknown tags are kept by the caller.</summary>
    public int ReadTaggedFieldCount()
    {
        var count = ReadUnsignedVarInt();
        if (count > (uint)Remaining)
        {
            KafkaProtocolException.ThrowBadLength("tagged field count", count, Remaining);
        }
        return (int)count;
    }

    /// <summary>Reads the size of one tagged field and returns a sub-reader over exactly those bytes.</summary>
    public KafkaReader ReadTaggedFieldBody(out int size)
    {
        var raw = ReadUnsignedVarInt();
        if (raw > (uint)Remaining)
        {
            KafkaProtocolException.ThrowBadLength("tagged field", raw, Remaining);
        }
        size = (int)raw;
        var start = _position;
        Take(size);
        return _memory.IsEmpty
            ? new KafkaReader(_span.Slice(start, size))
            : new KafkaReader(_memory.Slice(start, size));
    }

    /// <summary>Raw bytes of a tagged field kept for re-encoding (round trip of unknown tags).</summary>
    public byte[] ReadRawBytes(int count) => Take(count).ToArray();

    /// <summary>Throws unless a tagged field's sub-reader consumed its payload exactly.</summary>
    public readonly void EnsureConsumed(string what)
    {
        if (_position != _span.Length)
        {
            KafkaProtocolException.Throw($"{what}: {_span.Length - _position} unexpected trailing byte(s).");
        }
    }
}
