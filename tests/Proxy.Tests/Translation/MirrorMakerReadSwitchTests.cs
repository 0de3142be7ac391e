using System.Net;
using System.Text.Json;
using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Switching;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Translation;

/// <summary>
/// A family replicated by MirrorMaker 2 (played by <see cref="MirrorMakerStandIn"/>), whose offsets on the target are
/// shifted and gapped against the source: the target held records of its own before replication began, and the source
/// was written in transactions, whose commit markers take offsets that are not records. A group reads half-way through
/// the proxy and its members leave (while one is attached the switch is refused: it would fetch at source offsets on
/// the target until it rejoined); its reads switch to the target: it must resume there at the translated position,
/// skip nothing, and read again no more than the records between the sync used and its committed offset.
/// </summary>
public sealed class MirrorMakerReadSwitchTests(ITestOutputHelper output)
{
    private const int Partitions = 2;
    private const int RecordsPerPartition = 40;
    private const int RecordsPerTransaction = 3;
    private const int TargetOwnRecords = 5;
    private const int SyncSpacing = 8;
    private const int CommittedBeforeSwitch = 40;
    private const int UncommittedBeforeSwitch = 6;
    private static readonly string Padding = new('x', 500);

    private static readonly Dictionary<string, string?> MirrorMaker2 = new() { ["Families:0:OffsetTranslation:Strategy"] = "mirrormaker2" };

    [Fact]
    public Task ReadSwitch_ClassicGroup_ResumesAtTheSyncTranslatedPosition_AndRollsBackThroughTheSyncsReversed() =>
        RunAsync(GroupProtocol.Classic, checkpoints: false, rollBack: true);

    [Fact]
    public Task ReadSwitch_ConsumerGroupProtocol_ResumesAtTheCheckpointedPosition() => RunAsync(GroupProtocol.Consumer, checkpoints: true, rollBack: false);

