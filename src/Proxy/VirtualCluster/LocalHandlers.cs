using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Requests the proxy answers itself, from its own view of the upstream clusters: ApiVersions, Metadata,
/// DescribeCluster and FindCoordinator. Every broker address in these answers is the proxy's.
/// </summary>
public sealed class LocalHandlers(ProxyState state)
{
    private const short HighestApiVersions = 3;

    public PooledFrame ApiVersions(PooledFrame request, short version, int correlationId)
    {
        var response = new ApiVersionsResponse();
        foreach (var apiKey in Enum.GetValues<ApiKey>())
        {
            var range = state.AdvertisedVersions(apiKey) ?? (RawRelay.IsRelayable(apiKey) ? RawRelay.Versions(state, apiKey) : null)
                ?? Security.SaslAuthenticator.AdvertisedVersions(state.Config, apiKey);
            if (range is { } r)
            {
                response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion { ApiKeyValue = (short)apiKey, MinVersion = r.Min, MaxVersion = r.Max });
            }
        }
        if (version > HighestApiVersions || version < 0)
        {
            // As a broker does: error in a v0 answer, which every client can read, listing what is supported.
            response.ErrorCode = (short)ErrorCode.UnsupportedVersion;
            return FrameCodec.EncodeResponse(ApiKey.ApiVersions, 0, correlationId, response);
        }
        return FrameCodec.EncodeResponse(ApiKey.ApiVersions, version, correlationId, response);
    }

    public async ValueTask<Task<PooledFrame>?> MetadataAsync(RequestContext context)
    {
        var request = context.Decode<MetadataRequest>();
        var routes = context.Routes;
        var response = new MetadataResponse
        {
            ClusterId = state.Config.ClusterId,
            ControllerId = -1,
        };
        var views = await ViewsAsync(context.Session.Closed).ConfigureAwait(false);
        var leftOut = await AddBrokersAsync(views, response).ConfigureAwait(false);

        var allTopics = request.Topics is null || (context.Version == 0 && request.Topics.Count == 0);
        if (allTopics)
        {
            foreach (var view in views)
            {
                foreach (var topic in view.Topics.Values)
                {
                    if (routes.ForTopic(topic.Name).Route.Read == view.ClusterName)
                    {
                        response.Topics.Add(Describe(view, topic, leftOut));
                    }
                }
            }
        }
        else
        {
            foreach (var requested in request.Topics!)
            {
                var name = requested.Name ?? state.TopicIds.NameOf(requested.TopicId, AllTopicNames(views));
                if (name is null)
                {
                    response.Topics.Add(new MetadataResponse.MetadataResponseTopic
                    {
                        ErrorCode = (short)ErrorCode.UnknownTopicId,
                        TopicId = requested.TopicId,
                    });
                    continue;
                }
                var cluster = state.Cluster(routes.ForTopic(name).Route.Read);
                var view = cluster.View;
                if (view is null || !view.Topics.ContainsKey(name))
                {
                    // Unknown here may just mean new since the last refresh.
                    try
                    {
                        view = await cluster.RefreshAsync().WaitAsync(context.Session.Closed).ConfigureAwait(false);
                    }
                    catch (UpstreamUnavailableException)
                    {
                    }
                }
                if (view is not null && view.Topics.TryGetValue(name, out var topic))
                {
                    response.Topics.Add(Describe(view, topic, leftOut));
                }
                else
                {
                    response.Topics.Add(new MetadataResponse.MetadataResponseTopic
                    {
                        ErrorCode = (short)(view is null ? ErrorCode.LeaderNotAvailable : ErrorCode.UnknownTopicOrPartition),
                        Name = name,
                        TopicId = Guid.Empty,
                    });
                }
            }
        }
        return Task.FromResult(context.Respond(response));
    }

    private static IEnumerable<string> AllTopicNames(IReadOnlyList<ClusterView> views)
    {
        foreach (var view in views)
        {
            foreach (var name in view.Topics.Keys)
            {
                yield return name;
            }
        }
    }

    /// <summary>Adds the brokers clients can reach; returns the ids of those left out for want of a port, or null.</summary>
    private async ValueTask<HashSet<int>?> AddBrokersAsync(IReadOnlyList<ClusterView> views, MetadataResponse response)
    {
        var (brokers, leftOut) = await VirtualBrokersAsync(views).ConfigureAwait(false);
        foreach (var broker in brokers)
        {
            response.Brokers.Add(new MetadataResponse.MetadataResponseBroker { NodeId = broker.NodeId, Host = broker.Host, Port = broker.Port, Rack = broker.Rack });
        }
        // Clients see the first virtual broker as the controller.
        response.ControllerId = response.Brokers.Count > 0 ? response.Brokers[0].NodeId : -1;
        return leftOut;
    }

    /// <summary>
    /// Every upstream broker of every reachable cluster as clients see it: its virtual id, on the proxy's address.
    /// A broker whose port could not be bound is left out, as a broker leaves out one that is down, and listed apart.
    /// </summary>
    private async ValueTask<(List<UpstreamBroker> Brokers, HashSet<int>? LeftOut)> VirtualBrokersAsync(IReadOnlyList<ClusterView> views)
    {
        var brokers = new List<UpstreamBroker>();
        HashSet<int>? leftOut = null;
        foreach (var view in views)
        {
            foreach (var broker in view.Brokers)
            {
                var id = state.NodeIds.ToVirtual(view.Ordinal, broker.NodeId);
                if (await state.BrokerPort(id).ConfigureAwait(false) is { } port)
                {
                    brokers.Add(new UpstreamBroker(id, state.Config.AdvertisedHost, port, broker.Rack));
                }
                else
                {
                    (leftOut ??= []).Add(id);
                }
            }
        }
        return (brokers, leftOut);
    }

    private MetadataResponse.MetadataResponseTopic Describe(ClusterView view, TopicView topic, HashSet<int>? leftOut)
    {
        var described = new MetadataResponse.MetadataResponseTopic
        {
            ErrorCode = topic.ErrorCode,
            Name = topic.Name,
            TopicId = state.TopicIds.IdOf(topic.Name),
            IsInternal = topic.IsInternal,
        };
        foreach (var partition in topic.Partitions)
        {
            var leader = state.NodeIds.ToVirtual(view.Ordinal, partition.Leader);
            var error = partition.ErrorCode;
            if (leftOut is not null && leftOut.Contains(leader))
            {
                // As a broker answers for a partition whose leader is not among the live brokers.
                leader = -1;
                error = (short)ErrorCode.LeaderNotAvailable;
            }
            described.Partitions.Add(new MetadataResponse.MetadataResponsePartition
            {
                ErrorCode = error,
                PartitionIndex = partition.Index,
                LeaderId = leader,
                // Leader epochs are per cluster; a client comparing epochs across a switch would see a bogus
                // truncation, so the proxy reports none and clients skip epoch validation.
                LeaderEpoch = -1,
                ReplicaNodes = Map(view.Ordinal, partition.Replicas, leftOut),
                IsrNodes = Map(view.Ordinal, partition.Isr, leftOut),
                OfflineReplicas = Map(view.Ordinal, partition.Offline, null),
            });
        }
        return described;
    }

    /// <summary>Maps upstream ids to virtual ones, dropping brokers left out of the answer.</summary>
    private List<int> Map(int ordinal, int[] nodes, HashSet<int>? leftOut)
    {
        var mapped = new List<int>(nodes.Length);
        foreach (var node in nodes)
        {
            var id = state.NodeIds.ToVirtual(ordinal, node);
            if (leftOut is null || !leftOut.Contains(id))
            {
                mapped.Add(id);
            }
        }
        return mapped;
    }

    public async ValueTask<Task<PooledFrame>?> DescribeClusterAsync(RequestContext context)
    {
        var views = await ViewsAsync(context.Session.Closed).ConfigureAwait(false);
        var response = new DescribeClusterResponse { ClusterId = state.Config.ClusterId, ControllerId = -1 };
        var (brokers, _) = await VirtualBrokersAsync(views).ConfigureAwait(false);
        foreach (var broker in brokers)
        {
            response.Brokers.Add(new DescribeClusterResponse.DescribeClusterBroker { BrokerId = broker.NodeId, Host = broker.Host, Port = broker.Port, Rack = broker.Rack });
        }
        response.ControllerId = response.Brokers.Count > 0 ? response.Brokers[0].BrokerId : -1;
        return Task.FromResult(context.Respond(response));
    }

    public async ValueTask<Task<PooledFrame>?> FindCoordinatorAsync(RequestContext context)
    {
        var request = context.Decode<FindCoordinatorRequest>();
        var routes = context.Routes;
        var response = new FindCoordinatorResponse();
        if (context.Version < 4)
        {
            var (error, nodeId, port, message) = await LocateAsync(routes, request.KeyType, request.Key, context.Session.Closed).ConfigureAwait(false);
            response.ErrorCode = error;
            response.ErrorMessage = message;
            response.NodeId = nodeId;
            response.Host = error == 0 ? state.Config.AdvertisedHost : "";
            response.Port = port;
        }
        else
        {
            foreach (var key in request.CoordinatorKeys)
            {
                var (error, nodeId, port, message) = await LocateAsync(routes, request.KeyType, key, context.Session.Closed).ConfigureAwait(false);
                response.Coordinators.Add(new FindCoordinatorResponse.Coordinator
                {
                    Key = key,
                    ErrorCode = error,
                    ErrorMessage = message,
                    NodeId = nodeId,
                    Host = error == 0 ? state.Config.AdvertisedHost : "",
                    Port = port,
                });
            }
        }
        return Task.FromResult(context.Respond(response));
    }

    /// <summary>The coordinator of a key as clients see it: its virtual id and port, or the error to answer with.</summary>
    private async ValueTask<(short Error, int NodeId, int Port, string? Message)> LocateAsync(RouteTable routes, sbyte keyType, string key, CancellationToken cancellationToken)
    {
        string clusterName;
        switch (keyType)
        {
            case 0 when state.Config.IsReservedGroup(key):
                return ((short)ErrorCode.GroupAuthorizationFailed, -1, -1, "The fleet's own groups are not open to clients.");
            case 0:
                clusterName = routes.ForGroup(key).Route.Read;
                break;
            case 1:
                clusterName = routes.ForTransactionalId(key).Route.Write;
                break;
            default:
                return ((short)ErrorCode.InvalidRequest, -1, -1, $"Coordinator key type {keyType} is not supported by this proxy.");
        }
        var cluster = state.Cluster(clusterName);
        try
        {
            var node = await cluster.FindCoordinatorAsync(keyType, key, cancellationToken, refresh: true).ConfigureAwait(false);
            var nodeId = state.NodeIds.ToVirtual(cluster.Config.Ordinal, node);
            if (await state.BrokerPort(nodeId).ConfigureAwait(false) is { } port)
            {
                return (0, nodeId, port, null);
            }
            // The coordinator is left out of Metadata for want of a port: as a broker answers while its coordinator is down.
            return ((short)ErrorCode.CoordinatorNotAvailable, -1, -1, $"The coordinator, broker {nodeId}, cannot be reached through this proxy (no port could be bound for it).");
        }
        catch (CoordinatorUnavailableException e)
        {
            return (e.ErrorCode, -1, -1, e.Message);
        }
        catch (UpstreamUnavailableException e)
        {
            return ((short)ErrorCode.CoordinatorNotAvailable, -1, -1, e.Message);
        }
    }

    /// <summary>Current views of every cluster that has one, refreshing those that are stale.</summary>
    private async ValueTask<IReadOnlyList<ClusterView>> ViewsAsync(CancellationToken cancellationToken)
    {
        var views = new List<ClusterView>();
        foreach (var cluster in state.Clusters)
        {
            try
            {
                views.Add(await cluster.GetViewAsync(cancellationToken).ConfigureAwait(false));
            }
            catch (UpstreamUnavailableException)
            {
                // A cluster that cannot be reached contributes nothing; its topics answer LEADER_NOT_AVAILABLE.
            }
        }
        return views;
    }
}
