using System.Text.Json;
using System.Text.Json.Serialization;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Routing;

namespace Switchback.Proxy.Switching;

/// <summary>
/// Durable routes in <c>StateDirectory/routes.json</c>. A new table is written to a temporary file, flushed to disk,
/// and renamed over the old one (then the directory is flushed), so a crash leaves either the old or the new
/// table, never a torn one. Persisted routes win over the configuration file's initial routes on restart. Each
/// family's rollback window is kept with its route.
/// </summary>
public sealed class RouteStore
{
    private const string FileName = "routes.json";
    private readonly string _directory;
    private readonly string _path;
    private readonly Lock _writeLock = new();

    public RouteStore(string directory)
    {
        _directory = Path.GetFullPath(directory);
        _path = Path.Combine(_directory, FileName);
    }

    public string FilePath => _path;

    public void Save(RouteTable table)
    {
        var bytes = Serialize(table);
        lock (_writeLock)
        {
            Directory.CreateDirectory(_directory);
            var temporary = _path + ".tmp";
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, _path, overwrite: true);
            FlushDirectory(_directory);
        }
    }

    /// <summary>The file's bytes for a table; called once at start-up too, so the first switch does not build the serializer's metadata inside its hold.</summary>
    public static byte[] Serialize(RouteTable table)
    {
        // PreviousWrite/PreviousRead: an open window's origin, which is where an earlier version (reading this file after a
        // downgrade) rolls back to.
        var document = new RoutesDocument(2, [.. table.Families.Select(f =>
        {
            var origin = f.Window is { IsOpen: true } open ? open.Origin : null;
            return new PersistedRoute(f.Family, f.Route.Write, f.Route.Read, f.Epoch, f.UpdatedAt, origin?.Write, origin?.Read, f.WriteEpoch, f.Window);
        })]);
        return JsonSerializer.SerializeToUtf8Bytes(document, StateJson.Options);
    }

    /// <summary>The configured table with persisted routes applied (families no longer configured, or naming unknown clusters, are ignored).</summary>
    public RouteTable Load(ProxyConfig config, RouteTable initial)
    {
        if (!File.Exists(_path))
        {
            return initial;
        }
        RoutesDocument? document;
        try
        {
            document = JsonSerializer.Deserialize<RoutesDocument>(File.ReadAllBytes(_path), StateJson.Options);
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{ConfigValidator.SectionName}:StateDirectory", $"'{_path}' is not a valid route file: {e.Message}");
        }
        var clusters = config.Clusters.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        var table = initial;
        foreach (var route in document?.Families ?? [])
        {
            if (table.Find(route.Family) is null || !clusters.Contains(route.Write) || !clusters.Contains(route.Read))
            {
                continue;
            }
            // A file written before rollback windows keeps only the previous route: an open window with that origin.
            var window = route.Window ?? RollbackWindow.FromPrevious(route.PreviousWrite, route.PreviousRead, route.UpdatedAt, route.Epoch);
            if (window is not null && (!clusters.Contains(window.Origin.Write) || !clusters.Contains(window.Origin.Read)))
            {
                window = null;
            }
            table = table.With(new FamilyRoute(route.Family, new ClusterRoute(route.Write, route.Read), route.Epoch, route.UpdatedAt, window, route.WriteEpoch));
        }
        return table;
    }

    /// <summary>Flushes a directory's entries (a rename) to disk where the platform allows it.</summary>
    internal static void FlushDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        try
        {
            using var handle = File.OpenHandle(directory, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.None);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            // Some file systems do not let a directory be opened for flushing; the rename itself is still atomic.
        }
    }

    private sealed record RoutesDocument(int Version, List<PersistedRoute> Families);

    // Version 1 (before rollback windows) has no Window.
    private sealed record PersistedRoute(string Family, string Write, string Read, long Epoch, DateTimeOffset UpdatedAt, string? PreviousWrite, string? PreviousRead,
        long WriteEpoch, RollbackWindow? Window = null);
}

internal static class StateJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}
