using System.Diagnostics;
using System.Net;
using Confluent.Kafka;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// A consumer group reads through the proxy while the family's reads move to a cluster holding the same records at
/// the same offsets (as replication would leave it). Record values name the cluster they were stored on, so the
/// test can tell where each fetch was served from.
/// </summary>
public sealed class ReadSwitchTests(ITestOutputHelper output)
{
    private const int Records = 200;
    private const int CommittedBeforeSwitch = 100;
    private const int UncommittedBeforeSwitch = 10;
    // Records large enough that the consumer's prefetch queue cannot hold them all before the switch.
    private static readonly string Padding = new('x', 500);

    [Fact]
    public Task ReadSwitch_ClassicGroup_ResumesFromCommittedOffsets() => RunAsync(GroupProtocol.Classic);

    [Fact]
    public Task ReadSwitch_ConsumerGroupProtocol_ResumesFromCommittedOffsets() => RunAsync(GroupProtocol.Consumer);

    private async Task RunAsync(GroupProtocol protocol)
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 4);
        foreach (var cluster in new[] { "source", "target" })
        {
            await SwitchingRig.ProduceDirectAsync(rig.ClusterNamed(cluster),
                Enumerable.Range(0, Records).Select(i => (i % rig.Partitions, $"k{i}", $"v{i}@{cluster}#{Padding}")));
        }
        var ends = rig.EndOffsets(rig.Source);
        Assert.Equal(ends, rig.EndOffsets(rig.Target));

        var group = $"orders-readers-{Guid.NewGuid():N}";
        var config = new ConsumerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            GroupId = group,
            GroupProtocol = protocol,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            FetchWaitMaxMs = 50,
            // Small fetches, so that the consumer has not buffered everything before the switch.
            MaxPartitionFetchBytes = 1024,
            FetchMaxBytes = 4096,
            MessageMaxBytes = 4096,
            QueuedMaxMessagesKbytes = 16,
        };
        if (protocol == GroupProtocol.Classic)
        {
            config.SessionTimeoutMs = 6000;
            config.HeartbeatIntervalMs = 500;
        }
        var errors = new List<string>();
        using var consumer = new ConsumerBuilder<string, string>(config)
            .SetErrorHandler((_, e) => { lock (errors) { errors.Add($"{(e.IsFatal ? "FATAL " : "")}{e.Code}: {e.Reason}"); } })
            .SetLogHandler(static (_, _) => { })
            .Build();
        consumer.Subscribe(SwitchingRig.Topic);

        var seen = new Dictionary<(int Partition, long Offset), int>();
        var servedBy = new Dictionary<string, int> { ["source"] = 0, ["target"] = 0 };
        var committed = new Dictionary<int, long>();
        var commitFailures = 0;
        void Take(ConsumeResult<string, string> result, bool commit)
        {
            var key = (result.Partition.Value, result.Offset.Value);
            seen[key] = seen.GetValueOrDefault(key) + 1;
            Assert.Equal($"v{Index(result, rig.Partitions)}", result.Message.Value[..result.Message.Value.IndexOf('@', StringComparison.Ordinal)]);
            servedBy[result.Message.Value[(result.Message.Value.IndexOf('@', StringComparison.Ordinal) + 1)..result.Message.Value.IndexOf('#', StringComparison.Ordinal)]]++;
            if (commit)
            {
                try
                {
                    consumer.Commit(result);
                    committed[result.Partition.Value] = result.Offset.Value + 1;
                }
                catch (KafkaException e)
                {
                    commitFailures++;
                    output.WriteLine($"commit of {result.TopicPartitionOffset} failed: {e.Error.Code} {e.Error.Reason}");
                }
            }
        }

        Consume(consumer, () => seen.Count < CommittedBeforeSwitch, r => Take(r, commit: true), TimeSpan.FromSeconds(30));
        Consume(consumer, () => seen.Count < CommittedBeforeSwitch + UncommittedBeforeSwitch, r => Take(r, commit: false), TimeSpan.FromSeconds(30));
        var committedAtSwitch = new Dictionary<int, long>(committed);
        var uncommittedAtSwitch = Enumerable.Range(0, rig.Partitions)
            .Sum(p => seen.Keys.Count(k => k.Partition == p && k.Offset >= committedAtSwitch.GetValueOrDefault(p, 0)));
        Assert.Equal(0, servedBy["target"]);

        var clock = Stopwatch.StartNew();
        var switched = await rig.SwitchAsync(new { read = "target", reason = "read switch test" });
        output.WriteLine($"switch answered in {clock.ElapsedMilliseconds} ms: {switched}");
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        Assert.All(switched.Body.GetProperty("gates").EnumerateArray(), g => Assert.True(g.GetProperty("passed").GetBoolean(), g.ToString()));
        Assert.Contains(switched.Body.GetProperty("details").GetProperty("offsetsCopied").EnumerateArray(), c => c.GetProperty("group").GetString() == group);

        Consume(consumer, () => seen.Count < Records || committed.Any(c => c.Value < ends[c.Key]), r => Take(r, commit: true), TimeSpan.FromSeconds(60));
        var redelivered = seen.Values.Sum(v => v - 1);
        output.WriteLine($"{protocol}: seen {seen.Count}/{Records}, redelivered {redelivered} (uncommitted at switch {uncommittedAtSwitch}), served by source {servedBy["source"]}, by target {servedBy["target"]}, commit failures {commitFailures}");
        lock (errors)
        {
            output.WriteLine($"client errors: {string.Join("; ", errors)}");
            Assert.DoesNotContain(errors, e => e.StartsWith("FATAL", StringComparison.Ordinal));
        }

        // Nothing skipped, re-delivery bounded by what was consumed but not committed.
        Assert.Equal(Records, seen.Count);
        Assert.All(Enumerable.Range(0, rig.Partitions), p => Assert.Equal(ends[p], seen.Keys.Count(k => k.Partition == p)));
        Assert.InRange(redelivered, 0, uncommittedAtSwitch + commitFailures);
        Assert.True(servedBy["target"] > 0, "no record was fetched from target after the read switch");
        consumer.Close();

        // The group's commits now live on target: everything is committed there; source kept what it had at the switch.
        using var targetAdmin = rig.DirectAdmin(rig.Target);
        using var sourceAdmin = rig.DirectAdmin(rig.Source);
        var partitions = Enumerable.Range(0, rig.Partitions).Select(p => new TopicPartition(SwitchingRig.Topic, p)).ToList();
        var onTarget = await CommittedAsync(targetAdmin, group, partitions);
        var onSource = await CommittedAsync(sourceAdmin, group, partitions);
        output.WriteLine($"committed on target: {string.Join(",", onTarget)}; on source: {string.Join(",", onSource)}; ends {string.Join(",", ends)}");
        Assert.Equal(ends, onTarget);
        Assert.Equal(Enumerable.Range(0, rig.Partitions).Select(p => committedAtSwitch.GetValueOrDefault(p, -1001)).Select(o => o < 0 ? -1001 : o), onSource);
    }

    private static long Index(ConsumeResult<string, string> result, int partitions) => result.Offset.Value * partitions + result.Partition.Value;

    private static void Consume(IConsumer<string, string> consumer, Func<bool> more, Action<ConsumeResult<string, string>> take, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (more())
        {
            Assert.True(DateTime.UtcNow < deadline, "consumer stalled");
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result is { IsPartitionEOF: false, Message: not null })
            {
                take(result);
            }
        }
    }

    private static async Task<long[]> CommittedAsync(IAdminClient admin, string group, List<TopicPartition> partitions)
    {
        var result = await admin.ListConsumerGroupOffsetsAsync([new ConsumerGroupTopicPartitions(group, partitions)]);
        var offsets = result.Single().Partitions.ToDictionary(p => p.Partition.Value, p => p.Offset.Value);
        return [.. partitions.Select(p => offsets.GetValueOrDefault(p.Partition.Value, -1001))];
    }
}
