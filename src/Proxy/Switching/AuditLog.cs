using System.Text.Json;

namespace Switchback.Proxy.Switching;

/// <summary>One line of the audit trail: every switch and rollback, including refused and failed ones.</summary>
public sealed record AuditEntry(
    DateTimeOffset Time,
    string Action,
    string Family,
    string From,
    string To,
    string? Reason,
    string Caller,
    string Outcome,
    double PauseMs,
    string? Detail);

/// <summary>Appends <see cref="AuditEntry"/> lines (JSON Lines) to <c>StateDirectory/audit.jsonl</c>, flushed to disk each time.</summary>
public sealed class AuditLog(string directory)
{
    private readonly string _path = Path.Combine(Path.GetFullPath(directory), "audit.jsonl");
    private readonly Lock _lock = new();

    public string FilePath => _path;

    public void Append(AuditEntry entry)
    {
        var line = JsonSerializer.SerializeToUtf8Bytes(entry, StateJson.Options);
        lock (_lock)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
            using var stream = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
            stream.Write(line);
            stream.WriteByte((byte)'\n');
            stream.Flush(flushToDisk: true);
        }
    }

    public IReadOnlyList<AuditEntry> ReadAll()
    {
        lock (_lock)
        {
            if (!File.Exists(_path))
            {
                return [];
            }
            return [.. File.ReadAllLines(_path).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<AuditEntry>(l, StateJson.Options)!)];
        }
    }
}
