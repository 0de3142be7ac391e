using Switchback.Proxy.Listening;
using Xunit;

namespace Switchback.Proxy.Tests.Listening;

public sealed class ClientBufferPoolTests
{
    [Fact]
    public void Rent_GivesWholeBlocks_AndReusesReturnedOnes()
    {
        using var pool = new ClientBufferPool();
        var first = pool.Rent(100);
        Assert.Equal(ClientBufferPool.BlockSize, first.Memory.Length);
        var memory = first.Memory;
        first.Dispose();
        using var second = pool.Rent();
        Assert.True(second.Memory.Span == memory.Span, "a returned block is handed out again");
    }

    [Fact]
    public void Rent_LargerThanABlock_IsRefused()
    {
        using var pool = new ClientBufferPool();
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(ClientBufferPool.BlockSize + 1));
    }

    [Fact]
    public void ReturnedBlocks_BeyondTheRetainedBound_AreNotKept()
    {
        using var pool = new ClientBufferPool(maxRetained: 2);
        var rented = Enumerable.Range(0, 4).Select(_ => pool.Rent()).ToList();
        var memories = rented.Select(r => r.Memory).ToList();
        rented.ForEach(r => r.Dispose());
        // Only the first two returned are kept; the next rents after those are new blocks.
        var again = Enumerable.Range(0, 4).Select(_ => pool.Rent()).ToList();
        var reused = again.Count(a => memories.Any(m => a.Memory.Span == m.Span));
        Assert.Equal(2, reused);
    }
}
