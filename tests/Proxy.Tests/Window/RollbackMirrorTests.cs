using Confluent.Kafka;
using Switchback.Proxy.Metrics;
using Switchback.Proxy.Window;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Window;

/// <summary>
/// The rollback window's mirror against two librdkafka mock clusters: records written to the new write cluster while
/// it runs are copied back to the old one exactly once, in order, with key, value, headers and timestamp.
/// </summary>
public sealed class RollbackMirrorTests(ITestOutputHelper output)
{
    private static CancellationToken Within(int seconds = 60) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    [Fact]
    public async Task Mirror_CopiesEveryRecordOnceInOrder_WithKeyValueHeadersAndTimestamp_AtTheSameOffsetsWhenAligned()
    {
        await using var rig = MirrorRig.Start(partitions: 4);
        // Aligned clusters: the same records on both, as replication before the switch left them.
        var before = Enumerable.Range(0, 40).Select(i => TestRecord.Numbered(i, rig.Partitions, "before")).ToList();
        await MirrorRig.ProduceAsync(rig.OldBootstrap, before);
        await MirrorRig.ProduceAsync(rig.NewBootstrap, before);
        var start = rig.Ends(rig.NewBootstrap);
        Assert.Equal(start, rig.Ends(rig.OldBootstrap));

        await using var mirror = await rig.BeginAsync(start);
        var written = new List<TestRecord>();
        for (var round = 0; round < 10; round++)
        {
            var batch = Enumerable.Range(round * 200, 200).Select(i => TestRecord.Numbered(i, rig.Partitions, "after")).ToList();
            await MirrorRig.ProduceAsync(rig.NewBootstrap, batch);
            written.AddRange(batch);
        }
        await mirror.WaitCopiedAsync(rig.Ends(rig.NewBootstrap), Within());

        var originals = rig.ReadAll(rig.NewBootstrap, start);
        var copies = rig.ReadAll(rig.OldBootstrap, start);
        // Per partition, in the order written (the producer is idempotent, so that is the order stored).
        Assert.Equal(written.OrderBy(r => r.Partition).Select(MirrorRig.Content), originals.Select(r => r.Content));
        // Same partition, offset, key, value, headers and timestamp: every record once, in order, nothing else.
        Assert.Equal(originals, copies);
        Assert.Equal(before.Count, rig.ReadAll(rig.OldBootstrap).Count - copies.Count);

        var figures = mirror.Figures();
        output.WriteLine($"copied {figures.Totals.Copied}, {figures.Totals.CopiedBytes} B, lag {figures.Totals.LagRecords}");
        Assert.Equal(MirrorState.Running, figures.State);
        Assert.Equal(written.Count, figures.Totals.Copied);
        Assert.Equal(new OffsetAlignment(written.Count, 0, null), figures.Alignment);
        Assert.Equal(0, figures.Totals.StrayWrites);
        Assert.Equal(0, figures.Totals.LagRecords);
        Assert.Equal(0, figures.Totals.MaxLagMs);
        var ends = rig.Ends(rig.NewBootstrap);
        Assert.All(figures.Partitions, p => Assert.Equal(ends[new TopicPartition(p.Topic, p.Partition)], p.Position));
    }

    [Fact]
    public async Task Mirror_CopiesCommittedTransactionsOnce_AndAbortedOnesNever()
    {
        await using var rig = MirrorRig.Start(partitions: 3, readCommittedFront: true);
        var start = rig.Ends(rig.NewBootstrap);
        await using var mirror = await rig.BeginAsync(start);

        var committed = new List<TestRecord>();
        var aborted = new List<TestRecord>();
        await Task.Run(() =>
        {
            using var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
            {
                BootstrapServers = rig.NewBootstrap,
                TransactionalId = $"orders-mirror-{Guid.NewGuid():N}",
                Acks = Acks.All,
                LingerMs = 1,
            }).SetLogHandler(static (_, _) => { }).Build();
            producer.InitTransactions(TimeSpan.FromSeconds(30));
            for (var transaction = 0; transaction < 30; transaction++)
            {
                producer.BeginTransaction();
                var records = Enumerable.Range(transaction * 10, 10).Select(i => TestRecord.Numbered(i, rig.Partitions, "txn")).ToList();
                foreach (var record in records)
                {
                    producer.Produce(new TopicPartition(MirrorRig.Topic, record.Partition), MirrorRig.Message(record));
                }
                if (transaction % 3 == 2)
                {
                    // Stored on the cluster first: an abort would otherwise drop them before they were sent.
                    Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
                    producer.AbortTransaction(TimeSpan.FromSeconds(30));
                    aborted.AddRange(records);
                }
                else
                {
                    producer.CommitTransaction(TimeSpan.FromSeconds(30));
                    committed.AddRange(records);
                }
            }
        });
        // The new cluster's end includes the aborted records; the mirror is past them once it has read beyond them.
        await mirror.WaitCopiedAsync(rig.Ends(rig.NewBootstrap), Within());

