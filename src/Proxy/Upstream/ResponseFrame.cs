using System.Buffers;

namespace Switchback.Proxy.Upstream;

/// <summary>
/// One complete Kafka frame (without its size prefix) in a pooled buffer. The owner disposes it once the bytes have
/// been written onward; the buffer goes back to the pool.
/// </summary>
public sealed class PooledFrame : IDisposable
{
    private byte[]? _buffer;

    private PooledFrame(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    public int Length { get; }

    public Memory<byte> Memory => _buffer is { } buffer ? buffer.AsMemory(0, Length) : throw new ObjectDisposedException(nameof(PooledFrame));
    public Span<byte> Span => Memory.Span;

    // A pool of its own, bounded: the shared pool keeps per-core stacks of every size it has seen, so a burst of
    // large Produce requests would stay resident. Frames above the largest bucket are allocated and left to the GC.
    private static readonly ArrayPool<byte> Pool = ArrayPool<byte>.Create(maxArrayLength: 1024 * 1024, maxArraysPerBucket: 16);

    public static PooledFrame Rent(int length) => new(Pool.Rent(Math.Max(length, 16)), length);

    public static PooledFrame CopyOf(in ReadOnlySequence<byte> bytes)
    {
        var frame = Rent((int)bytes.Length);
        bytes.CopyTo(frame._buffer);
        return frame;
    }

    public static PooledFrame CopyOf(ReadOnlySpan<byte> bytes)
    {
        var frame = Rent(bytes.Length);
        bytes.CopyTo(frame._buffer);
        return frame;
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null)
        {
            Pool.Return(buffer);
        }
    }
}
