using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Tests.Integration.Routing;

/// <summary>What a front did with the offsets that committed (or aborted) transactions sent for one group.</summary>
public enum TransactionalOffsetsOutcome
{
    /// <summary>Written to the group as the member and generation the TxnOffsetCommit named.</summary>
    Written,

    /// <summary>Written as a current member at the current generation: the group had moved on since the TxnOffsetCommit.</summary>
    WrittenAsCurrentMember,

    /// <summary>Written in the background once the group's rebalance let the mock take them (the EndTxn was answered before).</summary>
    WrittenAfterRebalance,

    /// <summary>Dropped: the transaction was aborted, or its producer initialised again (which aborts it).</summary>
    Dropped,

    /// <summary>The mock would not take them.</summary>
    Failed,

    /// <summary>Refused at the TxnOffsetCommit for its member or generation, as a broker would (the mock does not check).</summary>
    Refused,
}

/// <summary>What a front did with the offsets of one or more transactions (ids comma-separated) for one group.</summary>
public sealed record TransactionalOffsetsReceipt(string TransactionalIds, string Group, int Partitions, TransactionalOffsetsOutcome Outcome, ErrorCode Error, string? Detail = null);

/// <summary>
/// Transactional offsets. What follows is a hand-made stand-in for broker behaviour librdkafka's mock lacks, not the
/// behaviour of a real broker observed here. The mock's
/// TxnOffsetCommit checks the coordinator and the producer id and answers without error, but stores nothing, and its
/// EndTxn writes no offsets either (rd_kafka_mock_handle_TxnOffsetCommit and _EndTxn in src/rdkafka_mock_handlers.c),
/// so the group of an exactly-once pipeline has no committed offsets at all: whatever rejoins reads from the start
/// again, and a switch has no offsets to copy. No real broker can run here (no Docker), so this front does what a
/// broker's group coordinator and commit markers do, as closely as the mock lets it: the offsets of a TxnOffsetCommit
/// the mock answered without error are remembered per transactional id and group, with the member id and generation
/// the request named (v3+); an EndTxn that commits, answered without error, writes them to the group with a plain
/// OffsetCommit to the group's coordinator on the mock before its answer is relayed, so that OffsetFetch (consumers
/// after a rebalance, the admin client's ListConsumerGroupOffsets) sees them; an abort drops them, and so does the
/// producer initialising again. Until written, an OffsetFetch that asks for stable offsets gets
/// UNSTABLE_OFFSET_COMMIT for those partitions, as from a broker.
/// A broker's commit marker writes the offsets whatever the group has done since; the mock takes an OffsetCommit to
/// a classic group only from a current member at the current generation while the group is not joining or syncing
/// (rd_kafka_mock_cgrp_classic_check_state in src/rdkafka_mock_cgrp.c). So if the group moved on, the offsets are
/// written as a member the group has now, at its generation (as this front saw them in JoinGroup answers); while it
/// rebalances, they are written in the background once it lets them (holding the EndTxn's answer instead would stall
/// a pipeline whose consumer rebalances only when the application polls again). Every outcome is recorded in
/// <see cref="TransactionalOffsets"/>. A broker also refuses a TxnOffsetCommit whose member or generation the group
/// does not have (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION), which the mock never checks; the front does, for classic
/// groups (see RefusedTxnOffsetCommit).
/// </summary>
public sealed partial class GroupApisFront
{
    private const ErrorCode UnstableOffsetCommit = (ErrorCode)88;
    private const ErrorCode StaleMemberEpoch = (ErrorCode)113;
    private const short MockOffsetCommitVersion = 7;
    private static readonly TimeSpan WriteAfterRebalanceFor = TimeSpan.FromSeconds(30);

    private readonly Lock _transactions = new();
    // Offsets of open transactions, per transactional id.
    private readonly Dictionary<string, OpenTransaction> _openTransactions = new(StringComparer.Ordinal);
    // Offsets of committed transactions not written to the mock yet, per group.
    private readonly Dictionary<string, UnwrittenOffsets> _unwritten = new(StringComparer.Ordinal);

