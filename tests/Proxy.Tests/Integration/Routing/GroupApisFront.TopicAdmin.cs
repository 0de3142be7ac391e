using System.Collections.Concurrent;
using System.Globalization;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>One entry of a topic-admin request a front's broker received, and the error it answered it with.</summary>
/// <param name="Name">The topic, or the config resource's name as the broker got it.</param>
/// <param name="Partition">The partition (DeleteRecords), -1 for anything else.</param>
public sealed record TopicAdminReceipt(ApiKey ApiKey, string Name, int Partition, int Broker, ErrorCode Error);

/// <summary>One config of a resource that a front's broker was asked to change (AlterConfigs or IncrementalAlterConfigs).</summary>
/// <param name="Resource">The config resource's name as the broker got it.</param>
/// <param name="Operation">IncrementalAlterConfigs' operation (0 set, 1 delete, 2 append, 3 subtract); -1 for AlterConfigs, which sets a whole config.</param>
public sealed record ConfigAlteration(ApiKey ApiKey, sbyte ResourceType, string Resource, int Broker, string Config, string? Value, sbyte Operation);

/// <summary>
/// The topic-admin APIs, which librdkafka's mock does not have either: CreateTopics (the topic is created in the
/// mock), CreatePartitions and DeleteTopics (checked against the mock's topics and remembered here, as the mock can
/// neither grow nor remove one), DeleteRecords (served only by the partition's leader as the mock's Metadata names
/// it, NOT_LEADER_OR_FOLLOWER elsewhere; the mock keeps its records), DescribeConfigs (a few fixed topic configs;
/// a broker's own resource only on that broker, INVALID_REQUEST for another id, as a broker does), and AlterConfigs
/// and IncrementalAlterConfigs (every resource recorded with the configs it names and answered without error; the
/// described configs do not change).
/// </summary>
public sealed partial class GroupApisFront
{
    private const ErrorCode TopicAlreadyExists = (ErrorCode)36;
    private const ErrorCode InvalidPartitions = (ErrorCode)37;
    private const short MockMetadataVersion = 12;

    private readonly ConcurrentDictionary<string, byte> _deletedTopics = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _partitionCounts = new(StringComparer.Ordinal);

    /// <summary>Every topic-admin entry this cluster's brokers received, for asserting where requests went.</summary>
    public ConcurrentQueue<TopicAdminReceipt> TopicAdmin { get; } = new();

    /// <summary>Every config this cluster's brokers were asked to change, per resource.</summary>
    public ConcurrentQueue<ConfigAlteration> ConfigAlterations { get; } = new();

    private static readonly ApiKey[] TopicAdminApis =
    [
        ApiKey.CreateTopics, ApiKey.CreatePartitions, ApiKey.DeleteTopics, ApiKey.DeleteRecords, ApiKey.DescribeConfigs,
        ApiKey.AlterConfigs, ApiKey.IncrementalAlterConfigs,
    ];

    private static bool IsTopicAdmin(ApiKey apiKey) => Array.IndexOf(TopicAdminApis, apiKey) >= 0;

