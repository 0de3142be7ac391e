using System.Diagnostics;
using System.Net;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Upstream;
using Xunit;
using Xunit.Abstractions;
using ClientGroupProtocol = Confluent.Kafka.GroupProtocol;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// Writing a group's offsets on a cluster where the group has a history, against librdkafka's mock cluster (which
/// refuses a commit without a member for any group it has seen) with groups made by real Confluent.Kafka consumers.
/// </summary>
public sealed class GroupOffsetWriterTests(ITestOutputHelper output)
{
    private const string Topic = SwitchingRig.Topic;
    private const int Partitions = 2;

    [Fact]
    public async Task Write_NewGroup_CommitsWithoutMember()
    {
        using var cluster = await StartClusterAsync();
        await using var upstream = Upstream(cluster);
        var group = $"orders-new-{Guid.NewGuid():N}";
        var writer = Writer(upstream, new GroupMembers());

        var written = await writer.WriteAsync("c", group, Offsets(3, 4), new GroupWriteProgress(), Deadline());

        Assert.True(written.Succeeded, written.Describe());
        Assert.Equal("without a member", written.WrittenAs);
        Assert.Equal(new long[] { 3L, 4L }, await CommittedAsync(cluster, group));
    }

    [Fact]
    public async Task Write_ClassicGroupWhoseMembersLeft_CommitsAsMemberOfItsOwn()
    {
        using var cluster = await StartClusterAsync();
        await using var upstream = Upstream(cluster);
        var group = $"orders-classic-{Guid.NewGuid():N}";
        ConsumeCommitAndLeave(cluster, group, ClientGroupProtocol.Classic, Offsets(1, 2));
        var writer = Writer(upstream, new GroupMembers());

        var clock = Stopwatch.StartNew();
        var written = await writer.WriteAsync("c", group, Offsets(7, 5), new GroupWriteProgress(), Deadline());
        output.WriteLine($"written in {clock.ElapsedMilliseconds} ms: {written}");

        Assert.True(written.Succeeded, written.Describe());
        Assert.Equal("as a member of the proxy's own", written.WrittenAs);
        Assert.Equal(new long[] { 7L, 5L }, await CommittedAsync(cluster, group));
    }

    [Fact]
    public async Task Write_ConsumerProtocolGroupWhoseMembersLeft_CommitsAsMemberOfItsOwn()
    {
        using var cluster = await StartClusterAsync();
        await using var upstream = Upstream(cluster);
        var group = $"orders-kip848-{Guid.NewGuid():N}";
        ConsumeCommitAndLeave(cluster, group, ClientGroupProtocol.Consumer, Offsets(1, 2));
        // What the proxy would have learned from the group's heartbeats through it.
        var members = new GroupMembers();
        members.ConsumerHeartbeat("c", group, "gone-member", null, 1);
        members.Gone("c", group, ["gone-member"]);
        var writer = Writer(upstream, members);

        var written = await writer.WriteAsync("c", group, Offsets(8, 6), new GroupWriteProgress(), Deadline());
        output.WriteLine(written.ToString());

        Assert.True(written.Succeeded, written.Describe());
        Assert.Equal("as a member of the proxy's own", written.WrittenAs);
        Assert.Equal(new long[] { 8L, 6L }, await CommittedAsync(cluster, group));
    }

    [Fact]
    public async Task Write_ClassicGroupWithAMemberTheProxySaw_RemovesItAndCommitsAsMemberOfItsOwn()
    {
        using var cluster = await StartClusterAsync();
        await using var upstream = Upstream(cluster);
        var group = $"orders-classic-member-{Guid.NewGuid():N}";
        using var member = JoinAndCommit(cluster, group, ClientGroupProtocol.Classic, Offsets(1, 2));
        // The proxy saw it join (a client of the proxy would since have moved to another cluster; this one has not,
        // and rejoins once removed: the proxy's own member then shares a generation with it).
        var members = new GroupMembers();
        members.ClassicJoined("c", group, member.MemberId, null, 1, "range", null);
        var writer = Writer(upstream, members);

        var written = await writer.WriteAsync("c", group, Offsets(9, 7), new GroupWriteProgress(), Deadline());
        output.WriteLine(written.ToString());

        Assert.True(written.Succeeded, written.Describe());
        Assert.Equal(1, written.StaleMembersRemoved);
        Assert.Empty(members.On("c", group));
        Assert.Equal(new long[] { 9L, 7L }, await CommittedAsync(cluster, group));
        member.Close();
    }

