using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Confluent.Kafka;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// Producers keep writing through the proxy while the family's writes move source -> target and back. Every
/// record carries its key's sequence number, so the clusters' contents can be checked for loss, duplicates and
/// per-key order afterwards.
/// </summary>
public sealed class WriteSwitchUnderLoadTests(ITestOutputHelper output)
{
    private const int Producers = 3;
    private const int KeysPerProducer = 8;

    [Fact]
    public Task WriteSwitch_UnderIdempotentLoad_NoLossNoDuplicateOrderKept() =>
        RunAsync(idempotent: true);

    [Fact]
    public Task WriteSwitch_UnderNonIdempotentLoad_NoLossOrderKept() =>
        RunAsync(idempotent: false);

    private async Task RunAsync(bool idempotent)
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 4);
        try
        {
            await RunAsync(rig, idempotent);
        }
        catch
        {
            // What the proxy and the clients saw, so that a failure on a busy machine explains itself.
            output.WriteLine($"proxy log (warnings and closes):{Environment.NewLine}{rig.ProxyLogTail()}");
            output.WriteLine($"client log (warnings):{Environment.NewLine}{string.Join(Environment.NewLine, _clientLog.TakeLast(40))}");
            throw;
        }
    }

    private readonly ConcurrentQueue<string> _clientLog = new();

    private async Task RunAsync(SwitchingRig rig, bool idempotent)
    {
        var deliveries = new ConcurrentQueue<Delivery>();
        var errors = new ConcurrentQueue<string>();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();

        var producers = Enumerable.Range(0, Producers)
            .Select(p => Task.Run(() => Produce(rig, p, idempotent, clock, deliveries, errors, _clientLog, stop.Token)))
            .ToArray();

        // Steady state first: every producer has had records acknowledged.
        var warmup = Stopwatch.StartNew();
        while (deliveries.Select(d => d.Key[..d.Key.IndexOf('-', StringComparison.Ordinal)]).Distinct().Count() < Producers)
        {
            Assert.True(warmup.Elapsed < TimeSpan.FromSeconds(30), "producers did not get going");
            await Task.Delay(20);
        }
        var steadyFrom = clock.Elapsed;
        output.WriteLine($"first acknowledgement of every producer after {steadyFrom.TotalMilliseconds:0} ms");
        await Task.Delay(1500);
        var switchedAt = clock.Elapsed;
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "load test" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        // A 200 means nothing of the family is in flight to source any more: what source holds now is phase 0.
        var sourceEndsAtSwitch = rig.EndOffsets(rig.Source);

        await Task.Delay(1500);
        var rolledBackAt = clock.Elapsed;
        var rolledBack = await rig.RollbackAsync(new { reason = "load test" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());

        await Task.Delay(1000);
        await stop.CancelAsync();
        await Task.WhenAll(producers);

        var acknowledged = deliveries.Where(d => d.Error is null).ToList();
        var failed = deliveries.Where(d => d.Error is not null).ToList();
        output.WriteLine($"idempotent={idempotent}: {deliveries.Count} produced, {acknowledged.Count} acknowledged, {failed.Count} failed; switch pause {switched.Body.GetProperty("pauseMs")} ms, rollback pause {rolledBack.Body.GetProperty("pauseMs")} ms");
        ReportLatency(acknowledged.Where(d => d.SentAt >= steadyFrom).ToList(), switchedAt, rolledBackAt);
        Assert.True(failed.Count == 0, $"failed deliveries: {string.Join("; ", failed.Take(5).Select(f => f.Error))}");
        Assert.True(errors.IsEmpty, $"producer errors: {string.Join("; ", errors.Take(5))}");
        Assert.True(acknowledged.Count > 1000, $"only {acknowledged.Count} records were acknowledged");

        var source = rig.ReadAll("source");
        var target = rig.ReadAll("target");
        Assert.NotEmpty(target);
        Assert.Contains(source, r => r.Offset >= sourceEndsAtSwitch[r.Partition]);

        // Phase: 0 = source before the switch, 1 = target, 2 = source after the rollback.
        var stored = source.Select(r => (Phase: r.Offset < sourceEndsAtSwitch[r.Partition] ? 0 : 2, Record: r))
            .Concat(target.Select(r => (Phase: 1, Record: r)))
            .ToList();

        // Exactly once: every acknowledged record is stored once, on one cluster, and nothing else is stored.
        var storedByKey = stored.GroupBy(s => (s.Record.Key, s.Record.Value)).ToDictionary(g => g.Key, g => g.ToList());
        var duplicates = storedByKey.Where(g => g.Value.Count > 1).Select(g => $"{g.Key} x{g.Value.Count} ({string.Join(",", g.Value.Select(v => $"{v.Record.Cluster}/{v.Record.Partition}@{v.Record.Offset}"))})").ToList();
        Assert.True(duplicates.Count == 0, $"{duplicates.Count} duplicated record(s): {string.Join("; ", duplicates.Take(5))}");
        var missing = acknowledged.Where(a => !storedByKey.ContainsKey((a.Key, a.Value))).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged record(s) missing: {string.Join("; ", missing.Take(5).Select(m => $"{m.Key}={m.Value}"))}");
        Assert.Equal(acknowledged.Count, stored.Count);

        // Per-key order across clusters: ordered by (phase, offset) the sequence numbers are exactly 0, 1, 2, ...
        foreach (var key in stored.GroupBy(s => s.Record.Key))
        {
            var sequences = key.OrderBy(s => s.Phase).ThenBy(s => s.Record.Offset).Select(s => int.Parse(s.Record.Value, CultureInfo.InvariantCulture)).ToList();
            var expected = acknowledged.Where(a => a.Key == key.Key).Select(a => int.Parse(a.Value, CultureInfo.InvariantCulture)).Order().ToList();
            Assert.True(expected.SequenceEqual(Enumerable.Range(0, expected.Count)), $"key {key.Key}: acknowledged sequences have gaps");
            Assert.True(sequences.SequenceEqual(expected), $"key {key.Key}: stored order {Describe(sequences)} != {Describe(expected)}");
        }
        // Every phase saw traffic, so the order check spanned both moves.
        Assert.All(new[] { 0, 1, 2 }, phase => Assert.Contains(stored, s => s.Phase == phase));
    }

    private static void Produce(SwitchingRig rig, int producerIndex, bool idempotent, Stopwatch clock,
        ConcurrentQueue<Delivery> deliveries, ConcurrentQueue<string> errors, ConcurrentQueue<string> log, CancellationToken stop)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            ClientId = $"load-{producerIndex}",
            EnableIdempotence = idempotent,
            MaxInFlight = idempotent ? 5 : 1,
            Acks = Acks.All,
            LingerMs = 2,
            MessageTimeoutMs = 30_000,
        };
        using var producer = new ProducerBuilder<string, string>(config)
            .SetErrorHandler((_, e) => errors.Enqueue($"{(e.IsFatal ? "FATAL " : "")}{e.Code}: {e.Reason}"))
            .SetLogHandler((_, m) =>
            {
                if (m.Level <= SyslogLevel.Warning)
                {
                    log.Enqueue($"{clock.Elapsed.TotalMilliseconds:0} ms {m.Name} {m.Facility}: {m.Message}");
                }
            })
            .Build();
        var sequence = 0;
        var next = clock.Elapsed;
        while (!stop.IsCancellationRequested)
        {
            for (var k = 0; k < KeysPerProducer; k++)
            {
                var key = $"p{producerIndex}-k{k}";
                var value = sequence.ToString(CultureInfo.InvariantCulture);
                var sentAt = clock.Elapsed;
                producer.Produce(SwitchingRig.Topic, new Message<string, string> { Key = key, Value = value }, report =>
                    deliveries.Enqueue(new Delivery(key, value, sentAt, clock.Elapsed - sentAt,
                        report.Error.IsError ? $"{report.Error.Code}: {report.Error.Reason}" : null)));
            }
            sequence++;
            // About 1,600 records/s per producer.
            next += TimeSpan.FromMilliseconds(5);
            var wait = next - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                Thread.Sleep(wait);
            }
        }
        producer.Flush(TimeSpan.FromSeconds(30));
    }

    private void ReportLatency(List<Delivery> acknowledged, TimeSpan switchedAt, TimeSpan rolledBackAt)
    {
        static bool Near(Delivery d, TimeSpan at) => (d.SentAt - at).Duration() <= TimeSpan.FromSeconds(1);
        var around = acknowledged.Where(d => Near(d, switchedAt) || Near(d, rolledBackAt)).Select(d => d.Latency.TotalMilliseconds).Order().ToList();
        var steady = acknowledged.Where(d => !Near(d, switchedAt) && !Near(d, rolledBackAt)).Select(d => d.Latency.TotalMilliseconds).Order().ToList();
        static string Stats(List<double> ms) => ms.Count == 0 ? "none" : $"n={ms.Count} p50={ms[ms.Count / 2]:0.0} ms p99={ms[(int)(ms.Count * 0.99)]:0.0} ms max={ms[^1]:0.0} ms";
        output.WriteLine($"produce latency within 1 s of a switch:    {Stats(around)}");
        output.WriteLine($"produce latency otherwise (after warm-up): {Stats(steady)}");
    }

    private static string Describe(List<int> sequences) =>
        sequences.Count <= 12 ? $"[{string.Join(",", sequences)}]" : $"[{string.Join(",", sequences.Take(6))} ... {string.Join(",", sequences.TakeLast(6))}] ({sequences.Count})";

    private sealed record Delivery(string Key, string Value, TimeSpan SentAt, TimeSpan Latency, string? Error);
}
