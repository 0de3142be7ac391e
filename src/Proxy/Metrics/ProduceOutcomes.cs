using System.Collections.Concurrent;
using System.Diagnostics;

namespace Switchback.Proxy.Metrics;

/// <summary>Produce outcomes of a family over a recent span: what the abort criteria judge.</summary>
public readonly record struct ProduceSummary(long Requests, long Partitions, long ErrorPartitions, double? LatencyP99Ms)
{
    /// <summary>Percent of produced partitions answered with an error; null without traffic.</summary>
    public double? ErrorRatePercent => Partitions == 0 ? null : 100.0 * ErrorPartitions / Partitions;
}

/// <summary>
/// The last minute of each family's produce outcomes as its clients saw them, in one-second slots: requests,
/// partitions answered, partitions answered with an error, and a latency histogram (buckets a quarter of an octave
/// wide, so a percentile is known within 19 %). Prometheus histograms answer the same over a scrape interval, but
/// the abort criteria need it in-process and per second. Bounded: a fixed number of slots per family.
/// </summary>
public sealed class ProduceOutcomes
{
    /// <summary>The longest span a summary may cover.</summary>
    public static readonly TimeSpan Horizon = TimeSpan.FromSeconds(Slots - 1);

    private const int Slots = 64;
    private const int Buckets = 96;
    private const double FirstBoundMs = 0.1;
    private const double BucketsPerOctave = 4;

    private readonly ConcurrentDictionary<string, FamilyOutcomes> _families = new(StringComparer.Ordinal);
    private readonly Func<long> _clock;

    /// <param name="clock">Seconds since an arbitrary origin (tests pass their own).</param>
    public ProduceOutcomes(Func<long>? clock = null) =>
        _clock = clock ?? (static () => Stopwatch.GetTimestamp() / Stopwatch.Frequency);

    public void Record(string family, int partitions, int errorPartitions, TimeSpan latency)
    {
        if (!_families.TryGetValue(family, out var outcomes))
        {
            outcomes = _families.GetOrAdd(family, static _ => new FamilyOutcomes());
        }
        outcomes.Record(_clock(), partitions, errorPartitions, Bucket(latency.TotalMilliseconds));
    }

    /// <summary>The family's outcomes over the last <paramref name="span"/> (whole seconds, at most <see cref="Horizon"/>), the current second included.</summary>
    public ProduceSummary Summarize(string family, TimeSpan span)
    {
        var seconds = (int)Math.Clamp(Math.Ceiling(span.TotalSeconds), 1, Slots - 1);
        return _families.TryGetValue(family, out var outcomes) ? outcomes.Summarize(_clock(), seconds) : default;
    }

    private static int Bucket(double ms) =>
        ms <= FirstBoundMs ? 0 : Math.Min(Buckets - 1, (int)Math.Ceiling(Math.Log2(ms / FirstBoundMs) * BucketsPerOctave));

    /// <summary>A bucket's upper bound: a percentile is reported as the bound of the bucket it falls in.</summary>
    private static double UpperBoundMs(int bucket) => FirstBoundMs * Math.Pow(2, bucket / BucketsPerOctave);

    private sealed class FamilyOutcomes
    {
        private readonly Lock _lock = new();
        private readonly long[] _second = new long[Slots];
        private readonly long[] _requests = new long[Slots];
        private readonly long[] _partitions = new long[Slots];
        private readonly long[] _errors = new long[Slots];
        private readonly int[,] _latency = new int[Slots, Buckets];

        public FamilyOutcomes() => Array.Fill(_second, long.MinValue);

        public void Record(long now, int partitions, int errors, int bucket)
        {
            var slot = (int)(now % Slots);
            lock (_lock)
            {
                if (_second[slot] != now)
                {
                    _second[slot] = now;
                    _requests[slot] = 0;
                    _partitions[slot] = 0;
                    _errors[slot] = 0;
                    for (var b = 0; b < Buckets; b++)
                    {
                        _latency[slot, b] = 0;
                    }
                }
                _requests[slot]++;
                _partitions[slot] += partitions;
                _errors[slot] += errors;
                _latency[slot, bucket]++;
            }
        }

        public ProduceSummary Summarize(long now, int seconds)
        {
            long requests = 0, partitions = 0, errors = 0;
            Span<long> latency = stackalloc long[Buckets];
            lock (_lock)
            {
                for (var s = now - seconds + 1; s <= now; s++)
                {
                    var slot = (int)(s % Slots);
                    if (_second[slot] != s)
                    {
                        continue;
                    }
                    requests += _requests[slot];
                    partitions += _partitions[slot];
                    errors += _errors[slot];
                    for (var b = 0; b < Buckets; b++)
                    {
                        latency[b] += _latency[slot, b];
                    }
                }
            }
            return new ProduceSummary(requests, partitions, errors, Percentile(latency, requests, 0.99));
        }

        private static double? Percentile(ReadOnlySpan<long> buckets, long count, double quantile)
        {
            if (count == 0)
            {
                return null;
            }
            var rank = (long)Math.Ceiling(quantile * count);
            long seen = 0;
            for (var b = 0; b < buckets.Length; b++)
            {
                seen += buckets[b];
                if (seen >= rank)
                {
                    return UpperBoundMs(b);
                }
            }
            return UpperBoundMs(buckets.Length - 1);
        }
    }
}
