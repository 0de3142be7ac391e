using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace Switchback.Proxy.Listening;

/// <summary>
/// The buffers of client connections: pinned blocks of <see cref="BlockSize"/> bytes instead of Kestrel's 4 KiB ones.
/// Kestrel receives into the rest of its current block, so the block size caps every receive: a 1 MiB Produce
/// request took 256 system calls with 4 KiB blocks and takes 32 with these. Idle connections hold no block (Kestrel
/// waits for data before it takes one), so the size costs memory only while bytes are in flight.
/// </summary>
public sealed class ClientBufferPool : MemoryPool<byte>
{
    public const int BlockSize = 32 * 1024;

    private readonly ConcurrentQueue<Block> _free = new();
    private readonly int _maxRetained;
    private int _retained;

    /// <param name="maxRetained">Blocks kept for reuse at most; beyond that a returned block is left to the GC.</param>
    public ClientBufferPool(int maxRetained = 2048) => _maxRetained = maxRetained;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_free.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _retained);
            return block;
        }
        return new Block(this);
    }

    private void Return(Block block)
    {
        if (Interlocked.Increment(ref _retained) <= _maxRetained)
        {
            _free.Enqueue(block);
        }
        else
        {
            Interlocked.Decrement(ref _retained);
        }
    }

    protected override void Dispose(bool disposing)
    {
        _free.Clear();
    }

    /// <summary>One pinned block; disposing it hands it back to the pool (Kestrel disposes each block once).</summary>
    private sealed class Block(ClientBufferPool pool) : IMemoryOwner<byte>
    {
        // Pinned, so socket operations need no pinning of their own.
        public Memory<byte> Memory { get; } = MemoryMarshal.CreateFromPinnedArray(GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true), 0, BlockSize);

        public void Dispose() => pool.Return(this);
    }

    /// <summary>Registered in place of Kestrel's factory, so the socket transport's pipes use these blocks.</summary>
    public sealed class Factory : IMemoryPoolFactory<byte>
    {
        public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new ClientBufferPool();
    }
}
