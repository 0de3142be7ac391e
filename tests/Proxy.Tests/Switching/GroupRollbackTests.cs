using System.Diagnostics;
using System.Net;
using Confluent.Kafka;
using Xunit;
using Xunit.Abstractions;
using AuditLog = Switchback.Proxy.Switching.AuditLog;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// A family whose consumer groups (classic and KIP-848; some members gone, some still attached) have committed
/// offsets is switched (reads and writes, forced) and rolled back while the groups' members are fresh on both
/// clusters, then switched and rolled back again once those sessions have expired, where each group has a history
/// on both clusters. Every rollback must answer 200 and every group must resume on the old cluster exactly at the
/// offsets it had reached: the first record it is given on each partition is the one at its committed position.
/// </summary>
/// <remarks>
/// The records are on both clusters at the same offsets, as replication would leave them (values name the cluster
/// that served them). Classic members use a 6 s session timeout: librdkafka's mock cluster elects a classic group's
/// leader only when a timer of the group's session timeout (less 1 s) fires after a member leaves, so with the 45 s
/// default every rejoin (and the proxy's own member, on a rollback) would wait most of a minute. For the same reason
/// the second switch comes once those 6 s sessions have expired rather than 60 s later: what it proves (the groups
/// have a history but no live member on the cluster the offsets are written to) holds from then on.
/// </remarks>
public sealed class GroupRollbackTests(ITestOutputHelper output)
{
    private const int Partitions = 4;
    private const int ClassicSessionTimeoutMs = 6000;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ReadWriteSwitch_RolledBackAtOnceAndAgainLater_EveryGroupResumesWhereItWas()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: Partitions);
        var run = Guid.NewGuid().ToString("N")[..8];
        await ProduceBothAsync(rig, 0, 200);

        // Members that commit and leave, and members that stay attached (caught up, polling, committing each record).
        var leaving = new[] { new LeavingGroup($"orders-left-classic-{run}", GroupProtocol.Classic), new LeavingGroup($"orders-left-kip848-{run}", GroupProtocol.Consumer) };
        var attached = new List<AttachedMember>();
        try
        {
            attached.Add(new AttachedMember(rig, $"orders-attached-classic-{run}", GroupProtocol.Classic, output));
            attached.Add(new AttachedMember(rig, $"orders-attached-kip848-{run}", GroupProtocol.Consumer, output));
            await Task.WhenAll(leaving.Select(g => Task.Run(() => g.ConsumeCommitAndLeave(rig, 80, output))));
            await Task.WhenAll(attached.Select(a => a.CaughtUpAsync(rig.EndOffsets(rig.Source))));
            await RunPairsAsync(rig, run, leaving, attached);
        }
        finally
        {
            foreach (var member in attached)
            {
                await member.DisposeAsync();
            }
        }
        Assert.DoesNotContain("\"failed\"", rig.AuditText(), StringComparison.Ordinal);
    }

    private async Task RunPairsAsync(SwitchingRig rig, string run, LeavingGroup[] leaving, List<AttachedMember> attached)
    {
        var produced = 200;
        var consumerAttached = attached[1];
        for (var pair = 1; pair <= 2; pair++)
        {
            var assignedBefore = consumerAttached.Assignments;
            var clock = Stopwatch.StartNew();
            var switched = await rig.SwitchAsync(new { write = "target", read = "target", force = true, reason = $"group rollback test, pair {pair}" });
            output.WriteLine($"pair {pair}: switch answered in {clock.ElapsedMilliseconds} ms: {switched}");
            Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
            AssertCopied(switched, leaving.Select(g => g.Name).Concat(attached.Select(a => a.Group)));

            // The KIP-848 member moves to target as soon as its next heartbeat is refused there. The classic one does
            // not on the mock cluster (target, which has never seen its group, refuses its heartbeats with an error
            // it does not rejoin on; it keeps its generation on source), so a classic group whose member first joins
            // while reads are on target gives the second pair a classic group with a history on target.
            if (pair == 1)
            {
                var late = new AttachedMember(rig, $"orders-late-classic-{run}", GroupProtocol.Classic, output);
                attached.Add(late);
                await late.CaughtUpAsync(rig.EndOffsets(rig.Target));
            }
            // Rolled back while the groups are fresh on both clusters: once the KIP-848 member has its partitions on
            // target (about a second after the switch; the classic newcomer takes a few more to join there).
            await consumerAttached.AssignedAgainAsync(assignedBefore);
            var rolledBack = await rig.RollbackAsync(new { reason = $"group rollback test, pair {pair}" });
            var sinceRollback = Stopwatch.StartNew();
            output.WriteLine($"pair {pair}: rollback {clock.ElapsedMilliseconds} ms after the switch: {rolledBack}");
            Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
            AssertCopied(rolledBack, leaving.Select(g => g.Name).Concat(attached.Select(a => a.Group)));
            var rolledBackAt = attached.Select(a => a.Mark()).ToList();

            // Attached members: given the next records from source, starting exactly where they had committed.
            var reached = rig.EndOffsets(rig.Source);
            await ProduceAsync(rig, "source", produced, 100);
            var ends = rig.EndOffsets(rig.Source);
            for (var i = 0; i < attached.Count; i++)
            {
                await attached[i].CaughtUpAsync(ends);
                attached[i].AssertResumedAt(rolledBackAt[i], reached, "source");
            }
            await ProduceAsync(rig, "target", produced, 100); // replication catches up: target holds the same records
            produced += 100;
            Assert.Equal(ends, rig.EndOffsets(rig.Target));

            // Members that had left: a new member starts on source at the group's committed position, nothing skipped.
            foreach (var group in leaving)
            {
                await group.ResumeAndAssertAsync(rig, output);
            }

            if (pair == 1)
            {
                // The second pair comes once every classic session left on target by this pair (the clients' and
                // the proxy's own member's, 6 s) has certainly expired: the groups then have a history on both
                // clusters and no live member on target, where a commit without a member fails on the mock.
                var expired = TimeSpan.FromMilliseconds(2 * ClassicSessionTimeoutMs) - sinceRollback.Elapsed;
                if (expired > TimeSpan.Zero)
                {
                    await Task.Delay(expired);
                }
            }
        }

        foreach (var member in attached)
        {
            member.AssertNoGapsAndNoErrors();
        }
    }

    [Fact]
    public async Task Rollback_WhoseOffsetsAreRefused_Answers503NamingEachGroupPartitionAndError()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: Partitions);
        await ProduceBothAsync(rig, 0, 200);
        var group = new LeavingGroup($"orders-refused-{Guid.NewGuid():N}", GroupProtocol.Classic);
        await Task.Run(() => group.ConsumeCommitAndLeave(rig, 20, output));
        var switched = await rig.SwitchAsync(new { read = "target", force = true, reason = "refusal test" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        // Source refuses the commit without a member (the group has a history there) and, injected, the commit the
        // proxy then makes as a member of its own.
        const short OffsetCommit = 8, UnknownMemberId = 25;
        rig.Source.PushRequestErrors(OffsetCommit, UnknownMemberId, UnknownMemberId);
        var refused = await rig.RollbackAsync(new { reason = "refusal test" });
        output.WriteLine(refused.ToString());

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.Status);
        var error = refused.Body.GetProperty("error").GetString()!;
        Assert.StartsWith("The rollback of 'orders' failed: the offsets of 1 group(s) could not be written on cluster 'source': ", error, StringComparison.Ordinal);
        Assert.EndsWith("; nothing changed.", error, StringComparison.Ordinal);
        var named = string.Join(", ", Enumerable.Range(0, Partitions).Select(p => $"{SwitchingRig.Topic}[{p}] UNKNOWN_MEMBER_ID"));
        Assert.Contains($"group '{group.Name}' on cluster 'source': {named}, because a commit without a member is refused while the group has members", error, StringComparison.Ordinal);
        var failure = Assert.Single(refused.Body.GetProperty("failures").EnumerateArray());
        Assert.Equal((group.Name, "source"), (failure.GetProperty("group").GetString(), failure.GetProperty("cluster").GetString()));
        Assert.Contains("the commit as a member of the proxy's own was refused too", failure.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(Enumerable.Range(0, Partitions).Select(p => (SwitchingRig.Topic, p, "UNKNOWN_MEMBER_ID")),
            failure.GetProperty("partitions").EnumerateArray().Select(p => (p.GetProperty("topic").GetString()!, p.GetProperty("partition").GetInt32(), p.GetProperty("error").GetString()!)));
        var audit = new AuditLog(rig.StateDirectory).ReadAll().Last();
        Assert.Equal(("rollback", "failed"), (audit.Action, audit.Outcome));
        Assert.Contains($"group '{group.Name}' on cluster 'source': {named}", audit.Detail, StringComparison.Ordinal);
        var family = await rig.FamilyAsync();
        Assert.Equal("target", family.Body.GetProperty("read").GetString());

        // Nothing injected any more: the same rollback goes through, and the group resumes on source where it was.
        rig.Source.ClearRequestErrors(OffsetCommit);
        var rolledBack = await rig.RollbackAsync(new { reason = "refusal test, again" });
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        await group.ResumeAndAssertAsync(rig, output, records: 8);
    }

    private static void AssertCopied(AdminAnswer answer, IEnumerable<string> groups)
    {
        var copied = answer.Body.GetProperty("details").GetProperty("offsetsCopied").EnumerateArray()
            .Select(c => c.GetProperty("group").GetString()).ToHashSet();
        Assert.All(groups, g => Assert.Contains(g, copied));
    }

    private static Task ProduceBothAsync(SwitchingRig rig, int from, int count) =>
        Task.WhenAll(ProduceAsync(rig, "source", from, count), ProduceAsync(rig, "target", from, count));

    /// <summary>Records <paramref name="from"/>.. straight to a cluster, round-robin over the partitions, naming the cluster.</summary>
    private static Task ProduceAsync(SwitchingRig rig, string cluster, int from, int count) =>
        SwitchingRig.ProduceDirectAsync(rig.ClusterNamed(cluster), Enumerable.Range(from, count).Select(i => (i % Partitions, $"k{i}", $"v{i}@{cluster}")));

    private static ConsumerConfig ConsumerConfigFor(SwitchingRig rig, string group, GroupProtocol protocol)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            GroupId = group,
            GroupProtocol = protocol,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            FetchWaitMaxMs = 50,
        };
        if (protocol == GroupProtocol.Classic)
        {
            config.SessionTimeoutMs = ClassicSessionTimeoutMs;
            config.HeartbeatIntervalMs = 500;
        }
        return config;
    }

    /// <summary>Which cluster served a record (its value names it).</summary>
    private static string ServedBy(string value) => value[(value.IndexOf('@', StringComparison.Ordinal) + 1)..];

    /// <summary>A group whose members consume some records, commit each, and leave; later a new member resumes it.</summary>
    private sealed class LeavingGroup(string name, GroupProtocol protocol)
    {
        private readonly Dictionary<int, long> _committed = [];

        public string Name { get; } = name;

        public void ConsumeCommitAndLeave(SwitchingRig rig, int records, ITestOutputHelper output) =>
            Consume(rig, records, [.. Enumerable.Range(0, Partitions)], output, expectFirst: null);

        /// <summary>
        /// Checks that source holds the group's committed position, then has a new member consume: its first record
        /// on each partition is the one at that position, served by source. It commits what it takes and leaves.
        /// </summary>
        public async Task ResumeAndAssertAsync(SwitchingRig rig, ITestOutputHelper output, int records = 40)
        {
            using var admin = rig.DirectAdmin(rig.Source);
            var partitions = Enumerable.Range(0, Partitions).Select(p => new TopicPartition(SwitchingRig.Topic, p)).ToList();
            var onSource = (await admin.ListConsumerGroupOffsetsAsync([new ConsumerGroupTopicPartitions(Name, partitions)])).Single()
                .Partitions.ToDictionary(p => p.Partition.Value, p => p.Offset.Value);
            output.WriteLine($"{Name}: committed on source {string.Join(",", onSource.OrderBy(p => p.Key).Select(p => $"{p.Key}:{p.Value}"))}; "
                + $"reached {string.Join(",", _committed.OrderBy(p => p.Key).Select(p => $"{p.Key}:{p.Value}"))}");
            foreach (var (partition, position) in _committed)
            {
                Assert.Equal(position, onSource[partition]);
            }
            // Every partition with records past the group's position must give its first one.
            var ends = rig.EndOffsets(rig.Source);
            var remaining = Enumerable.Range(0, Partitions).Where(p => ends[p] > _committed.GetValueOrDefault(p, 0)).ToList();
            var left = remaining.Sum(p => ends[p] - _committed.GetValueOrDefault(p, 0));
            await Task.Run(() => Consume(rig, (int)Math.Min(records, left), remaining, output, expectFirst: new Dictionary<int, long>(_committed)));
        }

        private void Consume(SwitchingRig rig, int records, IReadOnlyList<int> partitions, ITestOutputHelper output, Dictionary<int, long>? expectFirst)
        {
            using var consumer = new ConsumerBuilder<string, string>(ConsumerConfigFor(rig, Name, protocol)).SetLogHandler(static (_, _) => { }).Build();
            consumer.Subscribe(SwitchingRig.Topic);
            var first = new Dictionary<int, long>();
            var taken = 0;
            var deadline = DateTime.UtcNow + Patience;
            // At least that many records, and one from each of those partitions: the group has a position on each,
            // and each partition's first record is checked against it.
            while (taken < records || partitions.Any(p => !first.ContainsKey(p)))
            {
                Assert.True(DateTime.UtcNow < deadline, $"{Name}: consumer stalled after {taken} record(s)");
                var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
                if (result is not { IsPartitionEOF: false, Message: not null })
                {
                    continue;
                }
                var partition = result.Partition.Value;
                if (first.TryAdd(partition, result.Offset.Value) && expectFirst is not null)
                {
                    Assert.True(expectFirst.GetValueOrDefault(partition, 0) == result.Offset.Value,
                        $"{Name}: partition {partition} resumed at {result.Offset.Value}, committed position {expectFirst.GetValueOrDefault(partition, 0)}");
                    Assert.Equal("source", ServedBy(result.Message.Value));
                }
                consumer.Commit(result);
                _committed[partition] = result.Offset.Value + 1;
                taken++;
            }
            output.WriteLine($"{Name}: took {taken}, first per partition {string.Join(",", first.OrderBy(p => p.Key).Select(p => $"{p.Key}:{p.Value}"))}; leaves");
            consumer.Close();
        }
    }

    /// <summary>
    /// A member that stays in its group for the whole test: a thread polls, and commits each record it is given.
    /// </summary>
    private sealed class AttachedMember : IAsyncDisposable
    {
        private readonly IConsumer<string, string> _consumer;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _pump;
        private readonly Lock _lock = new();
        private readonly List<(int Partition, long Offset, string Value)> _delivered = [];
        private readonly List<string> _errors = [];
        private readonly ITestOutputHelper _output;
        private int _assignments;
        private int _commitFailures;

        public AttachedMember(SwitchingRig rig, string group, GroupProtocol protocol, ITestOutputHelper output)
        {
            Group = group;
            _output = output;
            _consumer = new ConsumerBuilder<string, string>(ConsumerConfigFor(rig, group, protocol))
                .SetLogHandler(static (_, _) => { })
                .SetErrorHandler((_, e) => { lock (_lock) { _errors.Add($"{(e.IsFatal ? "FATAL " : "")}{e.Code}: {e.Reason}"); } })
                .SetPartitionsAssignedHandler((_, partitions) => { Interlocked.Increment(ref _assignments); })
                .Build();
            _consumer.Subscribe(SwitchingRig.Topic);
            _pump = Task.Factory.StartNew(Pump, TaskCreationOptions.LongRunning);
        }

        public string Group { get; }

        private void Pump()
        {
            while (!_stop.IsCancellationRequested)
            {
                var result = _consumer.Consume(TimeSpan.FromMilliseconds(100));
                if (result is not { IsPartitionEOF: false, Message: not null })
                {
                    continue;
                }
                lock (_lock)
                {
                    _delivered.Add((result.Partition.Value, result.Offset.Value, result.Message.Value));
                }
                try
                {
                    _consumer.Commit(result);
                }
                catch (KafkaException e)
                {
                    Interlocked.Increment(ref _commitFailures);
                    _output.WriteLine($"{Group}: commit of {result.TopicPartitionOffset} failed: {e.Error.Code}");
                }
            }
        }

        /// <summary>Deliveries so far, and assignments: the point the assertions after a rollback count from.</summary>
        public (int Delivered, int Assignments) Mark()
        {
            lock (_lock)
            {
                return (_delivered.Count, Volatile.Read(ref _assignments));
            }
        }

        /// <summary>How many times the member has been given partitions.</summary>
        public int Assignments => Volatile.Read(ref _assignments);

        /// <summary>Waits until the member has been given partitions more than <paramref name="before"/> times.</summary>
        public async Task AssignedAgainAsync(int before)
        {
            var deadline = DateTime.UtcNow + Patience;
            while (Assignments <= before)
            {
                Assert.True(DateTime.UtcNow < deadline, $"{Group}: not given partitions again within {Patience.TotalSeconds} s");
                await Task.Delay(20);
            }
        }

        /// <summary>Waits until the member has been given every record below <paramref name="ends"/>.</summary>
        public async Task CaughtUpAsync(long[] ends)
        {
            var deadline = DateTime.UtcNow + Patience;
            while (true)
            {
                lock (_lock)
                {
                    if (Enumerable.Range(0, ends.Length).All(p => ends[p] == 0 || _delivered.Any(d => d.Partition == p && d.Offset == ends[p] - 1)))
                    {
                        return;
                    }
                }
                Assert.True(DateTime.UtcNow < deadline, $"{Group}: not given every record up to {string.Join(",", ends)} within {Patience.TotalSeconds} s");
                await Task.Delay(20);
            }
        }

        /// <summary>After <paramref name="mark"/>, each partition's first record is the one at <paramref name="reached"/>, served by <paramref name="cluster"/>.</summary>
        public void AssertResumedAt((int Delivered, int Assignments) mark, long[] reached, string cluster)
        {
            lock (_lock)
            {
                var after = _delivered.Skip(mark.Delivered).ToList();
                var first = after.GroupBy(d => d.Partition).ToDictionary(g => g.Key, g => g.First().Offset);
                _output.WriteLine($"{Group}: after the rollback, first per partition {string.Join(",", first.OrderBy(p => p.Key).Select(p => $"{p.Key}:{p.Value}"))}; "
                    + $"reached {string.Join(",", reached)}; {Volatile.Read(ref _assignments) - mark.Assignments} assignment(s) since");
                for (var p = 0; p < reached.Length; p++)
                {
                    Assert.True(first.TryGetValue(p, out var offset), $"{Group}: nothing delivered on partition {p} after the rollback");
                    Assert.True(offset == reached[p], $"{Group}: partition {p} resumed at {offset}, had reached {reached[p]}");
                }
                Assert.All(after, d => Assert.Equal(cluster, ServedBy(d.Value)));
            }
        }

        /// <summary>No partition skipped an offset, and the client reported no fatal error.</summary>
        public void AssertNoGapsAndNoErrors()
        {
            lock (_lock)
            {
                foreach (var partition in _delivered.GroupBy(d => d.Partition))
                {
                    var highest = -1L;
                    foreach (var (_, offset, _) in partition)
                    {
                        Assert.True(offset <= highest + 1, $"{Group}: partition {partition.Key} jumped from {highest} to {offset}");
                        highest = Math.Max(highest, offset);
                    }
                }
                _output.WriteLine($"{Group}: {_delivered.Count} delivered, {_commitFailures} commit failure(s), errors: {string.Join("; ", _errors)}");
                Assert.DoesNotContain(_errors, e => e.StartsWith("FATAL", StringComparison.Ordinal));
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _pump;
            _consumer.Close();
            _consumer.Dispose();
            _stop.Dispose();
        }
    }
}
