using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Confluent.Kafka;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// An exactly-once pipeline through the proxy: a read-committed consumer in a group reads the input topic, and a
/// transactional producer writes one output record per input record and sends the consumer's offsets to the same
/// transaction. The family's reads and writes move to target mid-way and back (more input arriving after each move):
/// every input record must appear in the committed output exactly once across both clusters, and no transaction may
/// fail. The mock clusters store no transactional offsets, so a <see cref="Integration.Routing.GroupApisFront"/> before
/// each writes them to the group when their transaction commits, as a broker does: without that the group would have
/// nothing to resume from after a move, nor anything for the switch to copy.
/// </summary>
public sealed class ConsumeTransformProduceTests(ITestOutputHelper output)
{
    private const string OutputTopic = "orders.enriched";
    private const int Inputs = 900;
    private const int PerTransaction = 50;

    // The input arrives in parts: before the switch, after it, after the rollback. Given all at once, the pipeline can
    // finish it while a switch is under way on a loaded machine, and leave nothing to process on target.
    private const int BeforeSwitch = 450;
    private const int BeforeRollback = 675;

    /// <summary>The transactional id in the family.</summary>
    [Fact]
    public Task ReadWriteSwitchAndRollback_ExactlyOncePipeline_EveryInputOnceInTheOutput() => RunAsync("orders-pipeline");

    /// <summary>An application-named id that matches no family: its transactions follow their records.</summary>
    [Fact]
    public Task ReadWriteSwitchAndRollback_ApplicationNamedId_ExactlyOncePipeline_EveryInputOnceInTheOutput() => RunAsync("enricher");

