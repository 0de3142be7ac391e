using Switchback.Protocol;
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

    public async ValueTask<Task<PooledFrame>?> RouteAsync(RequestContext context, GroupBatch batch)
    {
        var routes = context.Routes;
        var closed = context.Session.Closed;
        var groups = batch.Groups;
        var failures = new ErrorCode[groups.Count];
        var parts = new List<BatchPart>(1);
        for (var i = 0; i < groups.Count; i++)
        {
            var group = groups[i];
            if (state.Config.IsReservedGroup(group))
            {
                // The fleet's own group: described or deleted by a client, it could pose as an instance or end the fleet's membership.
                failures[i] = ErrorCode.GroupAuthorizationFailed;
                continue;
            }
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
            BatchPart.For(parts, cluster, node).Indices.Add(i);
        }

        var relay = parts.Count == 1 && Array.TrueForAll(failures, static f => f == ErrorCode.None);
        void Lost(BatchPart part) => LoseCoordinator(part, groups, failures);
        await BatchExchange.SendAsync(context, batch, parts, relay, Lost).ConfigureAwait(false);
        return BatchExchange.CompleteAsync(context, batch, parts, failures, relay, state.Config.Limits.UpstreamRequestTimeout, Lost,
            (part, index, error) =>
            {
                // The client looks the coordinator up again on these; so does the proxy, for the groups it splits.
                if (error is ErrorCode.NotCoordinator or ErrorCode.CoordinatorNotAvailable)
                {
                    part.Cluster.ForgetCoordinator(GroupKey, groups[index]);
                }
            });
    }

    /// <summary>A part's coordinator could not be reached: its groups answer COORDINATOR_NOT_AVAILABLE and are looked up afresh next time.</summary>
    private static void LoseCoordinator(BatchPart part, IReadOnlyList<string> groups, ErrorCode[] failures)
    {
        foreach (var index in part.Indices)
        {
            failures[index] = ErrorCode.CoordinatorNotAvailable;
            part.Cluster.ForgetCoordinator(GroupKey, groups[index]);
        }
    }
}