        var copies = rig.ReadAll(rig.OldBootstrap, start);
        Assert.Equal(committed.OrderBy(r => r.Partition).Select(MirrorRig.Content), copies.Select(r => r.Content));
        Assert.Empty(copies.Select(r => r.Content).Intersect(aborted.Select(MirrorRig.Content)));
        Assert.True(rig.NewFront!.AbortedAnswers > 0, "the mirror's reads never met an aborted batch");

        var figures = mirror.Figures();
        output.WriteLine($"copied {figures.Totals.Copied}; alignment {figures.Alignment}; withheld {rig.NewFront.Withheld}, aborted answers {rig.NewFront.AbortedAnswers}");
        Assert.Equal(committed.Count, figures.Totals.Copied);
        // Commit and abort markers and aborted records take offsets on the new cluster and have no copy: later copies land lower.
        Assert.True(figures.Alignment.Divergent > 0);
        var first = Assert.IsType<DivergentCopy>(figures.Alignment.First);
        Assert.True(first.OldOffset < first.NewOffset);
    }

    [Fact]
    public async Task Mirror_ResumedFromAnOlderCheckpointWithStrayWritesMeanwhile_CopiesNothingTwiceAndMissesNothing()
    {
        await using var rig = MirrorRig.Start(partitions: 4);
        var start = rig.Ends(rig.NewBootstrap);
        var path = rig.Store.PathOf(MirrorRig.Family);
        var written = new List<TestRecord>();
        // Only the writer task adds to it; read once that task has ended.
        async Task WriteAsync(int from, int count)
        {
            var records = Enumerable.Range(from, count).Select(i => TestRecord.Numbered(i, rig.Partitions, "w")).ToList();
            await MirrorRig.ProduceAsync(rig.NewBootstrap, records);
            written.AddRange(records);
        }

        var first = rig.Supervisor();
        await first.StartMirrorAsync(MirrorRig.Family, "target", "source", start);
        // Records keep coming throughout: while the first mirror runs, while none does, and while the second resumes.
        var writer = Task.Run(async () =>
        {
            for (var round = 0; round < 15; round++)
            {
                await WriteAsync(round * 200, 200);
            }
        });
        await MirrorRig.UntilAsync(() => rig.Store.Load(MirrorRig.Family)?.Partitions.Sum(p => p.Copied) >= 500, "a checkpoint of 500 copies");
        var olderCheckpoint = await File.ReadAllBytesAsync(path);
        var checkpointed = rig.Store.Load(MirrorRig.Family)!.Partitions.Sum(p => p.Copied);
        await MirrorRig.UntilAsync(() => first.Figures(MirrorRig.Family)!.Totals.Copied >= checkpointed + 500, "500 copies after that checkpoint");
        await first.StopAsync(CancellationToken.None);
        var copiedBeforeTheRestart = rig.Store.Load(MirrorRig.Family)!.Partitions.Sum(p => p.Copied);
        // As if the process had died right after the older checkpoint: the copies acknowledged since are not in it.
        await File.WriteAllBytesAsync(path, olderCheckpoint);
        // And something wrote the old cluster directly while no mirror ran.
        var strays = Enumerable.Range(0, 7).Select(i => TestRecord.Numbered(i, 1, "stray") with { Partition = 2 }).ToList();
        await MirrorRig.ProduceAsync(rig.OldBootstrap, strays);

        var second = rig.Supervisor();
        await second.StartAsync(CancellationToken.None);
        Assert.NotNull(second.Mirror(MirrorRig.Family));
        await writer;
        await second.WaitCopiedAsync(MirrorRig.Family, rig.Ends(rig.NewBootstrap), Within());
        await second.Mirror(MirrorRig.Family)!.CheckStrayWritesAsync();

        var originals = rig.ReadAll(rig.NewBootstrap, start);
        var onOld = rig.ReadAll(rig.OldBootstrap, start);
        var strayContents = strays.Select(MirrorRig.Content).ToHashSet();
        var copies = onOld.Where(r => !strayContents.Contains(r.Content)).ToList();
        Assert.Equal(written.Count, originals.Count);
        // Every original once, in order per partition: nothing copied twice, nothing missing.
        Assert.Equal(originals.Select(r => r.Content), copies.Select(r => r.Content));
        Assert.Equal(strays.Count, onOld.Count - copies.Count);

        var figures = second.Figures(MirrorRig.Family)!;
        output.WriteLine($"copied {figures.Totals.Copied}, strays {string.Join(",", figures.Partitions.Select(p => p.StrayWrites))}; " +
            string.Join(" | ", rig.Logs.Entries.Where(e => e.EventId is 4402 or 4409).Select(e => e.Message)));
        Assert.Equal(written.Count, figures.Totals.Copied);
        Assert.Equal([0L, 0, strays.Count, 0], figures.Partitions.Select(p => p.StrayWrites));
        Assert.Contains(rig.Logs.Entries, e => e.EventId == 4409 && e.Message.Contains($"read back {copiedBeforeTheRestart - checkpointed + strays.Count} record(s)", StringComparison.Ordinal));
        await second.StopMirrorAsync(MirrorRig.Family);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task Mirror_WhenTheOldClusterIsDownLongerThanItsDeliveryTimeout_RetriesAndResumes_WithoutCopyingTwice()
    {
        await using var rig = MirrorRig.Start(partitions: 3);
        var start = rig.Ends(rig.NewBootstrap);
        var options = rig.Options with { DeliveryTimeout = TimeSpan.FromSeconds(2), AdminTimeout = TimeSpan.FromSeconds(2), RetryBackoff = TimeSpan.FromMilliseconds(200) };
        await using var mirror = await rig.BeginAsync(start, options);
        var written = Enumerable.Range(0, 900).Select(i => TestRecord.Numbered(i, rig.Partitions)).ToList();
        await MirrorRig.ProduceAsync(rig.NewBootstrap, written.Take(300));
        await mirror.WaitCopiedAsync(rig.Ends(rig.NewBootstrap), Within());

        foreach (var broker in rig.Old.BrokerIds)
        {
            rig.Old.SetBrokerDown(broker);
        }
        await MirrorRig.ProduceAsync(rig.NewBootstrap, written.Skip(300).Take(300));
        await MirrorRig.UntilAsync(() => mirror.Figures().State == MirrorState.Retrying, "the mirror to give up on its copies and retry");
        var failed = mirror.Figures();
        output.WriteLine($"while down: {failed.State} ({failed.Error}), copied {failed.Totals.Copied}, lag {failed.Totals.LagRecords} records / {failed.Totals.MaxLagMs} ms");
        Assert.NotNull(failed.Error);
        Assert.True(failed.Totals.LagRecords > 0);
        foreach (var broker in rig.Old.BrokerIds)
        {
            rig.Old.SetBrokerUp(broker);
        }
        await MirrorRig.ProduceAsync(rig.NewBootstrap, written.Skip(600));
        await mirror.WaitCopiedAsync(rig.Ends(rig.NewBootstrap), Within(90));

        var copies = rig.ReadAll(rig.OldBootstrap, start);
        Assert.Equal(written.OrderBy(r => r.Partition).Select(MirrorRig.Content), copies.Select(r => r.Content));
        var figures = mirror.Figures();
        Assert.Equal(MirrorState.Running, figures.State);
        Assert.Equal(written.Count, figures.Totals.Copied);
        Assert.Equal(0, figures.Totals.StrayWrites);
        Assert.Contains(rig.Logs.Entries, e => e.EventId == 4404);
    }

    [Fact]
    public async Task StrayWrites_OfAProducerWritingTheOldClusterDirectly_AreCountedOnExactlyThosePartitions_LoggedOncePerIncrease()
    {
        await using var rig = MirrorRig.Start(partitions: 4);
        var start = rig.Ends(rig.NewBootstrap);
        var registry = new Prometheus.CollectorRegistry();
        var metrics = new MirrorMetrics(registry);
        await using var mirror = await rig.BeginAsync(start);

        // Copies and stray writes land on the old cluster side by side.
        var copying = MirrorRig.ProduceAsync(rig.NewBootstrap, Enumerable.Range(0, 800).Select(i => TestRecord.Numbered(i, rig.Partitions)));
        var bypassing = MirrorRig.ProduceAsync(rig.OldBootstrap,
            Enumerable.Range(0, 5).Select(i => TestRecord.Numbered(i, 1, "bypass") with { Partition = 1 })
                .Concat(Enumerable.Range(0, 9).Select(i => TestRecord.Numbered(i, 1, "bypass") with { Partition = 3 })));
        await Task.WhenAll(copying, bypassing);
        await mirror.WaitCopiedAsync(rig.Ends(rig.NewBootstrap), Within());
        // The periodic check finds them (and logs each partition's increase once).
        await MirrorRig.UntilAsync(() => mirror.Figures().Totals.StrayWrites == 14, "14 stray writes");
        await MirrorRig.UntilAsync(() => rig.Logs.Entries.Count(e => e.EventId == 4403) >= 2, "the stray writes logged");
        await mirror.CheckStrayWritesAsync();
        await mirror.CheckStrayWritesAsync();

        var figures = mirror.Figures();
        Assert.Equal([0L, 5, 0, 9], figures.Partitions.Select(p => p.StrayWrites));
        Assert.Equal(800, figures.Totals.Copied);
        var logged = rig.Logs.Entries.Where(e => e.EventId == 4403).Select(e => e.Message).ToList();
        output.WriteLine(string.Join(Environment.NewLine, logged));
        Assert.All(logged, m => Assert.True(m.Contains("orders.events[1]", StringComparison.Ordinal) || m.Contains("orders.events[3]", StringComparison.Ordinal), m));
        // Once per increase: as many entries as the count rose in steps, never more than the strays.
        Assert.InRange(logged.Count(m => m.Contains("[1]", StringComparison.Ordinal)), 1, 5);
        Assert.InRange(logged.Count(m => m.Contains("[3]", StringComparison.Ordinal)), 1, 9);

        metrics.Publish(figures);
        var text = await Scrape(registry);
        Assert.Contains("switchback_mirror_stray_writes{family=\"orders\",partition=\"orders.events-1\"} 5", text);
        Assert.Contains("switchback_mirror_stray_writes{family=\"orders\",partition=\"orders.events-3\"} 9", text);
        Assert.Contains("switchback_mirror_stray_writes{family=\"orders\",partition=\"total\"} 14", text);
        Assert.Contains("switchback_mirror_copied_records_total{family=\"orders\",partition=\"total\"} 800", text);
    }

    [Fact]
    public async Task WaitCopiedAsync_CompletesOnceEverythingBelowTheEndsIsCopied_AndIsCancellable()
    {
        await using var rig = MirrorRig.Start(partitions: 2);
        var start = rig.Ends(rig.NewBootstrap);
        var mirror = await rig.BeginAsync(start);

        Assert.True(mirror.WaitCopiedAsync(start, CancellationToken.None).IsCompletedSuccessfully);
        Assert.Throws<ArgumentException>(() => { _ = mirror.WaitCopiedAsync(new Dictionary<TopicPartition, long> { [new TopicPartition("other", 0)] = 1 }, CancellationToken.None); });

        // Waiting for records not written yet: completed by their copies' acknowledgements.
        var target = start.ToDictionary(p => p.Key, p => p.Value + 50);
        var waiting = mirror.WaitCopiedAsync(target, Within());
        Assert.False(waiting.IsCompleted);
        await MirrorRig.ProduceAsync(rig.NewBootstrap, Enumerable.Range(0, 100).Select(i => TestRecord.Numbered(i, rig.Partitions)));
        await waiting;
        Assert.All(rig.Ends(rig.OldBootstrap), p => Assert.True(p.Value >= target[p.Key]));

        using var cancel = new CancellationTokenSource();
        var beyond = mirror.WaitCopiedAsync(target.ToDictionary(p => p.Key, p => p.Value + 1000), cancel.Token);
        Assert.False(beyond.IsCompleted);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => beyond);

        var orphan = mirror.WaitCopiedAsync(target.ToDictionary(p => p.Key, p => p.Value + 1000), Within());
        await mirror.StopAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => orphan);
        Assert.Equal(MirrorState.Stopped, mirror.Figures().State);
    }

    private static async Task<string> Scrape(Prometheus.CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
