using System.Text;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Tests.Faults;
using Switchback.Proxy.Tests.Integration;
using Xunit;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>The append-only state file behind producer-id mappings: durability, crash leftovers, corruption, rewrites.</summary>
public sealed class JsonLinesLogTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"switchback-log-{Guid.NewGuid():N}");
    private readonly CapturingLoggerProvider _logs = new();

    private string LogPath => Path.Combine(_directory, ProducerIdMapper.FileName);

    private JsonLinesLog<ProducerSegmentEntry> NewLog(int compactAfterLines = 100_000) =>
        new(LogPath, _logs.CreateLogger("test"), compactAfterLines);

    private static ProducerSegmentEntry Segment(long clientId, int partition, int baseSequence = 0) =>
        new(clientId, 0, "orders.events", partition, "orders", "target", 1, 9000 + clientId, 0, baseSequence);

    private static async Task AppendAsync(JsonLinesLog<ProducerSegmentEntry> log, ProducerSegmentEntry entry)
    {
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await log.AppendAsync(entry, durable);
        await durable.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Append_IsOnDiskWhenAcknowledged_AndReadsBackInOrder()
    {
        var appended = Enumerable.Range(0, 50).Select(i => Segment(i % 7, i % 3, i)).ToList();
        await using (var log = NewLog())
        {
            Assert.Empty(log.Load());
            log.Start([], () => []);
            Assert.True(log.IsDurable);
            await Task.WhenAll(appended.Take(25).Select(e => AppendAsync(log, e))); // concurrent: one group commit or several
            foreach (var entry in appended.Skip(25))
            {
                await AppendAsync(log, entry);
            }
            // Acknowledged means written: another reader sees every entry before the log is closed.
            Assert.Equal(50, File.ReadAllLines(LogPath).Length);
        }

        await using var reopened = NewLog();
        var read = reopened.Load();
        Assert.Equal(appended.Take(25).ToHashSet(), read.Take(25).ToHashSet());
        Assert.Equal(appended.Skip(25), read.Skip(25));
        Assert.DoesNotContain(_logs.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task Load_TornLastLine_IsSkippedWithAWarning_AndAppendsAfterItStayReadable()
    {
        await using (var log = NewLog())
        {
            log.Start([], () => []);
            await AppendAsync(log, Segment(1, 0));
            await AppendAsync(log, Segment(2, 1));
        }
        // The proxy died while appending a third line: half of it reached the disk (and, on some file systems, zeros).
        await File.AppendAllTextAsync(LogPath, "{\"producerId\":3,\"producerEpoch\":0,\"topic\":\"ord");
        await File.AppendAllTextAsync(LogPath, "\0\0\0\0");

        await using (var log = NewLog())
        {
            var read = log.Load();
            Assert.Equal([Segment(1, 0), Segment(2, 1)], read);
            var warning = Assert.Single(_logs.Entries, e => e.Level >= LogLevel.Warning);
            Assert.Equal((LogLevel.Warning, 4101), (warning.Level, warning.EventId));
            Assert.Contains("line 3", warning.Message, StringComparison.Ordinal);
            log.Start(read, () => []);
            await AppendAsync(log, Segment(4, 2));
        }

        await using var reopened = NewLog();
        Assert.Equal([Segment(1, 0), Segment(2, 1), Segment(4, 2)], reopened.Load());
        Assert.Single(_logs.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task Load_CorruptLines_LogAClearErrorKeepTheReadableEntriesAndTheFileAsFound()
    {
        Directory.CreateDirectory(_directory);
        var good = Encoding.UTF8.GetString(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(Segment(1, 0), new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web)));
        var lines = new[]
        {
            good,
            "this is not json",
            """{"producerId":2,"producerEpoch":0}""", // fields missing
            good.Replace("\"partition\":0", "\"partition\":1", StringComparison.Ordinal),
        };
        await File.WriteAllTextAsync(LogPath, string.Join('\n', lines) + "\n");

        await using var log = NewLog();
        var read = log.Load();

        Assert.Equal([Segment(1, 0), Segment(1, 1)], read);
        var error = Assert.Single(_logs.Entries, e => e.Level >= LogLevel.Warning);
        Assert.Equal((LogLevel.Error, 4102), (error.Level, error.EventId));
        Assert.Contains(LogPath, error.Message, StringComparison.Ordinal);
        Assert.Contains("2 unreadable line(s), the first at line 2", error.Message, StringComparison.Ordinal);
        Assert.Equal(string.Join('\n', lines) + "\n", await File.ReadAllTextAsync(LogPath + ".corrupt"));

        // The proxy starts with what could be read; the rewritten file holds only that.
        log.Start(read, () => []);
        await AppendAsync(log, Segment(3, 2));
        Assert.Equal(3, File.ReadAllLines(LogPath).Length);
    }

    [Fact]
    public async Task Load_FileOfGarbage_LogsAnErrorAndStartsEmpty()
    {
        Directory.CreateDirectory(_directory);
        await File.WriteAllBytesAsync(LogPath, [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 7 % 251 + 1))]);

        await using var log = NewLog();
        var read = log.Load();

        Assert.Empty(read);
        Assert.Contains(_logs.Entries, e => e.Level == LogLevel.Error && e.EventId == 4102);
    }

    [Fact]
    public async Task Append_PastTheThreshold_RewritesTheFileToTheLiveEntries()
    {
        var live = new List<ProducerSegmentEntry> { Segment(1, 0), Segment(2, 0) };
        await using (var log = NewLog(compactAfterLines: 5))
        {
            log.Start([], () => live.ToList());
            for (var i = 0; i < 6; i++)
            {
                await AppendAsync(log, Segment(100 + i, 0));
            }
            // The sixth append crossed the threshold: the file now holds what the owner reported live.
            // (The counter resets just after the rename, so both are awaited together.)
            Assert.True(await Poll.UntilAsync(() => File.ReadAllLines(LogPath).Length == 2 && log.LinesSinceRewrite == 0, TimeSpan.FromSeconds(5)));
            await AppendAsync(log, Segment(7, 1));
        }

        await using var reopened = NewLog();
        Assert.Equal([Segment(1, 0), Segment(2, 0), Segment(7, 1)], reopened.Load());
        Assert.False(File.Exists(LogPath + ".tmp"));
    }

    [Fact]
    public async Task Start_WhenTheFileCannotBeWritten_LogsAnErrorAndAcknowledgesAppendsFromMemory()
    {
        // A regular file where the state directory should be: nothing can be created under it.
        await File.WriteAllTextAsync(_directory, "not a directory");
        try
        {
            await using var log = NewLog();
            Assert.Empty(log.Load());
            log.Start([], () => []);

            Assert.False(log.IsDurable);
            var error = Assert.Single(_logs.Entries, e => e.Level >= LogLevel.Warning);
            Assert.Equal((LogLevel.Error, 4104), (error.Level, error.EventId));
            await AppendAsync(log, Segment(1, 0)); // acknowledged, not written
        }
        finally
        {
            File.Delete(_directory);
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
