using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Routes a <see cref="GroupBatch"/>: each group to its coordinator on its family's read cluster. When one coordinator
/// serves every group the client's bytes are relayed as they are; otherwise the request is split per (cluster,
/// coordinator), each part is sent to its coordinator, and the answers are merged in the client's group order. A
/// group whose part fails gets a broker-style error of its own (COORDINATOR_NOT_AVAILABLE when its coordinator
/// cannot be reached, GROUP_AUTHORIZATION_FAILED when its family is not the principal's); the others are answered.
/// </summary>
public sealed class GroupBatchRouter(ProxyState state)
{
    private const sbyte GroupKey = 0;

    private sealed class Part(UpstreamCluster cluster, int node)
    {
        public UpstreamCluster Cluster { get; } = cluster;
        public int Node { get; } = node;
        public List<int> Indices { get; } = [];
        public PendingResponse? Pending { get; set; }
    }

    public async ValueTask<Task<PooledFrame>?> RouteAsync(RequestContext context, GroupBatch batch)
    {
        var routes = context.Routes;
        var closed = context.Session.Closed;
        var groups = batch.Groups;
        var failures = new ErrorCode[groups.Count];
        var parts = new List<Part>(1);
        for (var i = 0; i < groups.Count; i++)
        {
            var group = groups[i];
            var family = routes.ForGroup(group);
            state.Traffic.For(family.Family).GroupSeen(group);
            if (state.Authorization is { } authorization && !authorization.MayUseFamily(context.Session.Principal, family.Family))
            {
                failures[i] = ErrorCode.GroupAuthorizationFailed;
                continue;
            }
            // Groups follow their family's read route, as every other group request does.
            var cluster = state.Cluster(family.Route.Read);
            int node;
            try
            {
                node = await cluster.FindCoordinatorAsync(GroupKey, group, closed).ConfigureAwait(false);
            }
            catch (CoordinatorUnavailableException e)
            {
                failures[i] = (ErrorCode)e.ErrorCode;
                continue;
            }
            catch (UpstreamUnavailableException)
            {
                failures[i] = ErrorCode.CoordinatorNotAvailable;
                continue;
            }
            var part = parts.Find(p => p.Cluster == cluster && p.Node == node);
            if (part is null)
            {
                parts.Add(part = new Part(cluster, node));
            }
            part.Indices.Add(i);
        }

        var relay = parts.Count == 1 && Array.TrueForAll(failures, static f => f == ErrorCode.None);
        foreach (var part in parts)
        {
            try
            {
                var view = await part.Cluster.GetViewAsync(closed).ConfigureAwait(false);
                var connection = await context.Session.Upstreams.GetAsync(view, part.Node, closed).ConfigureAwait(false);
                if (relay)
                {
                    part.Pending = await connection.SendAsync(context.Frame.Memory, expectResponse: true, closed).ConfigureAwait(false);
                }
                else
                {
                    using var frame = FrameCodec.EncodeRequest(context.ApiKey, context.Version, context.CorrelationId, context.Header.ClientId,
                        batch.Narrow(part.Indices));
                    part.Pending = await connection.SendAsync(frame.Memory, expectResponse: true, closed).ConfigureAwait(false);
                }
            }
            catch (UpstreamUnavailableException)
            {
                Lost(part, groups, failures);
            }
        }
        return CompleteAsync(context, batch, parts, failures, relay);
    }

    private async Task<PooledFrame> CompleteAsync(RequestContext context, GroupBatch batch, List<Part> parts, ErrorCode[] failures, bool relay)
    {
        var timeout = state.Config.Limits.UpstreamRequestTimeout;
        var closed = context.Session.Closed;
        if (relay && parts[0].Pending is { } only)
        {
            try
            {
                var frame = await Forwarding.RestoreCorrelationAsync(only, context.CorrelationId, timeout, closed).ConfigureAwait(false);
                return context.ApiKey == ApiKey.OffsetFetch ? CoordinatorHandlers.HideLeaderEpochs(context, frame) : frame;
            }
            catch (UpstreamUnavailableException)
            {
                Lost(parts[0], batch.Groups, failures);
            }
        }

        // Every part's deadline starts now, so a slow coordinator does not delay the others' deadlines.
        var waits = new ValueTask<PooledFrame>?[parts.Count];
        for (var i = 0; i < parts.Count; i++)
        {
            waits[i] = parts[i].Pending?.WaitAsync(timeout, closed);
        }
        var frames = new List<PooledFrame>(parts.Count);
        try
        {
            var answers = new List<(IReadOnlyList<int>, IKafkaMessage?)>(parts.Count);
            for (var i = 0; i < parts.Count; i++)
            {
                IKafkaMessage? response = null;
                if (waits[i] is { } wait)
                {
                    try
                    {
                        var frame = await wait.ConfigureAwait(false);
                        frames.Add(frame); // decoded answers may slice it: kept until the merged answer is encoded
                        response = batch.Decode(frame, context.ApiKey, context.Version);
                    }
                    catch (UpstreamUnavailableException)
                    {
                        Lost(parts[i], batch.Groups, failures);
                    }
                    catch (KafkaProtocolException)
                    {
                        // An answer that cannot be read: its groups get UNKNOWN_SERVER_ERROR, the others their answers.
                    }
                }
                answers.Add((parts[i].Indices, response));
            }
            var clusterOf = new UpstreamCluster?[batch.Groups.Count];
            foreach (var part in parts)
            {
                foreach (var index in part.Indices)
                {
                    clusterOf[index] = part.Cluster;
                }
            }
            var merged = batch.Merge(answers, failures, (index, error) =>
            {
                // The client looks the coordinator up again on these; so does the proxy, for the groups it splits.
                if (error is ErrorCode.NotCoordinator or ErrorCode.CoordinatorNotAvailable)
                {
                    clusterOf[index]?.ForgetCoordinator(GroupKey, batch.Groups[index]);
                }
            });
            return context.Respond(merged);
        }
        finally
        {
            foreach (var frame in frames)
            {
                frame.Dispose();
            }
        }
    }

    /// <summary>A part's coordinator could not be reached: its groups answer COORDINATOR_NOT_AVAILABLE and are looked up afresh next time.</summary>
    private static void Lost(Part part, IReadOnlyList<string> groups, ErrorCode[] failures)
    {
        part.Pending = null;
        foreach (var index in part.Indices)
        {
            failures[index] = ErrorCode.CoordinatorNotAvailable;
            part.Cluster.ForgetCoordinator(GroupKey, groups[index]);
        }
    }
}
