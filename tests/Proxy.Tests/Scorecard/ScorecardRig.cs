using System.Text.Json;
using Confluent.Kafka;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Scorecard;

/// <summary>One gate of a scorecard as the admin API answered it.</summary>
public sealed record GateView(string Gate, string Status, string Summary, JsonElement Evidence)
{
    public override string ToString() => $"{Gate}: {Status} ({Summary})";
}

/// <summary>Reads a family's scorecard through the admin API and waits for a gate to turn a colour.</summary>
internal static class ScorecardRig
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    /// <summary>The family's scorecard, computed now.</summary>
    public static async Task<Dictionary<string, GateView>> ScorecardAsync(this SwitchingRig rig)
    {
        var answer = await rig.SendAsync(HttpMethod.Get, $"v1/families/{SwitchingRig.Family}/scorecard?refresh=true", null, null);
        Assert.True(answer.Status == System.Net.HttpStatusCode.OK, answer.ToString());
        return answer.Body.GetProperty("gates").EnumerateArray()
            .Select(g => new GateView(g.GetProperty("gate").GetString()!, g.GetProperty("status").GetString()!, g.GetProperty("summary").GetString()!, g.GetProperty("evidence").Clone()))
            .ToDictionary(g => g.Gate, StringComparer.Ordinal);
    }

    /// <summary>Recomputes the scorecard until <paramref name="gate"/> has <paramref name="status"/>; fails naming what it last showed.</summary>
    public static async Task<GateView> UntilGateAsync(this SwitchingRig rig, string gate, string status, string? summaryContains = null)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var card = await rig.ScorecardAsync();
            var view = card[gate];
            if (view.Status == status && (summaryContains is null || view.Summary.Contains(summaryContains, StringComparison.Ordinal)))
            {
                return view;
            }
            Assert.True(DateTime.UtcNow < deadline, $"{gate} did not turn {status}{(summaryContains is null ? "" : $" with '{summaryContains}'")} within {Patience.TotalSeconds} s; last: {view}");
            await Task.Delay(100);
        }
    }

    /// <summary>Commits a group's offset on a partition of the rig's topic, as a consumer that was assigned it (no join).</summary>
    public static async Task CommitAsync(string bootstrap, string group, int partition, long offset)
    {
        await Task.Run(() =>
        {
            using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
            {
                BootstrapServers = bootstrap,
                GroupId = group,
                EnableAutoCommit = false,
            }).SetLogHandler(static (_, _) => { }).Build();
            consumer.Assign(new TopicPartitionOffset(SwitchingRig.Topic, partition, offset));
            consumer.Commit([new TopicPartitionOffset(SwitchingRig.Topic, partition, offset)]);
            consumer.Close();
        });
    }

    /// <summary>Produces records straight to a cluster with the given timestamp.</summary>
    public static async Task ProduceDatedAsync(MockKafkaCluster cluster, int partition, int count, DateTime timestamp)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers, Acks = Acks.All })
            .SetLogHandler(static (_, _) => { }).Build();
        for (var i = 0; i < count; i++)
        {
            await producer.ProduceAsync(new TopicPartition(SwitchingRig.Topic, partition),
                new Message<string, string> { Key = $"k{i}", Value = $"v{i}", Timestamp = new Timestamp(timestamp, TimestampType.CreateTime) });
        }
    }
}
