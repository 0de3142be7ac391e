using Switchback.Protocol.Messages;

namespace Switchback.Protocol.Tests.Messages;

public sealed class KafkaApisTests
{
    [Theory]
    [InlineData(ApiKey.Produce, 0, 11, 9)]
    [InlineData(ApiKey.Fetch, 0, 17, 12)]
    [InlineData(ApiKey.Metadata, 0, 13, 9)]
    [InlineData(ApiKey.ApiVersions, 0, 4, 3)]
    [InlineData(ApiKey.ConsumerGroupHeartbeat, 0, 1, 0)]
    [InlineData(ApiKey.SaslHandshake, 0, 1, -1)]
    public void Versions_MatchTheDefinitions(ApiKey api, short lowest, short highest, short firstFlexible)
    {
        Assert.Equal(lowest, KafkaApis.LowestVersion(api));
        Assert.Equal(highest, KafkaApis.HighestVersion(api));
        Assert.Equal(firstFlexible, KafkaApis.FirstFlexibleVersion(api));
        Assert.True(KafkaApis.IsSupported(api, highest));
        Assert.False(KafkaApis.IsSupported(api, (short)(highest + 1)));
    }

    [Theory]
    [InlineData(ApiKey.Produce, 8, 1, 0)]
    [InlineData(ApiKey.Produce, 9, 2, 1)]
    [InlineData(ApiKey.Metadata, 13, 2, 1)]
    [InlineData(ApiKey.ApiVersions, 2, 1, 0)]
    [InlineData(ApiKey.ApiVersions, 3, 2, 0)]
    [InlineData(ApiKey.ControlledShutdown, 0, 0, 0)]
    [InlineData(ApiKey.ControlledShutdown, 1, 1, 0)]
    public void HeaderVersions_FollowFlexibility(ApiKey api, short version, short requestHeader, short responseHeader)
    {
        Assert.Equal(requestHeader, KafkaApis.RequestHeaderVersion(api, version));
        Assert.Equal(responseHeader, KafkaApis.ResponseHeaderVersion(api, version));
    }

    [Fact]
    public void Definitions_CoverEveryClientFacingApi()
    {
        ApiKey[] expected =
        [
            ApiKey.Produce, ApiKey.Fetch, ApiKey.ListOffsets, ApiKey.Metadata, ApiKey.OffsetCommit, ApiKey.OffsetFetch,
            ApiKey.FindCoordinator, ApiKey.JoinGroup, ApiKey.Heartbeat, ApiKey.LeaveGroup, ApiKey.SyncGroup,
            ApiKey.DescribeGroups, ApiKey.ListGroups, ApiKey.SaslHandshake, ApiKey.ApiVersions, ApiKey.CreateTopics,
            ApiKey.DeleteTopics, ApiKey.DeleteRecords, ApiKey.InitProducerId, ApiKey.OffsetForLeaderEpoch,
            ApiKey.AddPartitionsToTxn, ApiKey.AddOffsetsToTxn, ApiKey.EndTxn, ApiKey.TxnOffsetCommit,
            ApiKey.DescribeConfigs, ApiKey.DescribeCluster, ApiKey.SaslAuthenticate, ApiKey.ConsumerGroupHeartbeat,
        ];
        foreach (var api in expected)
        {
            Assert.Contains(api, KafkaApis.Defined);
            Assert.Equal(api, KafkaMessages.CreateRequest(api)!.ApiKey);
            Assert.Equal(api, KafkaMessages.CreateResponse(api)!.ApiKey);
        }
        Assert.Equal(72, KafkaApis.Defined.Count);
        Assert.Null(KafkaMessages.CreateRequest(ApiKey.LeaderAndIsr));
    }
}