    /// <summary>What became of the offsets transactions sent through this cluster, in order.</summary>
    public ConcurrentQueue<TransactionalOffsetsReceipt> TransactionalOffsets { get; } = new();

    /// <summary>The receipts per outcome, with the errors of failed ones, e.g. "Written 12, Failed 1 (IllegalGeneration)".</summary>
    public string TransactionalOffsetsSummary() => TransactionalOffsets.IsEmpty ? "none" : string.Join(", ", TransactionalOffsets.GroupBy(r => r.Outcome).Select(g =>
        $"{g.Key} {g.Count()}" + (g.Key == TransactionalOffsetsOutcome.Failed ? $" ({string.Join(", ", g.Select(r => r.Error).Distinct())})" : "")));

    private sealed record MemberGeneration(string MemberId, int Generation, string? GroupInstanceId);

    private sealed record PartitionOffset(long Offset, int LeaderEpoch, string? Metadata);

    private sealed class OpenTransaction(long producerId)
    {
        public long ProducerId { get; } = producerId;
        public Dictionary<string, SentOffsets> Groups { get; } = new(StringComparer.Ordinal);
    }

    private sealed class SentOffsets
    {
        public MemberGeneration Member { get; set; } = new("", -1, null);
        public Dictionary<(string Topic, int Partition), PartitionOffset> Offsets { get; } = [];
    }

    private sealed class UnwrittenOffsets
    {
        public Dictionary<(string Topic, int Partition), PartitionOffset> Offsets { get; } = [];
        public HashSet<string> TransactionalIds { get; } = new(StringComparer.Ordinal);
        public bool Writing { get; set; }
    }

    /// <summary>
    /// The group check a broker makes on a TxnOffsetCommit (v3+, KIP-447) and the mock does not: a member id the
    /// classic group does not have is refused with UNKNOWN_MEMBER_ID, a generation other than the group's with
    /// ILLEGAL_GENERATION, and a member or generation named for a group the coordinator has no members of with
    /// ILLEGAL_GENERATION. KIP-848 groups are not checked. Null when the request passes and goes on to the mock.
    /// </summary>
    private byte[]? RefusedTxnOffsetCommit(Request request)
    {
        if (request.Version < 3)
        {
            return null;
        }
        var commit = FrameCodec.DecodeBody<TxnOffsetCommitRequest>(request.Body, request.Version);
        if (string.IsNullOrEmpty(commit.MemberId) && commit.GenerationId < 0)
        {
            return null;
        }
        ErrorCode error;
        string detail;
        if (!_groups.TryGetValue(commit.GroupId, out var group))
        {
            error = ErrorCode.IllegalGeneration;
            detail = $"member {commit.MemberId} generation {commit.GenerationId}: group unknown here";
        }
        else
        {
            lock (group)
            {
                detail = $"member {commit.MemberId} generation {commit.GenerationId}: group {group.State} generation {group.Generation} members [{string.Join(", ", group.Members.Keys)}]";
                error = group.Kip848 ? ErrorCode.None
                    : group.Generation < 0 ? ErrorCode.IllegalGeneration
                    : !string.IsNullOrEmpty(commit.MemberId) && !group.Members.ContainsKey(commit.MemberId) ? ErrorCode.UnknownMemberId
                    : commit.GenerationId >= 0 && commit.GenerationId != group.Generation ? ErrorCode.IllegalGeneration
                    : ErrorCode.None;
            }
        }
        if (error == ErrorCode.None)
        {
            return null;
        }
        TransactionalOffsets.Enqueue(new TransactionalOffsetsReceipt(commit.TransactionalId, commit.GroupId,
            commit.Topics.Sum(t => t.Partitions.Count), TransactionalOffsetsOutcome.Refused, error, $"{DateTime.UtcNow:HH:mm:ss.fff} {detail}"));
        return Encode(request, new TxnOffsetCommitResponse
        {
            Topics = [.. commit.Topics.Select(t => new TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic
            {
                Name = t.Name,
                Partitions = [.. t.Partitions.Select(p => new TxnOffsetCommitResponse.TxnOffsetCommitResponsePartition { PartitionIndex = p.PartitionIndex, ErrorCode = (short)error })],
            })],
        });
    }

