using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Switchback.Protocol.Records;

/// <summary>CRC-32C (Castagnoli), the checksum of magic-2 record batches, computed with the CPU's CRC instructions.</summary>
public static class Crc32C
{
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

        // Four independent loads per iteration keep the loop overhead off the CRC instruction's critical path.
        for (; length - offset >= 32; offset += 32)
        {
            state = BitOperations.Crc32C(state, ReadUInt64(ref start, offset));
            state = BitOperations.Crc32C(state, ReadUInt64(ref start, offset + 8));
            state = BitOperations.Crc32C(state, ReadUInt64(ref start, offset + 16));
            state = BitOperations.Crc32C(state, ReadUInt64(ref start, offset + 24));
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

    // The CRC instruction consumes the low byte first, i.e. memory order on a little-endian load.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadUInt64(ref byte start, int offset)
    {
        var value = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, offset));
        return BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
    }
}
