using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Switchback.Proxy.Switching;

/// <summary>
/// An append-only JSON Lines file in the state directory whose appends are on disk before they are acknowledged.
/// Callers queue an entry with a completion source; one background writer writes whatever is queued, flushes it to
/// disk once for the whole group and then completes the sources, so the request path awaits durability without
/// ever blocking a thread on the disk. The file is rewritten whole (temporary file, fsync, rename) at start and
/// whenever it has grown well past the live entries its owner reports.
/// </summary>
/// <remarks>
/// Owners publish an entry in memory before queueing it: a rewrite then takes the owner's live entries, which
/// include everything already written, and entries still queued are appended after it, so a rewrite never drops one.
/// A failure to write is logged and the entry acknowledged anyway: the proxy keeps serving, with the state only in
/// memory, as before durable state existed.
/// </remarks>
public sealed class JsonLinesLog<TEntry> : IAsyncDisposable where TEntry : class
{
    private const int QueueCapacity = 4096;
    private const int MaxGroup = 1024;
    private static readonly byte[] NewLine = [(byte)'\n'];

    private static readonly JsonSerializerOptions Options = new(StateJson.Options)
    {
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    /// <summary>Serializes a sample entry and throws the bytes away: builds the serializer's metadata ahead of the first append that a request waits for.</summary>
    public static void WarmSerializer(TEntry sample) => JsonSerializer.SerializeToUtf8Bytes(sample, Options);

    private readonly string _path;
    private readonly ILogger _logger;
    private readonly int _compactAfterLines;
    private readonly Channel<Pending> _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(QueueCapacity)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });
    private Func<IEnumerable<TEntry>> _live = static () => [];
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _handle;
    private long _length;
    private bool _needsNewLine;
    private long _linesSinceRewrite;
    private long _liveAtRewrite;
    private Task? _writer;
    private int _disposed;

    /// <param name="path">The log file; its directory is created when missing.</param>
    /// <param name="logger">Where unreadable lines and write failures are reported.</param>
    /// <param name="compactAfterLines">Appended lines after which the file is rewritten (at least as many as were live at the last rewrite).</param>
    public JsonLinesLog(string path, ILogger logger, int compactAfterLines = 100_000)
    {
        _path = Path.GetFullPath(path);
        _logger = logger;
        _compactAfterLines = compactAfterLines;
    }

    public string FilePath => _path;

    /// <summary>True once <see cref="Start"/> has opened the file for appending; false when appends are kept in memory only.</summary>
    public bool IsDurable => _handle is not null;

    /// <summary>Entries appended since the last rewrite (for tests and diagnostics).</summary>
    public long LinesSinceRewrite => Interlocked.Read(ref _linesSinceRewrite);

    /// <summary>
    /// Every readable entry, in file order. A last line cut short by a crash is skipped with a warning; any other
    /// unreadable line is skipped with an error and the file is copied to <c>.corrupt</c> beside it for inspection.
    /// </summary>
    public List<TEntry> Load()
    {
        var entries = new List<TEntry>();
        byte[] bytes;
        try
        {
            if (!File.Exists(_path))
            {
                return entries;
            }
            bytes = File.ReadAllBytes(_path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            StateFileLog.Unreadable(_logger, _path, e.Message);
            return entries;
        }
        var rest = bytes.AsSpan();
        var lineNumber = 0;
        var corrupt = 0;
        var firstCorrupt = 0;
        string? firstError = null;
        while (!rest.IsEmpty)
        {
            lineNumber++;
            var end = rest.IndexOf((byte)'\n');
            var line = end < 0 ? rest : rest[..end];
            rest = end < 0 ? default : rest[(end + 1)..];
            if (IsBlank(line))
            {
                continue;
            }
            try
            {
                entries.Add(JsonSerializer.Deserialize<TEntry>(line, Options) ?? throw new JsonException("null entry"));
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
            {
                if (IsBlank(rest))
                {
                    // Only the last line: an append the crash cut short, never acknowledged to anyone.
                    StateFileLog.TornLastLine(_logger, _path, lineNumber);
                }
                else if (corrupt++ == 0)
                {
                    firstCorrupt = lineNumber;
                    firstError = e.Message;
                }
            }
        }
        if (corrupt > 0)
        {
            var copy = _path + ".corrupt";
            try
            {
                File.Copy(_path, copy, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                copy = $"(not kept: {e.Message})";
            }
            StateFileLog.Corrupt(_logger, _path, corrupt, firstCorrupt, firstError!, entries.Count, copy);
        }
        return entries;
    }

    /// <summary>
    /// Replaces the file with <paramref name="entries"/> and starts appending. <paramref name="live"/> gives the
    /// owner's live entries whenever the file is rewritten later. When the file cannot be written, the error is
    /// logged and appends are acknowledged without being written.
    /// </summary>
    public void Start(IReadOnlyCollection<TEntry> entries, Func<IEnumerable<TEntry>> live)
    {
        _live = live;
        try
        {
            Rewrite(entries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            StateFileLog.WriteFailed(_logger, _path, e.Message);
            _handle?.Dispose();
            _handle = null;
            return;
        }
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>
    /// Queues an entry; <paramref name="durable"/> completes once it is on disk (or could not be written, which is
    /// logged). Waits, asynchronously, only while the queue is full.
    /// </summary>
    public ValueTask AppendAsync(TEntry entry, TaskCompletionSource durable)
    {
        if (_writer is null)
        {
            durable.TrySetResult();
            return default;
        }
        var pending = new Pending(entry, durable);
        return _queue.Writer.TryWrite(pending) ? default : QueueAsync(pending);
    }

    private async ValueTask QueueAsync(Pending pending)
    {
        try
        {
            await _queue.Writer.WriteAsync(pending).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            pending.Durable.TrySetResult(); // shutting down: nothing more is written
        }
    }

    private async Task WriteLoopAsync()
    {
        var reader = _queue.Reader;
        var group = new List<Pending>(MaxGroup);
        var buffer = new ArrayBufferWriter<byte>();
        using var json = new Utf8JsonWriter(buffer);
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            while (group.Count < MaxGroup && reader.TryRead(out var pending))
            {
                group.Add(pending);
            }
            try
            {
                buffer.ResetWrittenCount();
                if (_needsNewLine)
                {
                    buffer.Write(NewLine); // end whatever a failed write may have left half written
                }
                foreach (var pending in group)
                {
                    json.Reset(buffer);
                    JsonSerializer.Serialize(json, pending.Entry, Options);
                    json.Flush();
                    buffer.Write(NewLine);
                }
                await RandomAccess.WriteAsync(_handle!, buffer.WrittenMemory, _length).ConfigureAwait(false);
                _length += buffer.WrittenCount;
                // No asynchronous fsync exists; this writer is the only thread that ever waits for the disk.
                RandomAccess.FlushToDisk(_handle!);
                _needsNewLine = false;
                Interlocked.Add(ref _linesSinceRewrite, group.Count);
            }
            catch (Exception e)
            {
                StateFileLog.WriteFailed(_logger, _path, e.Message);
                _needsNewLine = true;
                try
                {
                    _length = RandomAccess.GetLength(_handle!);
                }
                catch (Exception)
                {
                    // Keep the last known length; the next write reports its own failure.
                }
            }
            foreach (var pending in group)
            {
                pending.Durable.TrySetResult();
            }
            if (_linesSinceRewrite > Math.Max(_compactAfterLines, _liveAtRewrite))
            {
                try
                {
                    Rewrite([.. _live()]);
                }
                catch (Exception e)
                {
                    StateFileLog.WriteFailed(_logger, _path, $"rewriting it failed: {e.Message}");
                    Interlocked.Exchange(ref _linesSinceRewrite, 0);
                    try
                    {
                        // Go on appending to the file as it was.
                        _handle ??= File.OpenHandle(_path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, FileOptions.Asynchronous);
                        _length = RandomAccess.GetLength(_handle);
                    }
                    catch (Exception reopen)
                    {
                        StateFileLog.WriteFailed(_logger, _path, reopen.Message); // each later write reports its failure too
                    }
                }
            }
        }
    }

    /// <summary>Writes the entries to a temporary file, flushes it, renames it over the log and reopens it for appending.</summary>
    private void Rewrite(IReadOnlyCollection<TEntry> entries)
    {
        var directory = Path.GetDirectoryName(_path)!;
        Directory.CreateDirectory(directory);
        var temporary = _path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 64 * 1024))
        {
            using var json = new Utf8JsonWriter(stream);
            foreach (var entry in entries)
            {
                json.Reset(stream);
                JsonSerializer.Serialize(json, entry, Options);
                json.Flush();
                stream.Write(NewLine);
            }
            stream.Flush(flushToDisk: true);
        }
        _handle?.Dispose();
        _handle = null;
        File.Move(temporary, _path, overwrite: true);
        RouteStore.FlushDirectory(directory);
        _handle = File.OpenHandle(_path, FileMode.Open, FileAccess.Write, FileShare.Read, FileOptions.Asynchronous);
        _length = RandomAccess.GetLength(_handle);
        _needsNewLine = false;
        Interlocked.Exchange(ref _linesSinceRewrite, 0);
        _liveAtRewrite = entries.Count;
    }

    private static bool IsBlank(ReadOnlySpan<byte> line)
    {
        foreach (var b in line)
        {
            // NUL: a file system may leave a crashed append's extent zero-filled.
            if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or 0))
            {
                return false;
            }
        }
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        _queue.Writer.TryComplete();
        if (_writer is not null)
        {
            await _writer.ConfigureAwait(false);
        }
        _handle?.Dispose();
    }

    private readonly record struct Pending(TEntry Entry, TaskCompletionSource Durable);
}

/// <summary>Log messages of the durable state files.</summary>
internal static partial class StateFileLog
{
    [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "State file {Path}: line {Line} was cut short (the proxy stopped while appending it); skipped")]
    public static partial void TornLastLine(ILogger logger, string path, int line);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Error, Message = "State file {Path} is corrupt: {Count} unreadable line(s), the first at line {Line} ({Error}); those are ignored, {Kept} readable entries are used; the file as found is kept as {Copy}")]
    public static partial void Corrupt(ILogger logger, string path, int count, int line, string error, int kept, string copy);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Error, Message = "State file {Path} cannot be read ({Error}); starting without its entries")]
    public static partial void Unreadable(ILogger logger, string path, string error);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Error, Message = "State file {Path} cannot be written ({Error}); what was not written is kept in memory only")]
    public static partial void WriteFailed(ILogger logger, string path, string error);
}