    /// <summary>A TxnOffsetCommit the mock answered: the partitions it took join the transaction's offsets.</summary>
    private void OffsetsSentToTransaction(Request request, TxnOffsetCommitResponse response)
    {
        var accepted = response.Topics.SelectMany(t => t.Partitions.Where(p => p.ErrorCode == 0).Select(p => (t.Name, p.PartitionIndex))).ToHashSet();
        if (accepted.Count == 0)
        {
            return;
        }
        var commit = FrameCodec.DecodeBody<TxnOffsetCommitRequest>(request.Body, request.Version);
        lock (_transactions)
        {
            if (!_openTransactions.TryGetValue(commit.TransactionalId, out var open) || open.ProducerId != commit.ProducerId)
            {
                if (open is not null)
                {
                    Drop(commit.TransactionalId, open);
                }
                _openTransactions[commit.TransactionalId] = open = new OpenTransaction(commit.ProducerId);
            }
            if (!open.Groups.TryGetValue(commit.GroupId, out var sent))
            {
                open.Groups[commit.GroupId] = sent = new SentOffsets();
            }
            // Before v3 the request names no member: generation -1 and no member id, as a broker would take them then.
            sent.Member = new MemberGeneration(commit.MemberId, commit.GenerationId, commit.GroupInstanceId);
            foreach (var topic in commit.Topics)
            {
                foreach (var partition in topic.Partitions.Where(p => accepted.Contains((topic.Name, p.PartitionIndex))))
                {
                    sent.Offsets[(topic.Name, partition.PartitionIndex)] = new PartitionOffset(partition.CommittedOffset, partition.CommittedLeaderEpoch, partition.CommittedMetadata);
                }
            }
        }
    }

    /// <summary>A producer that initialises again aborts its open transaction on a broker: its offsets go with it.</summary>
    private void ProducerInitialized(Request request, InitProducerIdResponse response)
    {
        if (response.ErrorCode != 0 || FrameCodec.DecodeBody<InitProducerIdRequest>(request.Body, request.Version).TransactionalId is not { } transactionalId)
        {
            return;
        }
        lock (_transactions)
        {
            if (_openTransactions.Remove(transactionalId, out var open))
            {
                Drop(transactionalId, open);
            }
        }
    }

    private void Drop(string transactionalId, OpenTransaction open)
    {
        foreach (var (group, sent) in open.Groups)
        {
            TransactionalOffsets.Enqueue(new TransactionalOffsetsReceipt(transactionalId, group, sent.Offsets.Count, TransactionalOffsetsOutcome.Dropped, ErrorCode.None));
        }
    }

