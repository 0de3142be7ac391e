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
/// the target at the last record it had consumed (at-least-once: that one record per partition is read again).
/// </summary>
public sealed class TimestampReadSwitchTests(ITestOutputHelper output)
{
    private const int Partitions = 2;
    private const int RecordsPerPartition = 30;
    private const int TargetOwnRecords = 7;

    // librdkafka's mock cluster answers ListOffsets by timestamp with no offset (-1) even for a timestamp its last record
    // has, so here the strategy can only leave partitions untranslated; this runs against a broker that looks timestamps up.
    [Fact(Skip = "librdkafka's mock cluster does not look offsets up by timestamp (answers -1); needs a real broker")]
    public async Task ReadSwitch_TimestampStrategy_ResumesAtTheLastConsumedRecordsTimestamp()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: Partitions,
            settings: new Dictionary<string, string?> { ["Families:0:OffsetTranslation:Strategy"] = "timestamp" });
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        await ProduceAsync(rig.Target, Enumerable.Range(0, TargetOwnRecords).Select(i => ($"pre-{i}", start.AddMinutes(-5).AddMilliseconds(i))));
        var records = Enumerable.Range(0, RecordsPerPartition).Select(i => ($"r{i}", start.AddMilliseconds(10 * i))).ToList();
        await ProduceAsync(rig.Source, records);
        await ProduceAsync(rig.Target, records);

        var group = $"orders-ts-{Guid.NewGuid():N}";
        Dictionary<int, long> committed;
        List<string> before;
        using (var reader = new GroupReader(rig.BootstrapServers, group, GroupProtocol.Classic, SwitchingRig.Topic, output))
        {
            reader.Take(() => reader.Delivered.Count < RecordsPerPartition / 2, commit: true);
            committed = new Dictionary<int, long>(reader.Committed);
            before = [.. reader.Delivered.Select(v => $"{v}")];
        }

        var switched = await rig.SwitchAsync(new { read = "target", reason = "timestamp read switch" });
        output.WriteLine(switched.ToString());
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        var offsets = switched.Body.GetProperty("details").GetProperty("offsetsCopied").EnumerateArray().Single(g => g.GetProperty("group").GetString() == group)
            .GetProperty("offsets").EnumerateArray().ToDictionary(o => o.GetProperty("partition").GetInt32());
        foreach (var (partition, old) in committed)
        {
            Assert.Equal("timestamp", offsets[partition].GetProperty("how").GetString());
            // The last record consumed (source offset old - 1) is at old - 1 + TargetOwnRecords on the target.
            Assert.Equal(old - 1 + TargetOwnRecords, offsets[partition].GetProperty("newOffset").GetInt64());
        }

        using var after = new GroupReader(rig.BootstrapServers, group, GroupProtocol.Classic, SwitchingRig.Topic, output);
        var all = new HashSet<string>(Enumerable.Range(0, Partitions).SelectMany(p => records.Select(r => $"{p}:{r.Item1}")));
        after.Take(() => !all.IsSubsetOf(before.Concat(after.Delivered)), commit: true);
        output.WriteLine($"before {before.Count}, after {after.Delivered.Count}: {string.Join(",", after.Delivered)}");
        Assert.DoesNotContain(after.Delivered, v => v.Contains("pre-", StringComparison.Ordinal));
        var reread = before.Count + after.Delivered.Count - before.Concat(after.Delivered).Distinct().Count();
        Assert.Equal(committed.Count, reread); // the last consumed record of each partition, once
    }

    /// <summary>Each record to every partition, with its timestamp; values name the partition and the record.</summary>
    private static async Task ProduceAsync(MockKafkaCluster cluster, IEnumerable<(string Name, DateTimeOffset Time)> records)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers, Acks = Acks.All, EnableIdempotence = true })
            .SetLogHandler(static (_, _) => { }).Build();
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
