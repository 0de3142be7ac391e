using CsCheck;

namespace Switchback.Protocol.Tests.Primitives;

/// <summary>Property tests: every primitive written by <see cref="KafkaWriter"/> reads back identically and takes exactly <see cref="KafkaSize"/> bytes.</summary>
public class PrimitiveRoundTripTests
{
    private delegate void Write(ref KafkaWriter writer);

    private static byte[] WriteExact(int size, Write write)
    {
        var buffer = new byte[size];
        var writer = new KafkaWriter(buffer);
        write(ref writer);
        Assert.Equal(size, writer.Position);
        return buffer;
    }

    private static readonly Gen<string?> NullableString = Gen.Select(Gen.Bool, Gen.String, (isNull, s) => isNull ? null : s);

    [Fact]
    public void UnsignedVarInt_RoundTrips_WithKafkaSize() =>
        Gen.UInt.Sample(value =>
        {
            var bytes = WriteExact(KafkaSize.UnsignedVarInt(value), (ref KafkaWriter w) => w.WriteUnsignedVarInt(value));
            var reader = new KafkaReader(bytes);
            Assert.Equal(value, reader.ReadUnsignedVarInt());
            Assert.True(reader.End);
        });

    [Fact]
    public void UnsignedVarLong_RoundTrips_WithKafkaSize() =>
        Gen.ULong.Sample(value =>
        {
            var bytes = WriteExact(KafkaSize.UnsignedVarLong(value), (ref KafkaWriter w) => w.WriteUnsignedVarLong(value));
            var reader = new KafkaReader(bytes);
            Assert.Equal(value, reader.ReadUnsignedVarLong());
            Assert.True(reader.End);
        });

    [Fact]
    public void VarInt_RoundTrips_WithKafkaSize() =>
        Gen.Int.Sample(value =>
        {
            var bytes = WriteExact(KafkaSize.VarInt(value), (ref KafkaWriter w) => w.WriteVarInt(value));
            var reader = new KafkaReader(bytes);
            Assert.Equal(value, reader.ReadVarInt());
            Assert.True(reader.End);
        });

    [Fact]
    public void VarLong_RoundTrips_WithKafkaSize() =>
        Gen.Long.Sample(value =>
        {
            var bytes = WriteExact(KafkaSize.VarLong(value), (ref KafkaWriter w) => w.WriteVarLong(value));
            var reader = new KafkaReader(bytes);
            Assert.Equal(value, reader.ReadVarLong());
            Assert.True(reader.End);
        });

    [Theory]
    [InlineData(0, 1)]
    [InlineData(-1, 1)]
    [InlineData(63, 1)]
    [InlineData(-64, 1)]
    [InlineData(64, 2)]
    [InlineData(int.MaxValue, 5)]
    [InlineData(int.MinValue, 5)]
    public void VarInt_ZigZagSizes_MatchTheProtocolGuide(int value, int size) => Assert.Equal(size, KafkaSize.VarInt(value));

    [Fact]
    public void FixedWidthIntegers_RoundTrip() =>
        Gen.Select(Gen.SByte, Gen.Short, Gen.Int, Gen.Long, Gen.UInt).Sample((i8, i16, i32, i64, u32) =>
        {
            var bytes = WriteExact(19, (ref KafkaWriter w) =>
            {
                w.WriteInt8(i8);
                w.WriteInt16(i16);
                w.WriteInt32(i32);
                w.WriteInt64(i64);
                w.WriteUInt32(u32);
            });
            var r = new KafkaReader(bytes);
            Assert.Equal((i8, i16, i32, i64, u32), (r.ReadInt8(), r.ReadInt16(), r.ReadInt32(), r.ReadInt64(), r.ReadUInt32()));
        });

    [Fact]
    public void Uuid_RoundTrips_BigEndian() =>
        Gen.Guid.Sample(value =>
        {
            var bytes = WriteExact(16, (ref KafkaWriter w) => w.WriteUuid(value));
            Assert.Equal(value.ToByteArray(bigEndian: true), bytes);
            Assert.Equal(value, new KafkaReader(bytes).ReadUuid());
        });

