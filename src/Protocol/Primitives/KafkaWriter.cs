using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace Switchback.Protocol;

/// <summary>
/// Forward-only writer of Kafka primitive types into a span sized beforehand with <see cref="KafkaSize"/>.
/// Writing past the end is a programming error (the size calculation and the writer disagree).
/// </summary>
public ref struct KafkaWriter
{
    private readonly Span<byte> _span;
    private int _position;

    public KafkaWriter(Span<byte> destination)
    {
        _span = destination;
        _position = 0;
    }

    public readonly int Position => _position;
    public readonly Span<byte> Written => _span[.._position];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Span<byte> Advance(int count)
    {
        if ((uint)count > (uint)(_span.Length - _position))
        {
            ThrowOverflow(count);
        }
        var slice = _span.Slice(_position, count);
        _position += count;
        return slice;
    }

    private readonly void ThrowOverflow(int count) =>
        throw new InvalidOperationException($"Writer overflow: {count} byte(s) wanted, {_span.Length - _position} left; size and write disagree.");

    public void WriteInt8(sbyte value) => Advance(1)[0] = (byte)value;
    public void WriteBoolean(bool value) => Advance(1)[0] = value ? (byte)1 : (byte)0;
    public void WriteInt16(short value) => BinaryPrimitives.WriteInt16BigEndian(Advance(2), value);
    public void WriteUInt16(ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Advance(2), value);
    public void WriteInt32(int value) => BinaryPrimitives.WriteInt32BigEndian(Advance(4), value);
    public void WriteUInt32(uint value) => BinaryPrimitives.WriteUInt32BigEndian(Advance(4), value);
    public void WriteInt64(long value) => BinaryPrimitives.WriteInt64BigEndian(Advance(8), value);
    public void WriteFloat64(double value) => BinaryPrimitives.WriteDoubleBigEndian(Advance(8), value);
    public void WriteUuid(Guid value) => value.TryWriteBytes(Advance(16), bigEndian: true, out _);

    public void WriteUnsignedVarInt(uint value)
    {
        while (value >= 0x80)
        {
            Advance(1)[0] = (byte)(value | 0x80);
            value >>= 7;
        }
        Advance(1)[0] = (byte)value;
    }

    public void WriteUnsignedVarLong(ulong value)
    {
        while (value >= 0x80)
        {
            Advance(1)[0] = (byte)(value | 0x80);
            value >>= 7;
        }
        Advance(1)[0] = (byte)value;
    }

    public void WriteVarInt(int value) => WriteUnsignedVarInt((uint)((value << 1) ^ (value >> 31)));
    public void WriteVarLong(long value) => WriteUnsignedVarLong((ulong)((value << 1) ^ (value >> 63)));

    public void WriteRaw(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Advance(bytes.Length));

    public void WriteNullableString(string? value, bool flexible)
    {
        if (value is null)
        {
            if (flexible)
            {
                WriteUnsignedVarInt(0);
            }
            else
            {
                WriteInt16(-1);
            }
            return;
        }
        WriteString(value, flexible);
    }

    public void WriteString(string value, bool flexible)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        if (flexible)
        {
            WriteUnsignedVarInt((uint)length + 1);
        }
        else
        {
            if (length > short.MaxValue)
            {
                throw new InvalidOperationException($"String of {length} bytes does not fit a non-flexible string field.");
            }
            WriteInt16((short)length);
        }
        Encoding.UTF8.GetBytes(value, Advance(length));
    }

    /// <summary>A string field from raw UTF-8 bytes (used when relaying names without decoding them).</summary>
    public void WriteStringBytes(ReadOnlySpan<byte> utf8, bool flexible)
    {
        if (flexible)
        {
            WriteUnsignedVarInt((uint)utf8.Length + 1);
        }
        else
        {
            WriteInt16((short)utf8.Length);
        }
        WriteRaw(utf8);
    }

    public void WriteNullableBytes(ReadOnlyMemory<byte>? value, bool flexible)
    {
        if (value is null)
        {
            if (flexible)
            {
                WriteUnsignedVarInt(0);
            }
            else
            {
                WriteInt32(-1);
            }
            return;
        }
        WriteBytes(value.Value.Span, flexible);
    }

    public void WriteBytes(ReadOnlySpan<byte> value, bool flexible)
    {
        if (flexible)
        {
            WriteUnsignedVarInt((uint)value.Length + 1);
        }
        else
        {
            WriteInt32(value.Length);
        }
        WriteRaw(value);
    }

    public void WriteRecords(ReadOnlyMemory<byte>? value, bool flexible) => WriteNullableBytes(value, flexible);

    /// <summary>Writes an array length; -1 for null.</summary>
    public void WriteArrayLength(int count, bool flexible)
    {
        if (flexible)
        {
            WriteUnsignedVarInt((uint)(count + 1));
        }
        else
        {
            WriteInt32(count);
        }
    }
}

/// <summary>Encoded sizes of Kafka primitives, used to size a frame before writing it.</summary>
public static class KafkaSize
{
    public static int UnsignedVarInt(uint value) => value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x20_0000 ? 3 : value < 0x1000_0000 ? 4 : 5;

    public static int UnsignedVarLong(ulong value)
    {
        var size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }
        return size;
    }

    public static int VarInt(int value) => UnsignedVarInt((uint)((value << 1) ^ (value >> 31)));
    public static int VarLong(long value) => UnsignedVarLong((ulong)((value << 1) ^ (value >> 63)));

    public static int NullableString(string? value, bool flexible) =>
        value is null ? (flexible ? 1 : 2) : String(value, flexible);

    public static int String(string value, bool flexible)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        return (flexible ? UnsignedVarInt((uint)length + 1) : 2) + length;
    }

    public static int StringBytes(int utf8Length, bool flexible) =>
        (flexible ? UnsignedVarInt((uint)utf8Length + 1) : 2) + utf8Length;

    public static int NullableBytes(ReadOnlyMemory<byte>? value, bool flexible) =>
        value is null ? (flexible ? 1 : 4) : Bytes(value.Value.Length, flexible);

    public static int Bytes(int length, bool flexible) =>
        (flexible ? UnsignedVarInt((uint)length + 1) : 4) + length;

    public static int ArrayLength(int count, bool flexible) =>
        flexible ? UnsignedVarInt((uint)(count + 1)) : 4;
}