    private async Task RunAsync(string transactionalIdPrefix)
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 3, groupFronts: true);
        try
        {
            await RunAsync(rig, transactionalIdPrefix);
        }
        catch
        {
            // What the fronts refused and the proxy warned about explain a failure on a loaded machine.
            foreach (var (name, front) in new[] { ("source", rig.SourceFront!), ("target", rig.TargetFront!) })
            {
                output.WriteLine($"transactional offsets on {name}: {front.TransactionalOffsetsSummary()}");
                foreach (var refused in front.TransactionalOffsets.Where(r => r.Outcome != Integration.Routing.TransactionalOffsetsOutcome.Written))
                {
                    output.WriteLine($"  {refused}");
                }
            }
            output.WriteLine($"proxy log (warnings and closes):{Environment.NewLine}{rig.ProxyLogTail(80)}");
            throw;
        }
    }

    private async Task RunAsync(SwitchingRig rig, string transactionalIdPrefix)
    {
        foreach (var cluster in new[] { rig.Source, rig.Target })
        {
            cluster.CreateTopic(OutputTopic, 3);
        }
        await ProduceInputAsync(rig, 0, BeforeSwitch);

        var processed = new ConcurrentQueue<string>();
        var errors = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var group = $"orders-pipeline-{Guid.NewGuid():N}";
        var pipeline = Task.Run(() => RunPipeline(rig.BootstrapServers, group, $"{transactionalIdPrefix}-{Guid.NewGuid():N}", processed, errors, stop.Token));

        await WaitForAsync(() => processed.Count >= BeforeSwitch / 3, pipeline, errors, "a third of the first input before the switch");
        var switched = await rig.SwitchAsync(new { write = "target", read = "target", force = true, timeoutMs = 30_000, reason = "pipeline" });
        output.WriteLine($"switch: {switched}");
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        Assert.True(OffsetsCopied(switched) > 0, $"the switch copied no committed offsets of the group: {switched}");
        var atSwitch = processed.Count;
        await ProduceInputAsync(rig, BeforeSwitch, BeforeRollback);
        await WaitForAsync(() => processed.Count >= atSwitch + PerTransaction * 3, pipeline, errors, "three transactions on target");
        var rolledBack = await rig.RollbackAsync(new { timeoutMs = 30_000, reason = "pipeline" });
        output.WriteLine($"rollback: {rolledBack}");
        Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
        Assert.True(OffsetsCopied(rolledBack) > 0, $"the rollback copied no committed offsets of the group: {rolledBack}");
        await ProduceInputAsync(rig, BeforeRollback, Inputs);
        // Every input at least once: any the group went back to after the rollback came before the last ones.
        await WaitForAsync(() => processed.Distinct().Count() >= Inputs, pipeline, errors, "the whole input");
        await stop.CancelAsync();
        await pipeline;
        output.WriteLine($"processed {processed.Count}; switch {switched.Body.GetProperty("pauseMs")} ms, rollback {rolledBack.Body.GetProperty("pauseMs")} ms");
        output.WriteLine($"transactional offsets on source: {rig.SourceFront!.TransactionalOffsetsSummary()}; on target: {rig.TargetFront!.TransactionalOffsetsSummary()}");
        Assert.True(errors.IsEmpty, $"errors reached the application: {string.Join("; ", errors.Take(5))}");

        var outputs = ReadOutput(rig, "source").Concat(ReadOutput(rig, "target")).ToList();
        Assert.Contains(outputs, o => o.Cluster == "target");
        var twice = outputs.GroupBy(o => o.Value).Where(g => g.Count() > 1).Select(g => $"{g.Key} on {string.Join("+", g.Select(o => o.Cluster))}").ToList();
        Assert.True(twice.Count == 0, $"{twice.Count} inputs in the output more than once, e.g. {string.Join(", ", twice.Take(5))}");
        var missing = Enumerable.Range(0, Inputs).Select(i => $"out-in-{i}").Except(outputs.Select(o => o.Value)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} inputs missing from the output, e.g. {string.Join(", ", missing.Take(5))}");
    }

    /// <summary>
    /// Inputs [from, to) on both clusters, as replication that keeps offsets would leave them: the same records at the
    /// same offsets.
    /// </summary>
    private static async Task ProduceInputAsync(SwitchingRig rig, int from, int to)
    {
        foreach (var cluster in new[] { rig.Source, rig.Target })
        {
            await SwitchingRig.ProduceDirectAsync(cluster, Enumerable.Range(from, to - from).Select(i => (i % rig.Partitions, $"k{i % 16}", $"in-{i}")));
        }
        Assert.Equal(rig.EndOffsets(rig.Source), rig.EndOffsets(rig.Target));
    }

    private static void RunPipeline(string bootstrapServers, string group, string transactionalId, ConcurrentQueue<string> processed,
        ConcurrentQueue<string> errors, CancellationToken stop)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = group,
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = 50,
            SessionTimeoutMs = 10_000,
            HeartbeatIntervalMs = 500,
        }).SetLogHandler(static (_, _) => { })
        .SetErrorHandler((_, e) => errors.Enqueue($"consumer: {e.Code} {e.Reason}")).Build();
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            TransactionalId = transactionalId,
            EnableIdempotence = true,
            LingerMs = 2,
            TransactionTimeoutMs = 10_000,
        }).SetLogHandler(static (_, _) => { })
        .SetErrorHandler((_, e) => errors.Enqueue($"producer: {e.Code} {e.Reason}")).Build();
        producer.InitTransactions(TimeSpan.FromSeconds(30));
        consumer.Subscribe(SwitchingRig.Topic);
        while (!stop.IsCancellationRequested)
        {
            var batch = new List<ConsumeResult<string, string>>();
            var until = Stopwatch.StartNew();
            while (batch.Count < PerTransaction && until.ElapsedMilliseconds < 500 && !stop.IsCancellationRequested)
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { IsPartitionEOF: false } result)
                {
                    batch.Add(result);
                }
            }
            if (batch.Count == 0)
            {
                continue;
            }
            try
            {
                producer.BeginTransaction();
                foreach (var record in batch)
                {
                    producer.Produce(OutputTopic, new Message<string, string> { Key = record.Message.Key, Value = $"out-{record.Message.Value}" });
                }
                var next = batch.GroupBy(r => r.TopicPartition).Select(g => new TopicPartitionOffset(g.Key, g.Max(r => r.Offset.Value) + 1));
                producer.SendOffsetsToTransaction(next, consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(30));
                producer.CommitTransaction(TimeSpan.FromSeconds(30));
                foreach (var record in batch)
                {
                    processed.Enqueue(record.Message.Value);
                }
            }
            catch (KafkaException e)
            {
                errors.Enqueue($"transaction: {e.Error.Code} {e.Error.Reason}");
                if (e is KafkaTxnRequiresAbortException)
                {
                    producer.AbortTransaction(TimeSpan.FromSeconds(30));
                    // Re-read from the committed offsets, as an exactly-once application does after an abort.
                    foreach (var partition in consumer.Assignment)
                    {
                        var committed = consumer.Committed([partition], TimeSpan.FromSeconds(10))[0].Offset;
                        consumer.Seek(new TopicPartitionOffset(partition, committed == Offset.Unset ? Offset.Beginning : committed));
                    }
                }
                else if (e.Error.IsFatal)
                {
                    return;
                }
            }
        }
        consumer.Close();
    }

    /// <summary>The partitions whose committed offsets a switch or rollback copied, over all groups.</summary>
    private static int OffsetsCopied(AdminAnswer answer) =>
        answer.Body.GetProperty("details").GetProperty("offsetsCopied").EnumerateArray().Sum(g => g.GetProperty("partitions").GetInt32());

    private static async Task WaitForAsync(Func<bool> condition, Task pipeline, ConcurrentQueue<string> errors, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(errors.IsEmpty, $"waiting for {what}: errors reached the application: {string.Join("; ", errors.Take(5))}");
            Assert.False(pipeline.IsCompleted, $"waiting for {what}: the pipeline stopped");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"waiting for {what}: not reached in 90 s");
            await Task.Delay(20);
        }
    }

    /// <summary>The output topic's records on one cluster, read directly (the mock keeps no aborted ones here: none were aborted).</summary>
    private static List<(string Cluster, string Value)> ReadOutput(SwitchingRig rig, string clusterName)
    {
        var cluster = rig.ClusterNamed(clusterName);
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = $"reader-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 20,
            EnablePartitionEof = true,
        }).SetLogHandler(static (_, _) => { }).Build();
        var partitions = Enumerable.Range(0, 3).Select(p => new TopicPartition(OutputTopic, p)).ToList();
        var ends = partitions.ToDictionary(p => p.Partition.Value, p => consumer.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(10)).High.Value);
        var remaining = ends.Where(e => e.Value > 0).Select(e => e.Key).ToHashSet();
        consumer.Assign(remaining.Select(p => new TopicPartitionOffset(OutputTopic, p, Offset.Beginning)));
        var values = new List<(string, string)>();
        var deadline = Stopwatch.StartNew();
        while (remaining.Count > 0 && deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is not { } result)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                if (result.Offset.Value >= ends[result.Partition.Value])
                {
                    remaining.Remove(result.Partition.Value);
                }
                continue;
            }
            values.Add((clusterName, result.Message.Value));
        }
        Assert.True(remaining.Count == 0, $"could not read back all of {OutputTopic} on {clusterName}");
        return values;
    }
}
