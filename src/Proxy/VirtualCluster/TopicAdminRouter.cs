using System.Globalization;
using Switchback.Protocol;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Routes a <see cref="TopicAdminBatch"/>, each entry where its family lives: CreateTopics, CreatePartitions and
/// DeleteTopics topics to a broker of the family's write cluster, config resources as their type says: topics to the family's read cluster when described, its write cluster when
/// altered (AlterConfigs, IncrementalAlterConfigs), broker resources to the broker they name. When one
/// broker serves every entry the client's bytes are relayed as they are; otherwise the request is split per broker
/// and the answers are merged in the client's entry order. An entry whose part fails gets a broker-style error of
/// its own (NETWORK_EXCEPTION when its cluster cannot be reached; UNKNOWN_TOPIC_ID for an id the proxy never gave out;
/// INVALID_REQUEST for a broker id that is none of the clusters'; an allow list's refusal, as a broker's authorizer
/// gives it); the others are answered.
/// </summary>
public sealed class TopicAdminRouter(ProxyState state)
{
    public async ValueTask<Task<PooledFrame>?> RouteAsync(RequestContext context, TopicAdminBatch batch)
    {
        var routes = context.Routes;
        var closed = context.Session.Closed;
        var failures = new ErrorCode[batch.Count];
        var parts = new List<BatchPart>(1);
        // Only DescribeConfigs reads; the others change topics, their records or their configs, which follow write authority.
        var writes = context.ApiKey != ApiKey.DescribeConfigs;
        for (var i = 0; i < batch.Count; i++)
        {
            var entry = batch.EntryAt(i);
            if (Refusal(context, entry) is var refused and not ErrorCode.None)
            {
                failures[i] = refused;
                continue;
            }
            if (entry.Subject is AdminSubject.Topic && state.Config.IsReservedTopic(entry.Name))
            {
                failures[i] = ErrorCode.TopicAuthorizationFailed; // the fleet's control topic is the proxy's own
                continue;
            }
            switch (entry.Subject)
            {
                case AdminSubject.Topic:
                    var route = routes.ForTopic(entry.Name).Route;
                    // Any broker will do: each forwards topic changes to its controller.
                    BatchPart.For(parts, state.Cluster(writes ? route.Write : route.Read), node: null).Indices.Add(i);
                    break;
                case AdminSubject.Broker:
                    var (cluster, node, error) = await BrokerAsync(entry.Name, closed).ConfigureAwait(false);
                    if (error != ErrorCode.None)
                    {
                        failures[i] = error;
                        break;
                    }
                    batch.SendAs(i, node.ToString(CultureInfo.InvariantCulture));
                    BatchPart.For(parts, cluster!, node).Indices.Add(i);
                    break;
                case AdminSubject.Group:
                    BatchPart.For(parts, state.Cluster(routes.ForGroup(entry.Name).Route.Read), node: null).Indices.Add(i);
                    break;
                case AdminSubject.Cluster:
                    BatchPart.For(parts, state.Cluster(routes.Default.Route.Read), node: null).Indices.Add(i);
                    break;
                default:
                    failures[i] = ErrorCode.UnknownTopicId;
                    break;
            }
        }

        var relay = parts.Count == 1 && !batch.Rewritten && Array.TrueForAll(failures, static f => f == ErrorCode.None);
        // Not REQUEST_TIMED_OUT: librdkafka reports that as success for CreateTopics and DeleteTopics sent without an
        // operation timeout (creation "in progress"), and not NOT_CONTROLLER, on which the Java client resends the
        // whole call, entries already served included.
        void Lost(BatchPart part)
        {
            foreach (var index in part.Indices)
            {
                failures[index] = ErrorCode.NetworkException;
            }
        }
        await BatchExchange.SendAsync(context, batch, parts, relay, Lost).ConfigureAwait(false);
        // The broker may take as long as the request allows it before it answers.
        var timeout = state.Config.Limits.UpstreamRequestTimeout + batch.BrokerWait;
        return BatchExchange.CompleteAsync(context, batch, parts, failures, relay, timeout, Lost, static (_, _, _) => { });
    }

    /// <summary>
    /// The allow lists' error for an entry, if any: a topic or group by its family's list, anything else (brokers,
    /// cluster-wide defaults, client metrics) only for a principal every list admits, as it is no one family's.
    /// </summary>
    private ErrorCode Refusal(RequestContext context, AdminEntry entry)
    {
        if (state.Authorization is not { } lists)
        {
            return ErrorCode.None;
        }
        var principal = context.Session.Principal;
        return entry.Subject switch
        {
            AdminSubject.Topic when !lists.MayUseFamily(principal, context.Routes.ForTopic(entry.Name).Family) =>
                ErrorCode.TopicAuthorizationFailed,
            AdminSubject.Group when !lists.MayUseFamily(principal, context.Routes.ForGroup(entry.Name).Family) => ErrorCode.GroupAuthorizationFailed,
            AdminSubject.Broker or AdminSubject.Cluster when !lists.AdmittedByEveryList(principal) => ErrorCode.ClusterAuthorizationFailed,
            _ => ErrorCode.None,
        };
    }

    /// <summary>
    /// The upstream cluster and broker behind a virtual node id the client named, or why there is none:
    /// INVALID_REQUEST for a name that is no broker of any cluster (what a broker says of an id not its own),
    /// NETWORK_EXCEPTION when the cluster it belongs to cannot be reached.
    /// </summary>
    private async ValueTask<(UpstreamCluster? Cluster, int Node, ErrorCode Error)> BrokerAsync(string name, CancellationToken cancellationToken)
    {
        if (!int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var virtualId)
            || !state.NodeIds.TryFromVirtual(virtualId, out var ordinal, out var node) || ordinal >= state.ClustersByOrdinal.Count)
        {
            return (null, -1, ErrorCode.InvalidRequest);
        }
        var cluster = state.ClustersByOrdinal[ordinal];
        ClusterView view;
        try
        {
            view = await cluster.GetViewAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (UpstreamUnavailableException)
        {
            return (null, -1, ErrorCode.NetworkException);
        }
        return view.BrokersById.ContainsKey(node) ? (cluster, node, ErrorCode.None) : (null, -1, ErrorCode.InvalidRequest);
    }
}
