using System.Net;
using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Switching;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Translation;

/// <summary>
/// The timestamp strategy: the target holds the source's records with their timestamps, at other offsets (records of
/// its own, older, came first). A group reads half-way through the proxy, leaves, and its reads switch: it resumes on
/// the target at the last record it had consumed (at-least-once: that one record per partition is read again). The
/// target is reached through a <see cref="TimestampListOffsetsFront"/>, by the proxy and by the translator alike, since
/// librdkafka's mock cluster does not look offsets up by timestamp (it answers -1).
/// </summary>
public sealed class TimestampReadSwitchTests(ITestOutputHelper output)
{
    private const int Partitions = 2;
    private const int RecordsPerPartition = 30;
    private const int TargetOwnRecords = 7;

    [Fact]
    public async Task DataParityGate_ComparesNewestTimestamps_RedWhileTargetTrails_GreenOnceItHasTheNewest()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: Partitions, timestampTarget: true,
            settings: new Dictionary<string, string?> { ["Families:0:OffsetTranslation:Strategy"] = "timestamp" });
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        // Target holds more records than source (its own first), so end offsets would call it ahead; by timestamps it trails.
        await ProduceAsync(rig.Target, Enumerable.Range(0, TargetOwnRecords).Select(i => ($"pre-{i}", start.AddMinutes(-5).AddMilliseconds(i))));
        var replicated = Enumerable.Range(0, 10).Select(i => ($"r{i}", start.AddMilliseconds(10 * i))).ToList();
        await ProduceAsync(rig.Source, replicated);
        await ProduceAsync(rig.Target, replicated);
        var newer = Enumerable.Range(10, 5).Select(i => ($"r{i}", start.AddSeconds(30).AddMilliseconds(10 * i))).ToList();
        await ProduceAsync(rig.Source, newer);

        var refused = await rig.SwitchAsync(new { read = "target", reason = "timestamp gate" });
        output.WriteLine(refused.ToString());
        Assert.Equal(HttpStatusCode.Conflict, refused.Status);
        var gate = refused.Body.GetProperty("failed").EnumerateArray().Single(g => g.GetProperty("gate").GetString() == "data-parity-read");
        Assert.Contains("timestamps compared", gate.GetProperty("summary").GetString(), StringComparison.Ordinal);
        Assert.All(gate.GetProperty("evidence").EnumerateArray(), p => Assert.True(p.GetProperty("behindMs").GetInt64() >= 30_000, p.ToString()));

        await ProduceAsync(rig.Target, newer);
        var switched = await rig.SwitchAsync(new { read = "target", reason = "timestamp gate" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
    }

    [Fact]
    public async Task ReadSwitch_TimestampStrategy_ResumesAtTheLastConsumedRecordsTimestamp()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: Partitions, timestampTarget: true,
            settings: new Dictionary<string, string?> { ["Families:0:OffsetTranslation:Strategy"] = "timestamp" });
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        await ProduceAsync(rig.Target, Enumerable.Range(0, TargetOwnRecords).Select(i => ($"pre-{i}", start.AddMinutes(-5).AddMilliseconds(i))));
        var records = Enumerable.Range(0, RecordsPerPartition).Select(i => ($"r{i}", start.AddMilliseconds(10 * i))).ToList();
        await ProduceAsync(rig.Source, records);
        await ProduceAsync(rig.Target, records);

        var group = $"orders-ts-{Guid.NewGuid():N}";
        Dictionary<int, long> committed;
        List<string> before;
        int commitFailures;
        using (var reader = new GroupReader(rig.BootstrapServers, group, GroupProtocol.Classic, SwitchingRig.Topic, output))
        {
            // Half of all records, and some of each partition (a partition without a committed offset would start at the
            // target's beginning, by auto.offset.reset, which is not what is tested here).
            reader.Take(() => reader.Delivered.Count < Partitions * RecordsPerPartition / 2 || reader.Committed.Count < Partitions, commit: true);
            reader.AssertNoFatalError();
            committed = new Dictionary<int, long>(reader.Committed);
            before = [.. reader.Delivered];
            commitFailures = reader.CommitFailures;
        } // the member leaves: the offset-parity gate refuses a switch while one is attached

        var switched = await rig.SwitchAsync(new { read = "target", reason = "timestamp read switch" });
        output.WriteLine(switched.ToString());
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        Assert.All(switched.Body.GetProperty("gates").EnumerateArray(), g => Assert.True(g.GetProperty("passed").GetBoolean(), g.ToString()));
        var offsets = switched.Body.GetProperty("details").GetProperty("offsetsCopied").EnumerateArray().Single(g => g.GetProperty("group").GetString() == group)
            .GetProperty("offsets").EnumerateArray().ToDictionary(o => o.GetProperty("partition").GetInt32());
        Assert.Equal(committed.Count, offsets.Count);
        foreach (var (partition, old) in committed)
        {
            var entry = offsets[partition];
            Assert.True(entry.GetProperty("how").GetString() == "timestamp", entry.ToString());
            Assert.Equal(old, entry.GetProperty("oldOffset").GetInt64());
            // The last record consumed (source offset old - 1) is at old - 1 + TargetOwnRecords on the target.
            Assert.Equal(old - 1 + TargetOwnRecords, entry.GetProperty("newOffset").GetInt64());
        }
        Assert.True(rig.TargetTimestamps!.Answered >= committed.Count, $"the front answered {rig.TargetTimestamps.Answered} partition(s) by timestamp");

        using var after = new GroupReader(rig.BootstrapServers, group, GroupProtocol.Classic, SwitchingRig.Topic, output);
        var all = new HashSet<string>(Enumerable.Range(0, Partitions).SelectMany(p => records.Select(r => $"{p}:{r.Item1}")));
        after.Take(() => !all.IsSubsetOf(before.Concat(after.Delivered)), commit: true);
        after.AssertNoFatalError();
        output.WriteLine($"before {before.Count}, after {after.Delivered.Count}: {string.Join(",", after.Delivered)}");
        Assert.DoesNotContain(after.Delivered, v => v.Contains("pre-", StringComparison.Ordinal));
        // Resumes at the translated position: on each partition, the record before the committed offset comes first.
        foreach (var (partition, old) in committed)
        {
            Assert.Equal($"{partition}:r{old - 1}", after.Delivered.First(v => v.StartsWith($"{partition}:", StringComparison.Ordinal)));
        }
        // Nothing skipped (the Take above ends only when every record was delivered); read again: the last consumed
        // record of each partition, once (and whatever a failed commit before the switch left uncommitted).
        var reread = before.Count + after.Delivered.Count - before.Concat(after.Delivered).Distinct().Count();
        Assert.InRange(reread, committed.Count, committed.Count + commitFailures);
    }

    /// <summary>Each record to every partition, with its timestamp; values name the partition and the record.</summary>
    private static async Task ProduceAsync(MockKafkaCluster cluster, IEnumerable<(string Name, DateTimeOffset Time)> records)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = true,
            // Small batches (the mock answers a Fetch with one batch per partition), so the group's consumer reads the
            // partitions side by side and is half-way through each when it stops.
            BatchNumMessages = 3,
        }).SetLogHandler(static (_, _) => { }).Build();
        foreach (var (name, time) in records)
        {
            foreach (var partition in Enumerable.Range(0, Partitions))
            {
                producer.Produce(new TopicPartition(SwitchingRig.Topic, partition),
                    new Message<string, string> { Key = name, Value = $"{partition}:{name}", Timestamp = new Timestamp(time) });
            }
        }
        await Task.Run(() => producer.Flush(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, producer.Flush(TimeSpan.Zero));
    }
}
