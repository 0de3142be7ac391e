using System.Text.Json;
using Confluent.Kafka;
using Switchback.Proxy.Fleet;

namespace Switchback.Bench;

/// <summary>
/// One fleet switch as the control topic recorded it, in milliseconds after its prepare was appended (each record's
/// create time, taken by the appending instance's producer): when the first and the last instance answered ready, the
/// commit, the last applied, and the producer-id mappings shared after the commit (idempotent producers mapped anew
/// on the new write cluster, each appended before the batch that uses it goes upstream): how many, the median and the last.
/// </summary>
public sealed record SwitchTimeline(string Action, string Coordinator, long FirstReadyMs, long LastReadyMs, long CommitMs, long LastAppliedMs,
    int Remaps, long MedianRemapMs, long LastRemapMs)
{
    /// <summary>Reads the whole control topic from <paramref name="bootstrapServers"/> and lays out each committed switch.</summary>
    public static IReadOnlyList<SwitchTimeline> Read(string bootstrapServers, string topic)
    {
        using var consumer = new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "switch-stall-timeline", // assigned, never subscribed: only a librdkafka requirement
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var records = new List<(long At, ControlRecord Record)>();
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        while (consumer.Consume(TimeSpan.FromSeconds(10)) is { } result && !result.IsPartitionEOF)
        {
            if (JsonSerializer.Deserialize<ControlRecord>(result.Message.Value, options) is { } record)
            {
                records.Add((result.Message.Timestamp.UnixTimestampMs, record));
            }
        }
        return [.. records.Select((r, i) => (r.At, r.Record, Index: i))
            .Where(r => r.Record is PrepareRecord)
            .Select(p => Lay(records, p.Index))
            .OfType<SwitchTimeline>()];
    }

    private static SwitchTimeline? Lay(List<(long At, ControlRecord Record)> records, int prepareIndex)
    {
        var (preparedAt, record) = records[prepareIndex];
        var prepare = (PrepareRecord)record;
        var ofSwitch = records.Skip(prepareIndex).Where(r => r.Record switch
        {
            ReadyRecord ready => ready.SwitchId == prepare.SwitchId,
            CommitRecord commit => commit.SwitchId == prepare.SwitchId,
            AppliedRecord applied => applied.SwitchId == prepare.SwitchId,
            _ => false,
        }).ToList();
        var commitIndex = records.FindIndex(prepareIndex, r => r.Record is CommitRecord c && c.SwitchId == prepare.SwitchId);
        if (commitIndex < 0 || !ofSwitch.Exists(r => r.Record is ReadyRecord))
        {
            return null;
        }
        var nextPrepare = records.FindIndex(commitIndex, r => r.Record is PrepareRecord);
        var remaps = records.Take(nextPrepare < 0 ? records.Count : nextPrepare).Skip(commitIndex).Where(r => r.Record is ProducerMappingRecord)
            .Select(r => r.At).Order().ToList();
        long Ms(long at) => at - preparedAt;
        return new SwitchTimeline(prepare.Action, prepare.Coordinator,
            Ms(ofSwitch.Where(r => r.Record is ReadyRecord).Min(r => r.At)),
            Ms(ofSwitch.Where(r => r.Record is ReadyRecord).Max(r => r.At)),
            Ms(records[commitIndex].At),
            Ms(ofSwitch.Where(r => r.Record is AppliedRecord).Select(r => r.At).DefaultIfEmpty(records[commitIndex].At).Max()),
            remaps.Count,
            Ms(remaps.Count > 0 ? remaps[remaps.Count / 2] : records[commitIndex].At),
            Ms(remaps.Count > 0 ? remaps[^1] : records[commitIndex].At));
    }
}
