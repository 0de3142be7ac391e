using Switchback.Proxy.Window;
using Xunit;

namespace Switchback.Proxy.Tests.Window;

public sealed class MirrorProgressStoreTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"switchback-mirror-store-{Guid.NewGuid():N}");

    [Fact]
    public void Progress_RoundTrips_AndIsForgottenWhenDeleted()
    {
        var store = new MirrorProgressStore(_directory);
        var progress = MirrorProgress.Initial("orders", "target", "source", DateTimeOffset.UnixEpoch.AddDays(20000), [("orders.b", 1, 5, 7), ("orders.a", 0, 10, 12)]) with
        {
            FirstDivergence = new DivergentCopy("orders.a", 0, 14, 13),
        };
        store.Save(progress);
        store.Save(progress with { Partitions = [.. progress.Partitions.Select(p => p with { Next = p.Next + 3, OldEnd = p.OldEnd + 3, Copied = 3 })] });

        var loaded = store.Load("orders");
        Assert.NotNull(loaded);
        Assert.Equal(["orders.a", "orders.b"], loaded.Partitions.Select(p => p.Topic));
        Assert.Equal(new PartitionProgress("orders.a", 0, 10, 13, 12, 15, 3, 0), loaded.Partitions[0]);
        Assert.Equal(progress.FirstDivergence, loaded.FirstDivergence);
        Assert.Equal(progress.StartedAt, loaded.StartedAt);
        Assert.False(File.Exists(store.PathOf("orders") + ".tmp"));

        store.Delete("orders");
        Assert.Null(store.Load("orders"));
        Assert.Empty(store.LoadAll());
    }

    [Fact]
    public void FamilyNames_CannotLeaveTheFolder()
    {
        var store = new MirrorProgressStore(_directory);
        foreach (var family in new[] { "../escape", "a/b", "..", "with space" })
        {
            var path = store.PathOf(family);
            Assert.Equal(store.Directory, Path.GetDirectoryName(path));
            store.Save(MirrorProgress.Initial(family, "target", "source", DateTimeOffset.UnixEpoch, [("t", 0, 0, 0)]));
            Assert.Equal(family, store.Load(family)?.Family);
        }
        Assert.Equal(4, store.LoadAll().Count);
    }

    [Fact]
    public void AnUnreadableFile_IsReportedNotThrown_ByLoadAll()
    {
        var store = new MirrorProgressStore(_directory);
        store.Save(MirrorProgress.Initial("good", "target", "source", DateTimeOffset.UnixEpoch, [("t", 0, 0, 0)]));
        File.WriteAllText(store.PathOf("bad"), "{\"version\":1,");

        var all = store.LoadAll();
        Assert.Equal("good", Assert.Single(all, e => e.Progress is not null).Progress!.Family);
        Assert.Contains("not readable mirror progress", Assert.Single(all, e => e.Progress is null).Error);
        Assert.Throws<InvalidDataException>(() => store.Load("bad"));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
