namespace Switchback.Protocol.Tests.Primitives;

public sealed class ApiKeyTests
{
    private static readonly (ApiKey Key, short Wire)[] Pinned =
    [
        (ApiKey.Produce, 0), (ApiKey.Fetch, 1), (ApiKey.ListOffsets, 2), (ApiKey.Metadata, 3),
        (ApiKey.LeaderAndIsr, 4), (ApiKey.StopReplica, 5), (ApiKey.UpdateMetadata, 6), (ApiKey.ControlledShutdown, 7),
        (ApiKey.OffsetCommit, 8), (ApiKey.OffsetFetch, 9), (ApiKey.FindCoordinator, 10), (ApiKey.JoinGroup, 11),
        (ApiKey.Heartbeat, 12), (ApiKey.LeaveGroup, 13), (ApiKey.SyncGroup, 14), (ApiKey.DescribeGroups, 15),
        (ApiKey.ListGroups, 16), (ApiKey.SaslHandshake, 17), (ApiKey.ApiVersions, 18), (ApiKey.CreateTopics, 19),
        (ApiKey.DeleteTopics, 20), (ApiKey.DeleteRecords, 21), (ApiKey.InitProducerId, 22),
        (ApiKey.OffsetForLeaderEpoch, 23), (ApiKey.AddPartitionsToTxn, 24), (ApiKey.AddOffsetsToTxn, 25),
        (ApiKey.EndTxn, 26), (ApiKey.WriteTxnMarkers, 27), (ApiKey.TxnOffsetCommit, 28), (ApiKey.DescribeAcls, 29),
        (ApiKey.CreateAcls, 30), (ApiKey.DeleteAcls, 31), (ApiKey.DescribeConfigs, 32), (ApiKey.AlterConfigs, 33),
        (ApiKey.AlterReplicaLogDirs, 34), (ApiKey.DescribeLogDirs, 35), (ApiKey.SaslAuthenticate, 36),
        (ApiKey.CreatePartitions, 37), (ApiKey.CreateDelegationToken, 38), (ApiKey.RenewDelegationToken, 39),
        (ApiKey.ExpireDelegationToken, 40), (ApiKey.DescribeDelegationToken, 41), (ApiKey.DeleteGroups, 42),
        (ApiKey.ElectLeaders, 43), (ApiKey.IncrementalAlterConfigs, 44), (ApiKey.AlterPartitionReassignments, 45),
        (ApiKey.ListPartitionReassignments, 46), (ApiKey.OffsetDelete, 47), (ApiKey.DescribeClientQuotas, 48),
        (ApiKey.AlterClientQuotas, 49), (ApiKey.DescribeUserScramCredentials, 50),
        (ApiKey.AlterUserScramCredentials, 51), (ApiKey.Vote, 52), (ApiKey.BeginQuorumEpoch, 53),
        (ApiKey.EndQuorumEpoch, 54), (ApiKey.DescribeQuorum, 55), (ApiKey.AlterPartition, 56),
        (ApiKey.UpdateFeatures, 57), (ApiKey.Envelope, 58), (ApiKey.FetchSnapshot, 59), (ApiKey.DescribeCluster, 60),
        (ApiKey.DescribeProducers, 61), (ApiKey.BrokerRegistration, 62), (ApiKey.BrokerHeartbeat, 63),
        (ApiKey.UnregisterBroker, 64), (ApiKey.DescribeTransactions, 65), (ApiKey.ListTransactions, 66),
        (ApiKey.AllocateProducerIds, 67), (ApiKey.ConsumerGroupHeartbeat, 68), (ApiKey.ConsumerGroupDescribe, 69),
        (ApiKey.ControllerRegistration, 70), (ApiKey.GetTelemetrySubscriptions, 71), (ApiKey.PushTelemetry, 72),
        (ApiKey.AssignReplicasToDirs, 73), (ApiKey.ListClientMetricsResources, 74),
        (ApiKey.DescribeTopicPartitions, 75), (ApiKey.ShareGroupHeartbeat, 76), (ApiKey.ShareGroupDescribe, 77),
        (ApiKey.ShareFetch, 78), (ApiKey.ShareAcknowledge, 79), (ApiKey.AddRaftVoter, 80),
        (ApiKey.RemoveRaftVoter, 81), (ApiKey.UpdateRaftVoter, 82), (ApiKey.InitializeShareGroupState, 83),
        (ApiKey.ReadShareGroupState, 84), (ApiKey.WriteShareGroupState, 85), (ApiKey.DeleteShareGroupState, 86),
        (ApiKey.ReadShareGroupStateSummary, 87),
    ];

    [Fact]
    public void EveryMember_HasItsPinnedWireValue()
    {
        foreach (var (key, wire) in Pinned)
        {
            Assert.Equal(wire, (short)key);
        }
        Assert.Equal(Pinned.Length, Enum.GetValues<ApiKey>().Length);
    }
}
