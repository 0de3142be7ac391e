using System.Buffers;
using System.Buffers.Binary;

namespace Switchback.Protocol;

/// <summary>
/// Splits a byte stream into Kafka frames (int32 big-endian size, then that many bytes). Never consumes a
/// partial frame; rejects negative, empty and oversized sizes before buffering them.
/// </summary>
public static class FrameReader
{
    /// <summary>The smallest valid frame body: a response header v0 (correlation id).</summary>
    public const int MinFrameSize = 4;

    /// <summary>
    /// Tries to take one complete frame (without its size prefix) from the start of <paramref name="buffer"/>.
    /// On success, <paramref name="buffer"/> is advanced past the frame.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxFrameSize, out ReadOnlySequence<byte> frame)
    {
        if (buffer.Length < 4)
        {
            frame = default;
            return false;
        }
        var size = ReadSize(buffer);
        if (size < MinFrameSize || size > maxFrameSize)
        {
            ThrowBadSize(size, maxFrameSize);
        }
        if (buffer.Length - 4 < size)
        {
            frame = default;
            return false;
        }
        frame = buffer.Slice(4, size);
        buffer = buffer.Slice(frame.End);
        return true;
    }

    /// <summary>Size of the frame starting the buffer, or -1 when fewer than 4 bytes are buffered.</summary>
    public static int PeekSize(in ReadOnlySequence<byte> buffer) => buffer.Length < 4 ? -1 : ReadSize(buffer);

    private static int ReadSize(in ReadOnlySequence<byte> buffer)
    {
        var first = buffer.FirstSpan;
        if (first.Length >= 4)
        {
            return BinaryPrimitives.ReadInt32BigEndian(first);
        }
        Span<byte> prefix = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(prefix);
        return BinaryPrimitives.ReadInt32BigEndian(prefix);
    }

    private static void ThrowBadSize(int size, int maxFrameSize) =>
        throw new KafkaProtocolException(size < MinFrameSize
            ? $"Invalid frame size {size}."
            : $"Frame size {size} exceeds the limit of {maxFrameSize} bytes.");
}
