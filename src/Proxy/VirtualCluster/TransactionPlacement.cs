using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Decides where a transaction runs as it begins and as it reaches more families (AddPartitionsToTxn v0-3,
/// AddOffsetsToTxn). A transaction runs on one cluster: the write cluster of the families whose topics it adds, which
/// for the offsets it sends must also be the read cluster of the group's family, since Kafka commits records and
/// offsets atomically only within one cluster. Whatever the transactional id's own family says, the records decide:
/// an id that matches no family (Kafka Streams and Flink name theirs after the application) still runs where its
/// topics are written.
/// </summary>
/// <remarks>
/// Each family a transaction reaches is entered through that family's gate (its write lane for topics, its commit lane
/// for a group), so a switch holding the family sees the transaction before it drains, or holds the request until
/// it has flipped. A part that would land on another cluster than the transaction's is refused with
/// CONCURRENT_TRANSACTIONS (the rest of the request with OPERATION_NOT_ATTEMPTED), which clients retry: that happens
/// only while families sharing a transaction are routed to different clusters, and lasts until their routes agree or
/// the producer's transaction times out.
/// </remarks>
public sealed partial class TransactionPlacement(ProxyState state)
{
    private const int MaxThrottledIds = 10_000;
    private static readonly TimeSpan LogEvery = TimeSpan.FromSeconds(10);
    private readonly ILogger _logger = state.LoggerFactory.CreateLogger("Switchback.Transactions");
    private readonly ConcurrentDictionary<string, long> _lastLogged = new(StringComparer.Ordinal);

    /// <summary>
    /// Joins what the request adds to the id's transaction (beginning it when none is open); null when the request may
    /// go on to the transaction's cluster, or the refusal to answer the client with.
    /// </summary>
    public async ValueTask<PooledFrame?> JoinAsync(RequestContext context, string transactionalId, TimeSpan timeout)
    {
        var add = context.ApiKey == ApiKey.AddPartitionsToTxn ? context.Decode<AddPartitionsToTxnRequest>() : null;
        var parts = add is not null
            ? add.V3AndBelowTopics.Select(t => (context.Routes.ForTopic(t.Name).Family, Use: TransactionUse.Writes)).Distinct().ToList()
            : [(context.Routes.ForGroup(context.Decode<AddOffsetsToTxnRequest>().GroupId).Family, TransactionUse.Offsets)];

        // Checked before anything joins, so a refused request leaves no transaction open.
        if (Conflict(transactionalId, parts, state.Routes.Current) is { } conflict)
        {
            return Refuse(context, add, transactionalId, conflict);
        }
        foreach (var (family, use) in parts)
        {
            if (state.Transactions.IsJoinedHere(transactionalId, family, use))
            {
                continue;
            }
            var lane = state.Traffic.For(family).For(use);
            try
            {
                // An open transaction passes a held gate of a family it already uses: the switch waits for it instead.
                await lane.EnterAsync(timeout, context.Session.Closed, bypass: state.Transactions.IsOpenIn(transactionalId, family)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return Refuse(context, add, transactionalId, new Parts(family, use, "the family is switching and did not reopen in time", parts));
            }
            try
            {
                // Read again inside the gate: a switch may have moved the family while the request waited.
                var routes = state.Routes.Current;
                var cluster = ClusterFor(routes, family, use);
                if (state.Transactions.OpenTransaction(transactionalId) is { } open && open.Cluster != cluster)
                {
                    return Refuse(context, add, transactionalId, new Parts(family, use, $"the transaction runs on {open.Cluster}, the family on {cluster}", parts));
                }
                await state.Transactions.JoinAsync(transactionalId, cluster, family, use, context.Session.Closed).ConfigureAwait(false);
            }
            finally
            {
                lane.Exit();
            }
        }
        return null;
    }

    /// <summary>The first part whose cluster differs from the transaction's (or from the request's first part when none is open).</summary>
    private Parts? Conflict(string transactionalId, List<(string Family, TransactionUse Use)> parts, RouteTable routes)
    {
        var cluster = state.Transactions.OpenTransaction(transactionalId)?.Cluster;
        foreach (var (family, use) in parts)
        {
            var partCluster = ClusterFor(routes, family, use);
            cluster ??= partCluster;
            if (partCluster != cluster)
            {
                return new Parts(family, use, $"the transaction runs on {cluster}, the family on {partCluster}", parts);
            }
        }
        return null;
    }

    private static string ClusterFor(RouteTable routes, string family, TransactionUse use)
    {
        var route = family == FamilyRoute.DefaultFamilyName ? routes.Default : routes.Find(family)!;
        return use == TransactionUse.Writes ? route.Route.Write : route.Route.Read;
    }

    /// <summary>Why a part of a request was refused: the family (and how it is used) that does not fit.</summary>
    private sealed record Parts(string Family, TransactionUse Use, string Why, List<(string Family, TransactionUse Use)> All);

    private PooledFrame Refuse(RequestContext context, AddPartitionsToTxnRequest? add, string transactionalId, Parts refused)
    {
        LogRefusal(transactionalId, refused);
        if (add is null)
        {
            return context.Respond(new AddOffsetsToTxnResponse { ErrorCode = (short)ErrorCode.ConcurrentTransactions });
        }
        var response = new AddPartitionsToTxnResponse();
        foreach (var topic in add.V3AndBelowTopics)
        {
            var error = context.Routes.ForTopic(topic.Name).Family == refused.Family ? ErrorCode.ConcurrentTransactions : ErrorCode.OperationNotAttempted;
            response.ResultsByTopicV3AndBelow.Add(new AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult
            {
                Name = topic.Name,
                ResultsByPartition = [.. topic.Partitions.Select(p => new AddPartitionsToTxnResponse.AddPartitionsToTxnPartitionResult
                {
                    PartitionIndex = p,
                    PartitionErrorCode = (short)error,
                })],
            });
        }
        return context.Respond(response);
    }

    /// <summary>Clients retry a refusal every few hundred milliseconds: one warning per id every <see cref="LogEvery"/>.</summary>
    private void LogRefusal(string transactionalId, Parts refused)
    {
        var now = Environment.TickCount64;
        if (_lastLogged.TryGetValue(transactionalId, out var last) && now - last < LogEvery.TotalMilliseconds)
        {
            return;
        }
        if (_lastLogged.Count >= MaxThrottledIds)
        {
            _lastLogged.Clear();
        }
        _lastLogged[transactionalId] = now;
        LogRefused(_logger, transactionalId, refused.Family, refused.Use == TransactionUse.Writes ? "records" : "offsets", refused.Why);
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Warning,
        Message = "Transaction of {TransactionalId} refused its {What} of family {Family} ({Why}): a transaction stays on one cluster; answered CONCURRENT_TRANSACTIONS, which the client retries")]
    private static partial void LogRefused(ILogger logger, string transactionalId, string family, string what, string why);
}
