using System.Diagnostics;

namespace Switchback.Soak;

/// <summary>One record the proxy acknowledged: who sent it, when, and where the acknowledgement said it was stored.</summary>
public readonly record struct AckedRecord(string Stream, long Seq, string Key, string Topic, int Partition, long Offset, TimeSpan SentAt, TimeSpan AckedAt);

/// <summary>Every acknowledged and failed record of the run, shared by all producers.</summary>
public sealed class DeliveryLedger(Stopwatch clock)
{
    private readonly Lock _gate = new();
    private readonly List<AckedRecord> _acked = new(1 << 18);
    private readonly Dictionary<string, int> _failures = new(StringComparer.Ordinal);
    private long _ackedCount;
    private long _failedCount;

    public Stopwatch Clock { get; } = clock;
    public long Acked => Interlocked.Read(ref _ackedCount);
    public long FailedCount => Interlocked.Read(ref _failedCount);

    /// <summary>Record identity travels in the value: "stream|seq|padding".</summary>
    public static string Value(string stream, long seq, string padding) => $"{stream}|{seq}|{padding}";

    public static bool TryParseValue(string? value, out string stream, out long seq)
    {
        stream = "";
        seq = -1;
        if (value is null)
        {
            return false;
        }
        var first = value.IndexOf('|', StringComparison.Ordinal);
        var second = first < 0 ? -1 : value.IndexOf('|', first + 1);
        if (second < 0 || !long.TryParse(value.AsSpan(first + 1, second - first - 1), out seq))
        {
            return false;
        }
        stream = value[..first];
        return true;
    }

    public void Acknowledged(AckedRecord record)
    {
        lock (_gate)
        {
            _acked.Add(record);
        }
        Interlocked.Increment(ref _ackedCount);
    }

    public void Fail(string error)
    {
        lock (_gate)
        {
            _failures[error] = _failures.GetValueOrDefault(error) + 1;
        }
        Interlocked.Increment(ref _failedCount);
    }

    public IReadOnlyList<AckedRecord> AckedSnapshot()
    {
        lock (_gate)
        {
            return [.. _acked];
        }
    }

    public IReadOnlyDictionary<string, int> FailuresSnapshot()
    {
        lock (_gate)
        {
            return new Dictionary<string, int>(_failures, StringComparer.Ordinal);
        }
    }
}
