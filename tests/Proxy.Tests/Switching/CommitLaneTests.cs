using System.Net;
using Confluent.Kafka;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Tests.Faults;
using Switchback.Proxy.Upstream;
using Xunit;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// The commit lane of a read switch: an offset commit counts until the old cluster has answered it, whatever its
/// client does meanwhile.
/// </summary>
public sealed class CommitLaneTests
{
    private const short CommitVersion = 2;

    [Fact]
    public async Task ReadSwitch_ConsumerGoneWithCommitInFlight_CopiesOffsetsOnlyAfterTheCommitLands()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 1, groupFronts: true);
        foreach (var cluster in new[] { rig.Source, rig.Target })
        {
            await SwitchingRig.ProduceDirectAsync(cluster, Enumerable.Range(0, 10).Select(i => (0, $"k{i}", $"v{i}")));
        }
        var group = $"orders-leaving-{Guid.NewGuid():N}";
        var sessions = rig.Host.State.Sessions;
        var baseline = sessions.Count;

        using (var first = await RawClient.ConnectAsync(rig.BootstrapServers))
        {
            await first.SendAsync(CommitFrame(group, offset: 3, correlationId: 1));
            var answer = await first.ReceiveFrameAsync(TimeSpan.FromSeconds(20));
            Assert.NotNull(answer);
            using var frame = PooledFrame.CopyOf(answer);
            var decoded = FrameCodec.DecodeResponse<OffsetCommitResponse>(frame, ApiKey.OffsetCommit, CommitVersion);
            Assert.Equal(0, decoded.Topics.Single().Partitions.Single().ErrorCode);
        }

        // The consumer's last commit reaches the old coordinator, which is slow to carry it out; the consumer leaves.
        var hold = rig.SourceFront!.HoldRequests(ApiKey.OffsetCommit);
        var leaving = await RawClient.ConnectAsync(rig.BootstrapServers);
        await leaving.SendAsync(CommitFrame(group, offset: 7, correlationId: 2));
        await hold.Arrived.WaitAsync(TimeSpan.FromSeconds(20));
        leaving.Dispose();
        Assert.True(await Poll.UntilAsync(() => sessions.Count <= baseline, TimeSpan.FromSeconds(20)), $"sessions {sessions.Count}, baseline {baseline}");

        var commits = rig.Host.State.Traffic.For(SwitchingRig.Family).Commits;
        var switching = rig.SwitchAsync(new { read = "target", force = true, reason = "commit lane test" });
        // Either the switch has gone on without the commit, or it waits for it in the drain.
        Assert.True(await Poll.UntilAsync(() => switching.IsCompleted || (commits.IsHeld && commits.InFlight > 0), TimeSpan.FromSeconds(30)),
            "the switch neither finished nor waited for the commit");
        hold.Release();
        var switched = await switching;
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        using var sourceAdmin = rig.DirectAdmin(rig.Source);
        using var targetAdmin = rig.DirectAdmin(rig.Target);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (await CommittedAsync(sourceAdmin, group) != 7)
        {
            Assert.True(DateTime.UtcNow < deadline, "the held commit never landed on source");
            await Task.Delay(50);
        }
        Assert.Equal(7, await CommittedAsync(targetAdmin, group));
    }

    private static byte[] CommitFrame(string group, long offset, int correlationId)
    {
        var request = new OffsetCommitRequest { GroupId = group, GenerationIdOrMemberEpoch = -1, MemberId = "" };
        var topic = new OffsetCommitRequest.OffsetCommitRequestTopic { Name = SwitchingRig.Topic };
        topic.Partitions.Add(new OffsetCommitRequest.OffsetCommitRequestPartition { PartitionIndex = 0, CommittedOffset = offset });
        request.Topics.Add(topic);
        using var frame = FrameCodec.EncodeRequest(ApiKey.OffsetCommit, CommitVersion, correlationId, "leaving-consumer", request);
        return frame.Span.ToArray();
    }

    private static async Task<long> CommittedAsync(IAdminClient admin, string group)
    {
        var result = await admin.ListConsumerGroupOffsetsAsync([new ConsumerGroupTopicPartitions(group, [new TopicPartition(SwitchingRig.Topic, 0)])]);
        return result.Single().Partitions.Single().Offset.Value;
    }
}