    /// <summary>An EndTxn the mock answered: a commit writes the transaction's offsets to their groups before the answer goes on; an abort drops them.</summary>
    private async Task<byte[]> TransactionEndedAsync(Request request, byte[] frame)
    {
        EndTxnRequest end;
        try
        {
            if (Decode<EndTxnResponse>(frame, request).ErrorCode != 0)
            {
                return frame;
            }
            end = FrameCodec.DecodeBody<EndTxnRequest>(request.Body, request.Version);
        }
        catch (KafkaProtocolException)
        {
            return frame;
        }
        var toWrite = new List<(string Group, MemberGeneration Member)>();
        lock (_transactions)
        {
            if (!_openTransactions.Remove(end.TransactionalId, out var open))
            {
                return frame;
            }
            if (!end.Committed || open.ProducerId != end.ProducerId)
            {
                Drop(end.TransactionalId, open);
                return frame;
            }
            foreach (var (group, sent) in open.Groups)
            {
                if (!_unwritten.TryGetValue(group, out var unwritten))
                {
                    _unwritten[group] = unwritten = new UnwrittenOffsets();
                }
                foreach (var (partition, offset) in sent.Offsets)
                {
                    unwritten.Offsets[partition] = offset;
                }
                unwritten.TransactionalIds.Add(end.TransactionalId);
                // A group still being written in the background takes these with the rest, in order.
                if (!unwritten.Writing)
                {
                    unwritten.Writing = true;
                    toWrite.Add((group, sent.Member));
                }
            }
        }
        foreach (var (group, member) in toWrite)
        {
            if (!await WriteUnwrittenAsync(group, member, afterRebalance: false))
            {
                _ = WriteAfterRebalanceAsync(group);
            }
        }
        return frame;
    }

    /// <summary>
    /// Writes a group's unwritten offsets (as <paramref name="sentAs"/> first, then as each current member): true when
    /// none are left (written, or refused for good), false when the group's state keeps the mock from taking them now.
    /// </summary>
    private async Task<bool> WriteUnwrittenAsync(string group, MemberGeneration? sentAs, bool afterRebalance)
    {
        while (true)
        {
            Dictionary<(string Topic, int Partition), PartitionOffset> offsets;
            string ids;
            lock (_transactions)
            {
                var unwritten = _unwritten[group];
                if (unwritten.Offsets.Count == 0)
                {
                    _unwritten.Remove(group);
                    return true;
                }
                offsets = new(unwritten.Offsets);
                ids = string.Join(",", unwritten.TransactionalIds);
                unwritten.TransactionalIds.Clear();
            }
            var error = ErrorCode.UnknownMemberId;
            var outcome = TransactionalOffsetsOutcome.Failed;
            var candidates = new List<MemberGeneration>();
            if (sentAs is not null)
            {
                candidates.Add(sentAs);
            }
            candidates.AddRange(CurrentMembers(group).Where(m => m != sentAs));
            foreach (var member in candidates)
            {
                error = await CommitToMockAsync(group, member, offsets);
                if (error == ErrorCode.None)
                {
                    outcome = afterRebalance ? TransactionalOffsetsOutcome.WrittenAfterRebalance
                        : member == sentAs ? TransactionalOffsetsOutcome.Written
                        : TransactionalOffsetsOutcome.WrittenAsCurrentMember;
                    break;
                }
                if (!GroupMovedOn(error))
                {
                    break;
                }
            }
            if (error != ErrorCode.None && GroupMovedOn(error))
            {
                lock (_transactions)
                {
                    foreach (var id in ids.Split(',', StringSplitOptions.RemoveEmptyEntries))
                    {
                        _unwritten[group].TransactionalIds.Add(id);
                    }
                }
                return false;
            }
            lock (_transactions)
            {
                // Offsets a later commit replaced while these were on the way stay for the next round.
                var unwritten = _unwritten[group];
                foreach (var (partition, offset) in offsets)
                {
                    if (unwritten.Offsets.TryGetValue(partition, out var current) && ReferenceEquals(current, offset))
                    {
                        unwritten.Offsets.Remove(partition);
                    }
                }
            }
            TransactionalOffsets.Enqueue(new TransactionalOffsetsReceipt(ids, group, offsets.Count, outcome, error));
            sentAs = null;
        }
    }

    private async Task WriteAfterRebalanceAsync(string group)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            while (clock.Elapsed < WriteAfterRebalanceFor)
            {
                await Task.Delay(100, Stopping);
                if (await WriteUnwrittenAsync(group, sentAs: null, afterRebalance: true))
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
        lock (_transactions)
        {
            if (_unwritten.Remove(group, out var unwritten))
            {
                TransactionalOffsets.Enqueue(new TransactionalOffsetsReceipt(string.Join(",", unwritten.TransactionalIds), group,
                    unwritten.Offsets.Count, TransactionalOffsetsOutcome.Failed, ErrorCode.RebalanceInProgress));
            }
        }
    }

