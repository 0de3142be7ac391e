using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Switchback.Proxy.Switching;

namespace Switchback.Proxy.Window;

/// <summary>
/// What a family's mirror has durably done: where it reads on the new write cluster and where its last confirmed
/// copy ended on the old one, per partition. Immutable; <see cref="MirrorProgressStore"/> persists it.
/// </summary>
/// <param name="Family">The family mirrored.</param>
/// <param name="From">The new write cluster, read.</param>
/// <param name="To">The old (origin) write cluster, written.</param>
/// <param name="StartedAt">When the mirror was first started for this window.</param>
/// <param name="Partitions">Per partition, in topic and partition order.</param>
/// <param name="FirstDivergence">The first copy that landed at another offset than its original, if any.</param>
public sealed record MirrorProgress(
    string Family,
    string From,
    string To,
    DateTimeOffset StartedAt,
    IReadOnlyList<PartitionProgress> Partitions,
    DivergentCopy? FirstDivergence = null)
{
    /// <summary>The progress of a mirror that has copied nothing yet.</summary>
    public static MirrorProgress Initial(string family, string from, string to, DateTimeOffset startedAt,
        IEnumerable<(string Topic, int Partition, long Start, long OldEnd)> partitions) =>
        new(family, from, to, startedAt, [.. partitions
            .OrderBy(p => p.Topic, StringComparer.Ordinal).ThenBy(p => p.Partition)
            .Select(p => new PartitionProgress(p.Topic, p.Partition, p.Start, p.Start, p.OldEnd, p.OldEnd, 0, 0))]);
}

/// <summary>One partition's durable progress.</summary>
/// <param name="Topic">Topic name (the same on both clusters).</param>
/// <param name="Partition">Partition number (the same on both clusters).</param>
/// <param name="Start">The offset on the new cluster the mirror started from.</param>
/// <param name="Next">The next offset to read on the new cluster: everything below it is copied and acknowledged.</param>
/// <param name="OldBase">The old cluster's end offset when the mirror started (what stray writes are counted from).</param>
/// <param name="OldEnd">The old cluster's end offset right after the last acknowledged copy.</param>
/// <param name="Copied">Copies acknowledged since the mirror started.</param>
/// <param name="Divergent">Of those, copies that landed at another offset than their original.</param>
public sealed record PartitionProgress(string Topic, int Partition, long Start, long Next, long OldBase, long OldEnd, long Copied, long Divergent);

/// <summary>
/// Mirror progress on disk, one small JSON file per family in <c>StateDirectory/mirrors/</c>. Each write goes to a
/// temporary file, is flushed to disk and renamed over the previous one (then the directory is flushed), so a crash
/// leaves the previous or the new checkpoint, never a torn one. Written by the mirror's own checkpoint loop, never
/// on a request's path.
/// </summary>
public sealed class MirrorProgressStore
{
    private const string FolderName = "mirrors";
    private const string Extension = ".json";

    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        RespectNullableAnnotations = true,
    };

    private readonly string _directory;
    private readonly Lock _writeLock = new();

    /// <param name="stateDirectory">The proxy's state directory; files go to its <c>mirrors</c> folder.</param>
    public MirrorProgressStore(string stateDirectory)
    {
        _directory = Path.Combine(Path.GetFullPath(stateDirectory), FolderName);
    }

    public string Directory => _directory;

    public string PathOf(string family) => Path.Combine(_directory, FileNameOf(family));

    public void Save(MirrorProgress progress)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(new ProgressDocument(1, progress), Options);
        var path = PathOf(progress.Family);
        lock (_writeLock)
        {
            System.IO.Directory.CreateDirectory(_directory);
            var temporary = path + ".tmp";
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
            RouteStore.FlushDirectory(_directory);
        }
    }

    /// <summary>The family's progress, or null when none is stored.</summary>
    /// <exception cref="InvalidDataException">The file exists but cannot be read as progress.</exception>
    public MirrorProgress? Load(string family)
    {
        var path = PathOf(family);
        return File.Exists(path) ? Read(path) : null;
    }

    /// <summary>Every stored progress; files that cannot be read are returned as errors, not thrown.</summary>
    public IReadOnlyList<(string Path, MirrorProgress? Progress, string? Error)> LoadAll()
    {
        if (!System.IO.Directory.Exists(_directory))
        {
            return [];
        }
        var result = new List<(string, MirrorProgress?, string?)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(_directory, "*" + Extension).Order(StringComparer.Ordinal))
        {
            try
            {
                result.Add((path, Read(path), null));
            }
            catch (InvalidDataException e)
            {
                result.Add((path, null, e.Message));
            }
        }
        return result;
    }

    /// <summary>Forgets a family's progress (its mirror has ended for good).</summary>
    public void Delete(string family)
    {
        lock (_writeLock)
        {
            File.Delete(PathOf(family));
            File.Delete(PathOf(family) + ".tmp");
            if (System.IO.Directory.Exists(_directory))
            {
                RouteStore.FlushDirectory(_directory);
            }
        }
    }

    private static MirrorProgress Read(string path)
    {
        try
        {
            var document = JsonSerializer.Deserialize<ProgressDocument>(File.ReadAllBytes(path), Options);
            return document?.Progress ?? throw new InvalidDataException($"'{path}' holds no mirror progress.");
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new InvalidDataException($"'{path}' is not readable mirror progress: {e.Message}", e);
        }
    }

    // Family names are configuration strings; anything outside a conservative set is escaped so that a name can
    // never leave the folder or collide with the temporary file.
    private static string FileNameOf(string family)
    {
        var name = new StringBuilder(family.Length + Extension.Length);
        foreach (var b in Encoding.UTF8.GetBytes(family))
        {
            if (b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9' or (byte)'-' or (byte)'_')
            {
                name.Append((char)b);
            }
            else
            {
                name.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        return name.Append(Extension).ToString();
    }

    private sealed record ProgressDocument(int Version, MirrorProgress Progress);
}
