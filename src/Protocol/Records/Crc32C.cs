using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Switchback.Protocol.Records;

/// <summary>CRC-32C (Castagnoli), the checksum of magic-2 record batches, computed with the CPU's CRC instructions.</summary>
public static class Crc32C
{
    // The CRC instruction has a latency of about three cycles but a throughput of one per cycle, so a single
    // dependency chain leaves two thirds of it idle. Large inputs are checksummed as three interleaved streams whose
    // results are merged by "shifting" a CRC over a block of zeros, a linear map precomputed as byte tables.
    private const int LongBlock = 4096;
    private const int ShortBlock = 256;

    private static readonly uint[] LongShift = BuildShiftTable(LongBlock);
    private static readonly uint[] ShortShift = BuildShiftTable(ShortBlock);

    /// <summary>CRC-32C of <paramref name="data"/> (initial value and final xor 0xFFFFFFFF, as in RFC 3720 and Kafka).</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(uint.MaxValue, data);

    /// <summary>
    /// Advances a raw (non-inverted) CRC state over <paramref name="data"/>; lets a caller checksum
    /// non-contiguous pieces: <c>~Update(Update(~0u, a), b)</c> equals <c>Compute(a ++ b)</c>.
    /// </summary>
    public static uint Update(uint state, ReadOnlySpan<byte> data)
    {
        ref var start = ref MemoryMarshal.GetReference(data);
        var length = data.Length;
        var offset = 0;

        while (length - offset >= 3 * LongBlock)
        {
            state = UpdateInterleaved(state, ref start, offset, LongBlock, LongShift);
            offset += 3 * LongBlock;
        }
        while (length - offset >= 3 * ShortBlock)
        {
            state = UpdateInterleaved(state, ref start, offset, ShortBlock, ShortShift);
            offset += 3 * ShortBlock;
        }
        for (; length - offset >= 8; offset += 8)
        {
            state = BitOperations.Crc32C(state, ReadUInt64(ref start, offset));
        }
        for (; offset < length; offset++)
        {
            state = BitOperations.Crc32C(state, Unsafe.Add(ref start, offset));
        }
        return state;
    }

    /// <summary>Three streams over consecutive blocks, merged as CRC(a ++ b ++ c) = shift(shift(a) ^ b) ^ c.</summary>
    private static uint UpdateInterleaved(uint state, ref byte start, int offset, int block, uint[] shift)
    {
        uint a = state, b = 0, c = 0;
        for (var i = offset; i < offset + block; i += 8)
        {
            a = BitOperations.Crc32C(a, ReadUInt64(ref start, i));
            b = BitOperations.Crc32C(b, ReadUInt64(ref start, i + block));
            c = BitOperations.Crc32C(c, ReadUInt64(ref start, i + 2 * block));
        }
        return Shift(Shift(a, shift) ^ b, shift) ^ c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Shift(uint crc, uint[] table) =>
        table[(byte)crc] ^ table[256 + (byte)(crc >> 8)] ^ table[512 + (byte)(crc >> 16)] ^ table[768 + (crc >> 24)];

    /// <summary>
    /// Tables of the linear map "advance a raw CRC over <paramref name="zeroBytes"/> zero bytes", one 256-entry table
    /// per byte of the CRC so that the map is four lookups.
    /// </summary>
    private static uint[] BuildShiftTable(int zeroBytes)
    {
        Span<uint> basis = stackalloc uint[32];
        for (var bit = 0; bit < 32; bit++)
        {
            var crc = 1u << bit;
            for (var i = 0; i < zeroBytes; i += 8)
            {
                crc = BitOperations.Crc32C(crc, 0UL);
            }
            basis[bit] = crc;
        }
        var table = new uint[4 * 256];
        for (var lane = 0; lane < 4; lane++)
        {
            for (var value = 0; value < 256; value++)
            {
                uint shifted = 0;
                for (var bit = 0; bit < 8; bit++)
                {
                    if ((value & (1 << bit)) != 0)
                    {
                        shifted ^= basis[lane * 8 + bit];
                    }
                }
                table[lane * 256 + value] = shifted;
            }
        }
        return table;
    }

    // The CRC instruction consumes the low byte first, i.e. memory order on a little-endian load.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadUInt64(ref byte start, int offset)
    {
        var value = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, offset));
        return BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
    }
}