    [Fact]
    public async Task Write_ConsumerProtocolGroupWithAMemberTheProxySaw_RemovesItAndCommitsAsMemberOfItsOwn()
    {
        using var cluster = await StartClusterAsync();
        await using var upstream = Upstream(cluster);
        var group = $"orders-kip848-member-{Guid.NewGuid():N}";
        using var member = JoinAndCommit(cluster, group, ClientGroupProtocol.Consumer, Offsets(1, 2));
        var members = new GroupMembers();
        members.ConsumerHeartbeat("c", group, member.MemberId, null, 1);
        var writer = Writer(upstream, members);

        var written = await writer.WriteAsync("c", group, Offsets(9, 7), new GroupWriteProgress(), Deadline());
        output.WriteLine(written.ToString());

        Assert.True(written.Succeeded, written.Describe());
        Assert.Equal(1, written.StaleMembersRemoved);
        Assert.Equal(new long[] { 9L, 7L }, await CommittedAsync(cluster, group));
        member.Close();
    }

    private static CancellationToken Deadline() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    private static Dictionary<TopicPartition, long> Offsets(params long[] offsets) =>
        offsets.Select((o, p) => (o, p)).ToDictionary(x => new TopicPartition(Topic, x.p), x => x.o);

    private static async Task<MockKafkaCluster> StartClusterAsync()
    {
        var cluster = MockKafkaCluster.Start(1);
        cluster.CreateTopic(Topic, Partitions);
        await SwitchingRig.ProduceDirectAsync(cluster, Enumerable.Range(0, 20).Select(i => (i % Partitions, $"k{i}", $"v{i}")));
        return cluster;
    }

    private static UpstreamCluster Upstream(MockKafkaCluster cluster) =>
        new(new ClusterConfig("c", 0, [.. cluster.BootstrapServers.Split(',').Select(s => new DnsEndPoint(s[..s.LastIndexOf(':')], int.Parse(s[(s.LastIndexOf(':') + 1)..])))]),
            Limits, NullLogger.Instance);

    private static GroupOffsetWriter Writer(UpstreamCluster upstream, GroupMembers members) =>
        new(_ => upstream, members, Limits, NullLogger.Instance);

    private static readonly LimitsConfig Limits = new(100 * 1024 * 1024, 64, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5),
        TimeSpan.FromSeconds(30), 1000, TimeSpan.FromMinutes(10));

    /// <summary>A consumer joins the group on the cluster directly, commits <paramref name="offsets"/>, and leaves.</summary>
    private void ConsumeCommitAndLeave(MockKafkaCluster cluster, string group, ClientGroupProtocol protocol, Dictionary<TopicPartition, long> offsets)
    {
        using var consumer = JoinAndCommit(cluster, group, protocol, offsets);
        output.WriteLine($"{protocol} member {consumer.MemberId} leaves");
        consumer.Close();
    }

    /// <summary>A consumer joins the group on the cluster directly and commits <paramref name="offsets"/>; it stays (the caller closes it).</summary>
    private IConsumer<string, string> JoinAndCommit(MockKafkaCluster cluster, string group, ClientGroupProtocol protocol, Dictionary<TopicPartition, long> offsets)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = group,
            GroupProtocol = protocol,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        };
        if (protocol == ClientGroupProtocol.Classic)
        {
            config.SessionTimeoutMs = 6000;
            config.HeartbeatIntervalMs = 500;
        }
        var consumer = new ConsumerBuilder<string, string>(config).SetLogHandler(static (_, _) => { }).Build();
        consumer.Subscribe(Topic);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (consumer.Consume(TimeSpan.FromMilliseconds(100)) is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the consumer got no record");
        }
        consumer.Commit([.. offsets.Select(o => new TopicPartitionOffset(o.Key, o.Value))]);
        return consumer;
    }

    private static async Task<long[]> CommittedAsync(MockKafkaCluster cluster, string group)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).SetLogHandler(static (_, _) => { }).Build();
        var partitions = Enumerable.Range(0, Partitions).Select(p => new TopicPartition(Topic, p)).ToList();
        var result = await admin.ListConsumerGroupOffsetsAsync([new ConsumerGroupTopicPartitions(group, partitions)]);
        var offsets = result.Single().Partitions.ToDictionary(p => p.Partition.Value, p => p.Offset.Value);
        return [.. partitions.Select(p => offsets.GetValueOrDefault(p.Partition.Value, -1001))];
    }
}