    [Fact]
    public async Task DataParityGate_IsRedWhileTheSyncsLagBehindTheSourceEnd_GreenOnceCaughtUp()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: Partitions, settings: MirrorMaker2);
        var mm2 = await PrepareAsync(rig, replicated: RecordsPerPartition / 2);

        var refused = await rig.SwitchAsync(new { read = "target", reason = "replication lags" });
        output.WriteLine(refused.ToString());
        Assert.Equal(HttpStatusCode.Conflict, refused.Status);
        var gate = refused.Body.GetProperty("failed").EnumerateArray().Single(g => g.GetProperty("gate").GetString() == "data-parity-read");
        Assert.Contains("offset syncs show 'target' behind 'source'", gate.GetProperty("summary").GetString(), StringComparison.Ordinal);
        var behind = gate.GetProperty("evidence").EnumerateArray().ToList();
        Assert.Equal(Partitions, behind.Count);
        Assert.All(behind, b => Assert.Equal(RecordsPerPartition / 2, b.GetProperty("behindBy").GetInt64()));

        await mm2.ReplicateAsync();
        var switched = await rig.SwitchAsync(new { read = "target", reason = "replication caught up" });
        output.WriteLine(switched.ToString());
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        var passed = switched.Body.GetProperty("gates").EnumerateArray().Single(g => g.GetProperty("gate").GetString() == "data-parity-read");
        Assert.True(passed.GetProperty("passed").GetBoolean());
        Assert.Contains("offset syncs show 'target' has every record of 'source'", passed.GetProperty("summary").GetString(), StringComparison.Ordinal);
    }

    private async Task RunAsync(GroupProtocol protocol, bool checkpoints, bool rollBack)
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: Partitions, settings: MirrorMaker2);
        var mm2 = await PrepareAsync(rig, replicated: null);
        var sourceEnds = rig.EndOffsets(rig.Source);
        var targetEnds = rig.EndOffsets(rig.Target);
        output.WriteLine($"ends: source {string.Join(",", sourceEnds)} (records {RecordsPerPartition} per partition), target {string.Join(",", targetEnds)}");
        Assert.All(sourceEnds, e => Assert.True(e > RecordsPerPartition, "the source has no transaction markers between its records"));

        var group = $"orders-mm2-{protocol}-{Guid.NewGuid():N}".ToLowerInvariant();
        using var before = new GroupReader(rig.BootstrapServers, group, protocol, SwitchingRig.Topic, output);
        before.Take(() => before.Delivered.Count < CommittedBeforeSwitch, commit: true);
        before.Take(() => before.Delivered.Count < CommittedBeforeSwitch + UncommittedBeforeSwitch, commit: false);
        var committedAtSwitch = new Dictionary<int, long>(before.Committed);
        Dictionary<int, Switchback.Proxy.Translation.Checkpoint>? published = null;
        if (checkpoints)
        {
            published = await mm2.CheckpointAsync(group, committedAtSwitch);
        }
        if (protocol == GroupProtocol.Classic)
        {
            // Still attached, the member would go on fetching at source offsets on the target until it rejoined.
            var refused = await rig.SwitchAsync(new { read = "target", reason = "mm2 read switch, consumer attached" });
            output.WriteLine(refused.ToString());
            Assert.Equal(HttpStatusCode.Conflict, refused.Status);
            var gate = refused.Body.GetProperty("failed").EnumerateArray().Single();
            Assert.Equal("offset-parity", gate.GetProperty("gate").GetString());
            Assert.Equal(group, gate.GetProperty("evidence").EnumerateArray().Single().GetProperty("group").GetString());
        }
        before.AssertNoFatalError();
        before.Dispose(); // the group's members leave, as MirrorMaker 2's offset sync requires

        var switched = await rig.SwitchAsync(new { read = "target", reason = "mm2 read switch" });
        output.WriteLine(switched.ToString());
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        Assert.All(switched.Body.GetProperty("gates").EnumerateArray(), g => Assert.True(g.GetProperty("passed").GetBoolean(), g.ToString()));
        var copied = Offsets(switched, group);
        Assert.Equal(committedAtSwitch.Count, copied.Count);
        foreach (var (partition, old) in committedAtSwitch)
        {
            var entry = copied[partition];
            Assert.Equal(old, entry.GetProperty("oldOffset").GetInt64());
            var viaSync = mm2.ExpectedTranslation(partition, old);
            // A checkpoint is taken when it re-reads less than the syncs; where a sync sits at the committed offset they agree.
            var expected = checkpoints ? Math.Max(published![partition].Downstream, viaSync) : viaSync;
            Assert.Equal(checkpoints && expected > viaSync ? "checkpoint" : "sync", entry.GetProperty("how").GetString());
            Assert.Equal(expected, entry.GetProperty("newOffset").GetInt64());
            if (checkpoints)
            {
                Assert.Equal(mm2.ExactTranslation(partition, old), expected);
            }
        }

        // Resumes on the target: every source record delivered, none of the target's own, re-reads bounded.
        var ids = AllIds();
        using var after = new GroupReader(rig.BootstrapServers, group, protocol, SwitchingRig.Topic, output);
        var seenBefore = before.Delivered.Select(Id).ToList();
        after.Take(() => !ids.IsSubsetOf(seenBefore.Concat(after.Delivered.Select(Id))) || Enumerable.Range(0, Partitions).Any(p => after.Committed.GetValueOrDefault(p) < targetEnds[p]), commit: true);
        output.WriteLine($"after the switch: {string.Join(",", after.Delivered.Select(Id))}");
        var all = seenBefore.Concat(after.Delivered.Select(Id)).ToList();
        var reread = all.Count - all.Distinct().Count();
        output.WriteLine($"{protocol}: delivered {all.Count}, re-read {reread} (uncommitted at switch {UncommittedBeforeSwitch}, sync spacing {SyncSpacing}), commit failures {before.CommitFailures}+{after.CommitFailures}");
        after.AssertNoFatalError();
        Assert.DoesNotContain(after.Delivered, v => v.StartsWith("pre-", StringComparison.Ordinal));
        Assert.Subset(all.ToHashSet(), ids);
        var bound = UncommittedBeforeSwitch + before.CommitFailures + (checkpoints ? 0 : Partitions * SyncSpacing);
        Assert.InRange(reread, 0, bound);
        // The first record on each partition is the one at the translated position.
        foreach (var (partition, old) in committedAtSwitch)
        {
            var first = after.Delivered.Select(Id).First(v => v.StartsWith($"r{partition}-", StringComparison.Ordinal));
            Assert.Equal(copied[partition].GetProperty("newOffset").GetInt64() - TargetOwnRecords, long.Parse(first.Split('-')[1], System.Globalization.CultureInfo.InvariantCulture));
        }

        if (!rollBack)
        {
            return;
        }
        after.Dispose();
        // Back to the source: the group's offsets on the target (its end) translate through the syncs reversed.
        var rolledBack = await rig.RollbackAsync(new { reason = "mm2 rollback" });
        output.WriteLine(rolledBack.ToString());
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        var reversed = Offsets(rolledBack, group);
        foreach (var partition in Enumerable.Range(0, Partitions))
        {
            var entry = reversed[partition];
            Assert.Equal(targetEnds[partition], entry.GetProperty("oldOffset").GetInt64());
            Assert.Equal("sync", entry.GetProperty("how").GetString());
            Assert.Equal(mm2.Syncs[partition][^1].Upstream + 1, entry.GetProperty("newOffset").GetInt64());
        }
        await ProduceTransactionallyAsync(rig.Source, RecordsPerPartition, RecordsPerTransaction);
        var fresh = Enumerable.Range(0, Partitions).SelectMany(p => Enumerable.Range(RecordsPerPartition, RecordsPerTransaction).Select(i => $"r{p}-{i}")).ToHashSet();
        using var back = new GroupReader(rig.BootstrapServers, group, protocol, SwitchingRig.Topic, output);
        back.Take(() => !fresh.IsSubsetOf(back.Delivered.Select(Id)), commit: true);
        Assert.Equal(fresh, back.Delivered.Select(Id).ToHashSet()); // nothing old read again, nothing new skipped
        Assert.Equal(fresh.Count, back.Delivered.Count);
    }

    /// <summary>The target's own records first, then the source's in transactions, then replication (all, or that many per partition).</summary>
    private static async Task<MirrorMakerStandIn> PrepareAsync(SwitchingRig rig, int? replicated)
    {
        var mm2 = new MirrorMakerStandIn(rig.Source, rig.Target, SwitchingRig.Topic, Partitions, SyncSpacing);
        mm2.CreateInternalTopics();
        await SwitchingRig.ProduceDirectAsync(rig.Target,
            Enumerable.Range(0, Partitions).SelectMany(p => Enumerable.Range(0, TargetOwnRecords).Select(i => (p, $"pre-{p}-{i}", $"pre-{p}-{i}"))));
        await ProduceTransactionallyAsync(rig.Source, 0, RecordsPerPartition);
        await mm2.ReplicateAsync(replicated);
        return mm2;
    }

    /// <summary>Records <c>r{partition}-{i}</c> to every partition, <see cref="RecordsPerTransaction"/> per partition in each committed transaction.</summary>
    private static async Task ProduceTransactionallyAsync(MockKafkaCluster cluster, int from, int count)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            TransactionalId = $"mm2-source-{Guid.NewGuid():N}",
            Acks = Acks.All,
        }).SetLogHandler(static (_, _) => { }).Build();
        await Task.Run(() =>
        {
            producer.InitTransactions(TimeSpan.FromSeconds(30));
            for (var start = from; start < from + count; start += RecordsPerTransaction)
            {
                producer.BeginTransaction();
                foreach (var partition in Enumerable.Range(0, Partitions))
                {
                    for (var i = start; i < Math.Min(start + RecordsPerTransaction, from + count); i++)
                    {
                        producer.Produce(new TopicPartition(SwitchingRig.Topic, partition), new Message<string, string> { Key = $"k{partition}-{i}", Value = $"r{partition}-{i}#{Padding}" });
                    }
                }
                producer.CommitTransaction(TimeSpan.FromSeconds(30));
            }
        });
    }

    private static HashSet<string> AllIds() =>
        [.. Enumerable.Range(0, Partitions).SelectMany(p => Enumerable.Range(0, RecordsPerPartition).Select(i => $"r{p}-{i}"))];

    private static string Id(string value) => value.Split('#')[0];

    private static Dictionary<int, JsonElement> Offsets(AdminAnswer answer, string group) =>
        answer.Body.GetProperty("details").GetProperty("offsetsCopied").EnumerateArray()
            .Single(g => g.GetProperty("group").GetString() == group)
            .GetProperty("offsets").EnumerateArray().ToDictionary(o => o.GetProperty("partition").GetInt32());
}