    /// <summary>Advertises the topic-admin APIs at every version the project's codec reads (the front answers them with it).</summary>
    private static void AddTopicAdminApis(ApiVersionsResponse response)
    {
        response.ApiKeys.RemoveAll(a => IsTopicAdmin((ApiKey)a.ApiKeyValue));
        foreach (var apiKey in TopicAdminApis)
        {
            response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion
            {
                ApiKeyValue = (short)apiKey,
                MinVersion = KafkaApis.LowestVersion(apiKey),
                MaxVersion = KafkaApis.HighestVersion(apiKey),
            });
        }
    }

    private async Task<byte[]> AnswerTopicAdminAsync(Request request, int brokerId)
    {
        var topics = await MockTopicsAsync();
        switch (request.ApiKey)
        {
            case ApiKey.CreateTopics:
                {
                    var create = FrameCodec.DecodeBody<CreateTopicsRequest>(request.Body, request.Version);
                    var response = new CreateTopicsResponse();
                    foreach (var topic in create.Topics)
                    {
                        var exists = topics.ContainsKey(topic.Name) && !_deletedTopics.ContainsKey(topic.Name);
                        var partitions = topic.Assignments.Count > 0 ? topic.Assignments.Count : topic.NumPartitions > 0 ? topic.NumPartitions : 1;
                        var replication = topic.Assignments.Count > 0 ? topic.Assignments[0].BrokerIds.Count : topic.ReplicationFactor > 0 ? topic.ReplicationFactor : 1;
                        var error = exists ? TopicAlreadyExists : ErrorCode.None;
                        if (!exists && !create.validateOnly)
                        {
                            if (!_deletedTopics.TryRemove(topic.Name, out _))
                            {
                                _cluster.CreateTopic(topic.Name, partitions, replication);
                            }
                        }
                        Received(request, topic.Name, -1, brokerId, error);
                        response.Topics.Add(new CreateTopicsResponse.CreatableTopicResult
                        {
                            Name = topic.Name,
                            ErrorCode = (short)error,
                            ErrorMessage = exists ? $"Topic '{topic.Name}' already exists." : null,
                            TopicId = exists ? Guid.Empty : Guid.NewGuid(), // this cluster's own id
                            NumPartitions = exists ? -1 : partitions,
                            ReplicationFactor = exists ? (short)-1 : (short)replication,
                        });
                    }
                    response.Topics.Reverse(); // a broker answers from a map: not necessarily in request order
                    return Encode(request, response);
                }
            case ApiKey.CreatePartitions:
                {
                    var grow = FrameCodec.DecodeBody<CreatePartitionsRequest>(request.Body, request.Version);
                    var response = new CreatePartitionsResponse();
                    foreach (var topic in grow.Topics)
                    {
                        var error = ErrorCode.None;
                        string? message = null;
                        if (!topics.TryGetValue(topic.Name, out var known) || _deletedTopics.ContainsKey(topic.Name))
                        {
                            error = ErrorCode.UnknownTopicOrPartition;
                        }
                        else if (topic.Count <= _partitionCounts.GetValueOrDefault(topic.Name, known.Partitions.Count))
                        {
                            error = InvalidPartitions;
                            message = $"Topic '{topic.Name}' already has at least {topic.Count} partitions.";
                        }
                        else if (!grow.ValidateOnly)
                        {
                            _partitionCounts[topic.Name] = topic.Count;
                        }
                        Received(request, topic.Name, -1, brokerId, error);
                        response.Results.Add(new CreatePartitionsResponse.CreatePartitionsTopicResult { Name = topic.Name, ErrorCode = (short)error, ErrorMessage = message });
                    }
                    return Encode(request, response);
                }
            case ApiKey.DeleteTopics:
                {
                    var delete = FrameCodec.DecodeBody<DeleteTopicsRequest>(request.Body, request.Version);
                    var response = new DeleteTopicsResponse();
                    var named = request.Version < 6
                        ? delete.TopicNames.ConvertAll(n => new DeleteTopicsRequest.DeleteTopicState { Name = n })
                        : delete.Topics;
                    foreach (var topic in named)
                    {
                        var name = topic.Name ?? topics.Values.FirstOrDefault(t => t.TopicId == topic.TopicId && topic.TopicId != Guid.Empty)?.Name;
                        var error = name is null ? ErrorCode.UnknownTopicId
                            : !topics.ContainsKey(name) || !_deletedTopics.TryAdd(name, 0) ? ErrorCode.UnknownTopicOrPartition
                            : ErrorCode.None;
                        Received(request, name ?? topic.TopicId.ToString(), -1, brokerId, error);
                        response.Responses.Add(new DeleteTopicsResponse.DeletableTopicResult
                        {
                            Name = name,
                            TopicId = name is not null && topics.TryGetValue(name, out var known) ? known.TopicId : topic.TopicId,
                            ErrorCode = (short)error,
                        });
                    }
                    response.Responses.Reverse(); // a broker answers from a map: not necessarily in request order
                    return Encode(request, response);
                }
            case ApiKey.DeleteRecords:
                {
                    var delete = FrameCodec.DecodeBody<DeleteRecordsRequest>(request.Body, request.Version);
                    var response = new DeleteRecordsResponse();
                    foreach (var topic in delete.Topics)
                    {
                        var answered = new DeleteRecordsResponse.DeleteRecordsTopicResult { Name = topic.Name };
                        foreach (var partition in topic.Partitions)
                        {
                            var (error, lowWatermark) = await DeleteRecordsAsync(topics, topic.Name, partition, brokerId);
                            Received(request, topic.Name, partition.PartitionIndex, brokerId, error);
                            answered.Partitions.Add(new DeleteRecordsResponse.DeleteRecordsPartitionResult
                            {
                                PartitionIndex = partition.PartitionIndex,
                                LowWatermark = lowWatermark,
                                ErrorCode = (short)error,
                            });
                        }
                        response.Topics.Add(answered);
                    }
                    return Encode(request, response);
                }
            case ApiKey.AlterConfigs:
                {
                    var alter = FrameCodec.DecodeBody<AlterConfigsRequest>(request.Body, request.Version);
                    var response = new AlterConfigsResponse();
                    foreach (var resource in alter.Resources)
                    {
                        Received(request, resource.ResourceName, -1, brokerId, ErrorCode.None);
                        foreach (var config in resource.Configs)
                        {
                            ConfigAlterations.Enqueue(new ConfigAlteration(request.ApiKey, resource.ResourceType, resource.ResourceName, brokerId, config.Name, config.Value, -1));
                        }
                        response.Responses.Add(new AlterConfigsResponse.AlterConfigsResourceResponse
                        {
                            ResourceType = resource.ResourceType,
                            ResourceName = resource.ResourceName,
                            ErrorMessage = null,
                        });
                    }
                    response.Responses.Reverse(); // a broker answers from a map: not necessarily in request order
                    return Encode(request, response);
                }
            case ApiKey.IncrementalAlterConfigs:
                {
                    var alter = FrameCodec.DecodeBody<IncrementalAlterConfigsRequest>(request.Body, request.Version);
                    var response = new IncrementalAlterConfigsResponse();
                    foreach (var resource in alter.Resources)
                    {
                        Received(request, resource.ResourceName, -1, brokerId, ErrorCode.None);
                        foreach (var config in resource.Configs)
                        {
                            ConfigAlterations.Enqueue(new ConfigAlteration(request.ApiKey, resource.ResourceType, resource.ResourceName, brokerId, config.Name, config.Value, config.ConfigOperation));
                        }
                        response.Responses.Add(new IncrementalAlterConfigsResponse.AlterConfigsResourceResponse
                        {
                            ResourceType = resource.ResourceType,
                            ResourceName = resource.ResourceName,
                            ErrorMessage = null,
                        });
                    }
                    response.Responses.Reverse(); // a broker answers from a map: not necessarily in request order
                    return Encode(request, response);
                }
            default:
                {
                    var describe = FrameCodec.DecodeBody<DescribeConfigsRequest>(request.Body, request.Version);
                    var response = new DescribeConfigsResponse();
                    foreach (var resource in describe.Resources)
                    {
                        var result = DescribeConfigs(topics, resource, brokerId);
                        Received(request, resource.ResourceName, -1, brokerId, (ErrorCode)result.ErrorCode);
                        response.Results.Add(result);
                    }
                    return Encode(request, response);
                }
        }
    }

    private void Received(Request request, string name, int partition, int brokerId, ErrorCode error) =>
        TopicAdmin.Enqueue(new TopicAdminReceipt(request.ApiKey, name, partition, brokerId, error));

    /// <summary>The mock's topics as its Metadata tells them.</summary>
    private async Task<Dictionary<string, MetadataResponse.MetadataResponseTopic>> MockTopicsAsync()
    {
        var metadata = await ExchangeAsync<MetadataResponse>(_cluster.BrokerIds[0], ApiKey.Metadata, MockMetadataVersion,
            new MetadataRequest { Topics = null, AllowAutoTopicCreation = false });
        return metadata.Topics.Where(t => t.Name is not null).ToDictionary(t => t.Name!, StringComparer.Ordinal);
    }

    private async Task<(ErrorCode Error, long LowWatermark)> DeleteRecordsAsync(Dictionary<string, MetadataResponse.MetadataResponseTopic> topics,
        string topic, DeleteRecordsRequest.DeleteRecordsPartition partition, int brokerId)
    {
        if (!topics.TryGetValue(topic, out var known) || _deletedTopics.ContainsKey(topic)
            || known.Partitions.FirstOrDefault(p => p.PartitionIndex == partition.PartitionIndex) is not { } led)
        {
            return (ErrorCode.UnknownTopicOrPartition, -1);
        }
        if (led.LeaderId != brokerId)
        {
            return (ErrorCode.NotLeaderOrFollower, -1);
        }
        var end = await ExchangeAsync<ListOffsetsResponse>(brokerId, ApiKey.ListOffsets, 1, new ListOffsetsRequest
        {
            ReplicaId = -1,
            Topics = [new ListOffsetsRequest.ListOffsetsTopic { Name = topic, Partitions = [new ListOffsetsRequest.ListOffsetsPartition { PartitionIndex = partition.PartitionIndex, Timestamp = -1 }] }],
        });
        var highWatermark = end.Topics[0].Partitions[0].Offset;
        if (partition.Offset > highWatermark)
        {
            return (ErrorCode.OffsetOutOfRange, -1);
        }
        // -1 means up to the high watermark; the mock keeps its records either way.
        return (ErrorCode.None, partition.Offset < 0 ? highWatermark : partition.Offset);
    }

    private DescribeConfigsResponse.DescribeConfigsResult DescribeConfigs(Dictionary<string, MetadataResponse.MetadataResponseTopic> topics,
        DescribeConfigsRequest.DescribeConfigsResource resource, int brokerId)
    {
        var result = new DescribeConfigsResponse.DescribeConfigsResult { ResourceType = resource.ResourceType, ResourceName = resource.ResourceName };
        (string Name, string Value)[] configs;
        switch (resource.ResourceType)
        {
            case 2 when topics.ContainsKey(resource.ResourceName) && !_deletedTopics.ContainsKey(resource.ResourceName):
                configs = [("cleanup.policy", "delete"), ("retention.ms", "604800000")];
                break;
            case 2:
                result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                result.ErrorMessage = $"Topic '{resource.ResourceName}' does not exist.";
                return result;
            case 4 or 8 when resource.ResourceName.Length == 0 || resource.ResourceName == brokerId.ToString(CultureInfo.InvariantCulture):
                configs = resource.ResourceType == 4 ? [("broker.id", brokerId.ToString(CultureInfo.InvariantCulture))] : [("kafka", "INFO")];
                break;
            default:
                result.ErrorCode = (short)ErrorCode.InvalidRequest;
                result.ErrorMessage = $"Unexpected broker id, expected {brokerId} or empty string, but received {resource.ResourceName}";
                return result;
        }
        foreach (var (name, value) in configs)
        {
            if (resource.ConfigurationKeys is { } keys && !keys.Contains(name))
            {
                continue;
            }
            result.Configs.Add(new DescribeConfigsResponse.DescribeConfigsResourceResult
            {
                Name = name,
                Value = value,
                IsDefault = resource.ResourceType == 2,
                ConfigSource = resource.ResourceType == 2 ? (sbyte)5 : (sbyte)4, // DEFAULT_CONFIG, STATIC_BROKER_CONFIG
            });
        }
        return result;
    }
}
