using System.Collections.Frozen;
using Switchback.Protocol;
using Switchback.Protocol.Messages;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>The APIs the proxy offers to clients and the versions it can handle for each.</summary>
public static class ProxyApis
{
    /// <summary>APIs answered by the proxy itself: offered whatever the upstream versions.</summary>
    public static readonly FrozenSet<ApiKey> AnsweredLocally = new[]
    {
        ApiKey.ApiVersions, ApiKey.Metadata, ApiKey.FindCoordinator, ApiKey.DescribeCluster,
    }.ToFrozenSet();

    private static readonly ApiKey[] RoutedApis =
    [
        ApiKey.Produce, ApiKey.Fetch, ApiKey.ListOffsets, ApiKey.OffsetForLeaderEpoch, ApiKey.DeleteRecords,
        ApiKey.JoinGroup, ApiKey.SyncGroup, ApiKey.Heartbeat, ApiKey.LeaveGroup, ApiKey.OffsetCommit, ApiKey.OffsetFetch,
        ApiKey.DescribeGroups, ApiKey.ListGroups, ApiKey.DeleteGroups, ApiKey.OffsetDelete, ApiKey.ConsumerGroupHeartbeat,
        ApiKey.ConsumerGroupDescribe,
        ApiKey.InitProducerId, ApiKey.AddPartitionsToTxn, ApiKey.AddOffsetsToTxn, ApiKey.EndTxn, ApiKey.TxnOffsetCommit,
        ApiKey.CreateTopics, ApiKey.DeleteTopics, ApiKey.DescribeConfigs, ApiKey.AlterConfigs, ApiKey.IncrementalAlterConfigs,
        ApiKey.CreatePartitions,
    ];

    /// <summary>Interpreted APIs and the version range the proxy parses for each (narrowed by upstreams later).</summary>
    public static readonly FrozenDictionary<ApiKey, (short Min, short Max)> Offered = Build();

    private static FrozenDictionary<ApiKey, (short, short)> Build()
    {
        var offered = new Dictionary<ApiKey, (short, short)>
        {
            [ApiKey.ApiVersions] = (0, 3),
            [ApiKey.Metadata] = (0, 12),
            [ApiKey.FindCoordinator] = (0, 4),
            [ApiKey.DescribeCluster] = (0, 1),
        };
        // Relayed APIs: the codec's full range, later narrowed to what every cluster supports.
        foreach (var apiKey in RoutedApis)
        {
            if (KafkaApis.LowestVersion(apiKey) >= 0)
            {
                offered[apiKey] = (KafkaApis.LowestVersion(apiKey), KafkaApis.HighestVersion(apiKey));
            }
        }
        return offered.ToFrozenDictionary();
    }

}
