using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Confluent.Kafka;
using Switchback.Proxy.Tests.Switching;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Window;

/// <summary>
/// A rollback with <c>MirrorBack</c> is a resume, with real clients through the proxy: after a read and write switch
/// and a stretch of writes on target, the origin holds every acknowledged record once, in order, at the offsets it has
/// on target, and a consumer group that followed the reads resumes on the origin with no gap and no duplicate; a
/// transactional producer's committed records are on the origin once and its aborted ones never.
/// </summary>
public sealed class WindowResumeTests(ITestOutputHelper output)
{
    private const int Keys = 8;
    private const string Group = "orders-resume";
    private static readonly TimeSpan WritesOnTarget = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task ReadWriteSwitch_TwentySecondsOfWritesOnTarget_Rollback_GroupResumesOnTheOriginWithNoGapNoDuplicate()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 4, mirrorBack: true);
        // Before the switch, both clusters hold the same records at the same offsets, as replication that keeps offsets
        // leaves them; the group reads part of them on source.
        var before = Enumerable.Range(0, 400).Select(i => (Partition: i % rig.Partitions, Key: "pre", Value: $"pre-{i}")).ToList();
        foreach (var cluster in new[] { rig.Source, rig.Target })
        {
            await SwitchingRig.ProduceDirectAsync(cluster, before);
        }
        // About 160 records a second: the group commits each record before the next, and must keep up.
        var load = new KeyedLoad(Keys, TimeSpan.FromMilliseconds(50));
        var (acknowledged, produceErrors) = (load.Acknowledged, load.Errors);
        var consumed = new ConcurrentQueue<(int Partition, long Offset, string Key, string Value)>();
        var consumeErrors = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var consuming = Task.Factory.StartNew(() => Consume(rig.BootstrapServers, consumed, consumeErrors, stop.Token), TaskCreationOptions.LongRunning);
        await UntilAsync(() => consumed.Count >= 100, TimeSpan.FromSeconds(90), "100 records consumed on source");

        // Not forced: the gates pass (target has every record; the group's offsets exist there).
        var switched = await rig.SwitchAsync(new { write = "target", read = "target", timeoutMs = 30_000, reason = "resume test" });
        output.WriteLine($"switch: {switched}");
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        var producing = Task.Run(() => load.Run(rig.BootstrapServers, stop.Token));
        var onTargetFrom = DateTime.UtcNow;
        await UntilAsync(() => DateTime.UtcNow - onTargetFrom >= WritesOnTarget && consumed.Count > before.Count + 200,
            WritesOnTarget + TimeSpan.FromSeconds(60), "20 s of writes on target, and the group reading them");

        var rolledBack = await rig.RollbackAsync(new { reason = "resume test", timeoutMs = 30_000 });
        output.WriteLine($"rollback: {rolledBack}");
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.Equal(0, rolledBack.Body.GetProperty("details").GetProperty("leftBehind").GetProperty("records").GetInt64());

        // Writes and reads go on, on the origin, until the group has read everything acknowledged.
        var atRollback = acknowledged.Count;
        await UntilAsync(() => acknowledged.Count >= atRollback + 200, TimeSpan.FromSeconds(60), "200 more records acknowledged on source");
        await stop.CancelAsync();
        await producing;
        var total = acknowledged.Count + before.Count;
        using (var drain = new CancellationTokenSource())
        {
            // The consumer stopped with the producer; a fresh one of the same group reads the rest from its committed offsets.
            var rest = Task.Factory.StartNew(() => Consume(rig.BootstrapServers, consumed, consumeErrors, drain.Token), TaskCreationOptions.LongRunning);
            await consuming;
            await UntilAsync(() => consumed.Select(c => (c.Key, c.Value)).Distinct().Count() >= total, TimeSpan.FromSeconds(90),
                $"the group to read all {total} acknowledged records", () => Unread(rig, consumed));
            await drain.CancelAsync();
            await rest;
        }
        Assert.True(produceErrors.IsEmpty, string.Join("; ", produceErrors.Take(5)));
        Assert.True(consumeErrors.IsEmpty, string.Join("; ", consumeErrors.Take(5)));

        // The origin holds every acknowledged record once, in per-key order, at the offsets it has on target.
        var source = rig.ReadAll("source");
        var target = rig.ReadAll("target");
        Assert.Equal(before.Count, source.Count(r => r.Key == "pre"));
        var duplicated = source.GroupBy(r => (r.Key, r.Value)).Where(g => g.Count() > 1).Select(g => $"{g.Key}").ToList();
        Assert.True(duplicated.Count == 0, $"stored twice on source: {string.Join(", ", duplicated.Take(5))}");
        var stored = source.Select(r => (r.Key, r.Value)).ToHashSet();
        var missing = acknowledged.Where(a => !stored.Contains((a.Key, a.Sequence.ToString(CultureInfo.InvariantCulture)))).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged records missing from source, e.g. {string.Join(", ", missing.Take(5))}");
        foreach (var key in source.Where(r => r.Key != "pre").GroupBy(r => r.Key))
        {
            var sequences = key.OrderBy(r => r.Offset).Select(r => int.Parse(r.Value, CultureInfo.InvariantCulture)).ToList();
            Assert.True(sequences.SequenceEqual(Enumerable.Range(0, sequences.Count)), $"key {key.Key}: source order {string.Join(",", sequences.Take(20))}");
        }
        Assert.Contains(target, r => r.Key != "pre");
        foreach (var copy in target)
        {
            Assert.Contains(source, r => r.Partition == copy.Partition && r.Offset == copy.Offset && r.Key == copy.Key && r.Value == copy.Value);
        }

        // The group read every record once: committed before being counted, so a resume at the wrong offset shows as a
        // duplicate (too early) or a record never read (too late).
        var twice = consumed.GroupBy(c => (c.Key, c.Value)).Where(g => g.Count() > 1).Select(g => $"{g.Key}").ToList();
        Assert.True(twice.Count == 0, $"{twice.Count} records consumed twice, e.g. {string.Join(", ", twice.Take(5))}");
        output.WriteLine($"acknowledged {acknowledged.Count} after the switch; consumed {consumed.Count}; " +
            $"switch {switched.Body.GetProperty("pauseMs")} ms, rollback {rolledBack.Body.GetProperty("pauseMs")} ms");
    }

    [Fact]
    public async Task TransactionalProducerOnTarget_Rollback_OriginHoldsCommittedRecordsOnce_AbortedNever()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 3, mirrorBack: true, readCommittedTarget: true);
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "transactions" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        var committed = new List<string>();
        var aborted = new List<string>();
        await Task.Run(() =>
        {
            using var producer = new ProducerBuilder<string, string>(new ProducerConfig
            {
                BootstrapServers = rig.BootstrapServers,
                TransactionalId = $"orders-window-{Guid.NewGuid():N}",
                LingerMs = 2,
            }).SetLogHandler(static (_, _) => { }).Build();
            producer.InitTransactions(TimeSpan.FromSeconds(30));
            for (var transaction = 0; transaction < 24; transaction++)
            {
                producer.BeginTransaction();
                var values = Enumerable.Range(transaction * 10, 10).Select(i => $"txn-{i}").ToList();
                foreach (var value in values)
                {
                    producer.Produce(SwitchingRig.Topic, new Message<string, string> { Key = $"k{values.IndexOf(value) % Keys}", Value = value });
                }
                if (transaction % 3 == 2)
                {
                    // On the cluster first, so the abort has stored records to abort.
                    Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
                    producer.AbortTransaction(TimeSpan.FromSeconds(30));
                    aborted.AddRange(values);
                }
                else
                {
                    producer.CommitTransaction(TimeSpan.FromSeconds(30));
                    committed.AddRange(values);
                }
            }
        });

        var rolledBack = await rig.RollbackAsync(new { reason = "transactions", timeoutMs = 30_000 });
        output.WriteLine($"rollback: {rolledBack}");
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.Equal(0, rolledBack.Body.GetProperty("details").GetProperty("leftBehind").GetProperty("records").GetInt64());

        var onSource = rig.ReadAll("source").Select(r => r.Value).ToList();
        Assert.Equal(committed.Order(StringComparer.Ordinal), onSource.Order(StringComparer.Ordinal));
        Assert.Empty(onSource.Intersect(aborted));
        Assert.True(rig.TargetReadCommitted!.AbortedAnswers > 0, "the mirror's reads never met an aborted transaction");
    }

    [Fact]
    public async Task WriteSwitch_ProxyRestartedWhileTheWindowIsOpen_MirrorResumes_RollbackFindsEverythingOnceOnTheOrigin()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 3, mirrorBack: true, fixedPorts: true);
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "restart test" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        var values = new List<string>();
        await ProduceThroughAsync(rig.BootstrapServers, "before", 300, values);
        await UntilAsync(() => rig.WindowAsync().GetAwaiter().GetResult().Body.GetProperty("mirroredRecords").GetInt64() > 0,
            TimeSpan.FromSeconds(60), "the mirror to copy before the restart");

        // The proxy goes down and comes back on the same ports and state directory: the window is still open, and its
        // mirror resumes from its progress on disk.
        await rig.RestartAsync();
        var window = await rig.WindowAsync();
        Assert.Equal("open", window.Body.GetProperty("state").GetString());
        await ProduceThroughAsync(rig.BootstrapServers, "after", 300, values);

        var rolledBack = await rig.RollbackAsync(new { reason = "restart test", timeoutMs = 30_000 });
        output.WriteLine($"rollback: {rolledBack}");
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.Equal(0, rolledBack.Body.GetProperty("details").GetProperty("leftBehind").GetProperty("records").GetInt64());

        var onSource = rig.ReadAll("source").Select(r => r.Value).ToList();
        var twice = onSource.GroupBy(v => v).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(twice.Count == 0, $"copied twice: {string.Join(", ", twice.Take(5))}");
        Assert.Equal(values.Order(StringComparer.Ordinal), onSource.Order(StringComparer.Ordinal));
        Assert.Equal(rig.ReadAll("target").Select(r => (r.Partition, r.Offset, r.Value)), rig.ReadAll("source").Select(r => (r.Partition, r.Offset, r.Value)));
    }

    /// <summary>Produces <paramref name="count"/> records through the proxy with an idempotent producer and waits for every acknowledgement.</summary>
    private static async Task ProduceThroughAsync(string bootstrap, string prefix, int count, List<string> values)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = bootstrap,
            EnableIdempotence = true,
            LingerMs = 2,
            MessageTimeoutMs = 60_000,
        }).SetLogHandler(static (_, _) => { }).Build();
        for (var i = 0; i < count; i++)
        {
            var value = $"{prefix}-{i}";
            producer.Produce(SwitchingRig.Topic, new Message<string, string> { Key = $"k{i % Keys}", Value = value });
            values.Add(value);
        }
        await Task.Run(() => Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(60))));
    }

    /// <summary>Where the group's reads stand against the origin's records: what a failure to read everything needs explained.</summary>
    private static string Unread(SwitchingRig rig, ConcurrentQueue<(int Partition, long Offset, string Key, string Value)> consumed)
    {
        var read = consumed.Select(c => (c.Key, c.Value)).ToHashSet();
        var unread = rig.ReadAll("source").Where(r => !read.Contains((r.Key, r.Value))).ToList();
        return $"read {read.Count}; unread on source: " + string.Join("; ", unread.GroupBy(r => r.Partition).Select(g =>
            $"p{g.Key} {g.Count()} at offsets {g.Min(r => r.Offset)}-{g.Max(r => r.Offset)} (last read there: " +
            $"{consumed.Where(c => c.Partition == g.Key).Select(c => c.Offset).DefaultIfEmpty(-1).Max()})"));
    }

    private static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, Func<string>? progress = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}{(progress is null ? "" : $" ({progress()})")}");
            await Task.Delay(50);
        }
    }


    /// <summary>
    /// A consumer of the group that commits each record before counting it: a record counted was committed, so the
    /// group's resume point after a move is checked exactly. A record whose commit fails (the group moved under it)
    /// is not counted; it comes again from the committed offset.
    /// </summary>
    private static void Consume(string bootstrap, ConcurrentQueue<(int, long, string, string)> consumed, ConcurrentQueue<string> errors, CancellationToken stop)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = Group,
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = 50,
            SessionTimeoutMs = 10_000,
            HeartbeatIntervalMs = 500,
        }).SetLogHandler(static (_, _) => { }).SetErrorHandler((_, e) =>
        {
            if (e.IsFatal)
            {
                errors.Enqueue($"{e.Code}: {e.Reason}");
            }
        }).Build();
        consumer.Subscribe(SwitchingRig.Topic);
        while (!stop.IsCancellationRequested)
        {
            ConsumeResult<string, string>? result;
            try
            {
                result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            }
            catch (ConsumeException e)
            {
                errors.Enqueue($"consume: {e.Error.Code} {e.Error.Reason}");
                continue;
            }
            if (result is null || result.IsPartitionEOF)
            {
                continue;
            }
            try
            {
                consumer.Commit(result);
            }
            catch (KafkaException)
            {
                // The group rebalanced or moved: the record was not committed and will be delivered again (from the
                // committed offset, by this member if it still has the partition, or by the one that now has it).
                try
                {
                    var committed = consumer.Committed([result.TopicPartition], TimeSpan.FromSeconds(10))[0].Offset;
                    consumer.Seek(new TopicPartitionOffset(result.TopicPartition, committed == Offset.Unset ? Offset.Beginning : committed));
                }
                catch (KafkaException)
                {
                    // No longer assigned: the next assignment starts from the committed offset anyway.
                }
                continue;
            }
            consumed.Enqueue((result.Partition.Value, result.Offset.Value, result.Message.Key, result.Message.Value));
        }
        consumer.Close();
    }
}
