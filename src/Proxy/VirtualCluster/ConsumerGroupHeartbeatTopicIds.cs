using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// KIP-848 heartbeats name assigned partitions by topic id. Clients know the proxy's ids (from Metadata), the
/// coordinator knows its own cluster's, so both directions are mapped through the topic name. An id that cannot
/// be mapped is passed on unchanged: the client then treats it as a topic it has no metadata for, and retries.
/// </summary>
public static class ConsumerGroupHeartbeatTopicIds
{
    public static async ValueTask<Task<PooledFrame>?> ForwardAsync(ProxyState state, RequestContext context, UpstreamCluster cluster,
        ClusterView view, UpstreamConnection connection, TimeSpan timeout)
    {
        var request = context.Decode<ConsumerGroupHeartbeatRequest>();
        if (request.TopicPartitions is { Count: > 0 } owned)
        {
            foreach (var topic in owned)
            {
                if (state.TopicIds.NameOf(topic.TopicId, state.Clusters.Select(c => c.View).OfType<ClusterView>().SelectMany(v => v.Topics.Keys)) is { } name
                    && view.Topics.TryGetValue(name, out var upstream))
                {
                    topic.TopicId = upstream.Id;
                }
            }
        }
        using var frame = FrameCodec.EncodeRequest(context.ApiKey, context.Version, 0, context.Header.ClientId, request);
        var pending = await connection.SendAsync(frame.Memory, expectResponse: true, context.Session.Closed).ConfigureAwait(false);
        return MapResponseAsync(state, context, request, cluster, view, pending!, timeout);
    }

    private static async Task<PooledFrame> MapResponseAsync(ProxyState state, RequestContext context, ConsumerGroupHeartbeatRequest request,
        UpstreamCluster cluster, ClusterView view, PendingResponse pending, TimeSpan timeout)
    {
        ConsumerGroupHeartbeatResponse response;
        using (var frame = await pending.WaitAsync(timeout, context.Session.Closed).ConfigureAwait(false))
        {
            response = FrameCodec.DecodeResponse<ConsumerGroupHeartbeatResponse>(frame, context.ApiKey, context.Version);
        }
        // Which member is in the group on which cluster: a read switch removes the members it moves away.
        GroupMembershipObserver.ConsumerHeartbeatAnswered(state.GroupMembers, cluster.Name, request, response);
        if (response.Assignment?.TopicPartitions is { Count: > 0 } assigned)
        {
            foreach (var topic in assigned)
            {
                if (!view.TopicsById.ContainsKey(topic.TopicId))
                {
                    // Assigned before this proxy's view of the cluster knew the topic.
                    try
                    {
                        view = await cluster.RefreshAsync().WaitAsync(context.Session.Closed).ConfigureAwait(false);
                    }
                    catch (UpstreamUnavailableException)
                    {
                    }
                }
                if (view.TopicsById.TryGetValue(topic.TopicId, out var upstream))
                {
                    topic.TopicId = state.TopicIds.IdOf(upstream.Name);
                }
            }
        }
        return context.Respond(response);
    }
}