    /// <summary>Errors that say the group (or its coordinator) is not where the offsets were sent any more: another member or round may succeed.</summary>
    private static bool GroupMovedOn(ErrorCode error) => error is ErrorCode.IllegalGeneration or ErrorCode.UnknownMemberId or ErrorCode.RebalanceInProgress
        or StaleMemberEpoch or ErrorCode.FencedMemberEpoch or ErrorCode.NotCoordinator or ErrorCode.CoordinatorNotAvailable or ErrorCode.NetworkException;

    /// <summary>The group's members and generation as this front saw them last (KIP-848 members with their own epochs).</summary>
    private List<MemberGeneration> CurrentMembers(string id)
    {
        if (!_groups.TryGetValue(id, out var group))
        {
            return [];
        }
        lock (group)
        {
            return group.Kip848
                ? [.. group.Members.Values.Select(m => new MemberGeneration(m.MemberId, m.Epoch, null))]
                : [.. group.Members.Keys.Select(m => new MemberGeneration(m, group.Generation, null))];
        }
    }

    /// <summary>One OffsetCommit to the group's coordinator on the mock; the first error it answers with, if any.</summary>
    private async Task<ErrorCode> CommitToMockAsync(string group, MemberGeneration member, Dictionary<(string Topic, int Partition), PartitionOffset> offsets)
    {
        var commit = new OffsetCommitRequest
        {
            GroupId = group,
            GenerationIdOrMemberEpoch = member.Generation,
            MemberId = member.MemberId,
            GroupInstanceId = member.GroupInstanceId,
        };
        foreach (var topic in offsets.GroupBy(o => o.Key.Topic))
        {
            commit.Topics.Add(new OffsetCommitRequest.OffsetCommitRequestTopic
            {
                Name = topic.Key,
                Partitions = [.. topic.Select(o => new OffsetCommitRequest.OffsetCommitRequestPartition
                {
                    PartitionIndex = o.Key.Partition,
                    CommittedOffset = o.Value.Offset,
                    CommittedLeaderEpoch = o.Value.LeaderEpoch,
                    CommittedMetadata = o.Value.Metadata,
                })],
            });
        }
        try
        {
            var coordinator = await ExchangeAsync<FindCoordinatorResponse>(_cluster.BrokerIds[0], ApiKey.FindCoordinator, 1,
                new FindCoordinatorRequest { Key = group, KeyType = 0 });
            if (coordinator.ErrorCode != 0)
            {
                return (ErrorCode)coordinator.ErrorCode;
            }
            var answer = await ExchangeAsync<OffsetCommitResponse>(coordinator.NodeId, ApiKey.OffsetCommit, MockOffsetCommitVersion, commit);
            return answer.Topics.SelectMany(t => t.Partitions).Select(p => (ErrorCode)p.ErrorCode).FirstOrDefault(e => e != ErrorCode.None);
        }
        catch (Exception e) when (e is IOException or SocketException or KafkaProtocolException or OperationCanceledException or ObjectDisposedException)
        {
            return ErrorCode.NetworkException; // the mock broker is down, or this front is stopping
        }
    }

    /// <summary>Partitions of a group that open or not yet written transactions hold offsets for.</summary>
    private HashSet<(string Topic, int Partition)> PendingTransactionalOffsets(string group)
    {
        lock (_transactions)
        {
            var pending = new HashSet<(string Topic, int Partition)>();
            foreach (var open in _openTransactions.Values)
            {
                if (open.Groups.TryGetValue(group, out var sent))
                {
                    pending.UnionWith(sent.Offsets.Keys);
                }
            }
            if (_unwritten.TryGetValue(group, out var unwritten))
            {
                pending.UnionWith(unwritten.Offsets.Keys);
            }
            return pending;
        }
    }
}