    [Fact]
    public void NullableString_RoundTrips_InBothEncodings() =>
        Gen.Select(NullableString, Gen.Bool).Sample((value, flexible) =>
        {
            var bytes = WriteExact(KafkaSize.NullableString(value, flexible), (ref KafkaWriter w) => w.WriteNullableString(value, flexible));
            var reader = new KafkaReader(bytes);
            Assert.Equal(value, reader.ReadNullableString(flexible));
            Assert.True(reader.End);

            var spanReader = new KafkaReader(bytes);
            var span = spanReader.ReadStringSpan(flexible, out var isNull);
            Assert.Equal(value is null, isNull);
            Assert.Equal(value ?? "", System.Text.Encoding.UTF8.GetString(span));
        });

    [Fact]
    public void String_RoundTrips_AndStringBytesEncodesTheSame() =>
        Gen.Select(Gen.String, Gen.Bool).Sample((value, flexible) =>
        {
            var bytes = WriteExact(KafkaSize.String(value, flexible), (ref KafkaWriter w) => w.WriteString(value, flexible));
            Assert.Equal(value, new KafkaReader(bytes).ReadString(flexible));
            var utf8 = System.Text.Encoding.UTF8.GetBytes(value);
            var raw = WriteExact(KafkaSize.StringBytes(utf8.Length, flexible), (ref KafkaWriter w) => w.WriteStringBytes(utf8, flexible));
            Assert.Equal(bytes, raw);
        });

    [Fact]
    public void NullableBytes_RoundTrip_AsSlicesOfTheFrame() =>
        Gen.Select(Gen.Byte.Array[0, 300], Gen.Bool, Gen.Bool).Sample((data, isNull, flexible) =>
        {
            // Not a conditional: null would convert to an empty ReadOnlyMemory through the array conversion.
            ReadOnlyMemory<byte>? value = null;
            if (!isNull)
            {
                value = data;
            }
            var bytes = WriteExact(KafkaSize.NullableBytes(value, flexible), (ref KafkaWriter w) => w.WriteNullableBytes(value, flexible));
            var read = new KafkaReader(bytes.AsMemory()).ReadNullableBytes(flexible);
            Assert.Equal(isNull, read is null);
            Assert.Equal(isNull ? [] : data, read?.ToArray() ?? []);

            var spanReader = new KafkaReader(bytes);
            var span = spanReader.ReadBytesSpan(flexible, out var spanNull);
            Assert.Equal(isNull, spanNull);
            Assert.Equal(isNull ? [] : data, span.ToArray());
        });

    [Fact]
    public void ArrayLength_RoundTrips_WhenElementsFollow() =>
        Gen.Select(Gen.Int[-1, 500], Gen.Bool).Sample((count, flexible) =>
        {
            var prefix = KafkaSize.ArrayLength(count, flexible);
            var bytes = WriteExact(prefix + Math.Max(0, count), (ref KafkaWriter w) =>
            {
                w.WriteArrayLength(count, flexible);
                w.WriteRaw(new byte[Math.Max(0, count)]);
            });
            Assert.Equal(count, new KafkaReader(bytes).ReadArrayLength(flexible));
        });

    [Fact]
    public void ArrayLength_LargerThanRemainingBytes_Throws() =>
        Gen.Select(Gen.Int[1, 1000], Gen.Bool).Sample((count, flexible) =>
        {
            var bytes = WriteExact(KafkaSize.ArrayLength(count, flexible), (ref KafkaWriter w) => w.WriteArrayLength(count, flexible));
            Assert.Throws<KafkaProtocolException>(() => new KafkaReader(bytes).ReadArrayLength(flexible));
        });

    [Fact]
    public void UnsignedVarInt_Overlong_Throws()
    {
        Assert.Throws<KafkaProtocolException>(() => new KafkaReader(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 }).ReadUnsignedVarInt());
        Assert.Throws<KafkaProtocolException>(() => new KafkaReader(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x1F }).ReadUnsignedVarInt());
    }
}
