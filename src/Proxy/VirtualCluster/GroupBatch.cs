using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// A request that names several consumer groups, each answered by its own coordinator: DescribeGroups, DeleteGroups,
/// ConsumerGroupDescribe and OffsetFetch v8+. Knows how to narrow the request to some of its groups and how to
/// merge the per-group answers of several coordinators back into one response in the client's order.
/// </summary>
public abstract class GroupBatch
{
    /// <summary>The groups the client named, in its order (duplicates kept).</summary>
    public abstract IReadOnlyList<string> Groups { get; }

    /// <summary>The batch for a request that names groups, or null for any other request.</summary>
    public static GroupBatch? For(RequestContext context) => context.ApiKey switch
    {
        ApiKey.DescribeGroups => new DescribeGroupsBatch(context.Decode<DescribeGroupsRequest>()),
        ApiKey.DeleteGroups => new DeleteGroupsBatch(context.Decode<DeleteGroupsRequest>()),
        ApiKey.ConsumerGroupDescribe => new ConsumerGroupDescribeBatch(context.Decode<ConsumerGroupDescribeRequest>()),
        ApiKey.OffsetFetch when context.Version >= 8 => new OffsetFetchBatch(context.Decode<OffsetFetchRequest>()),
        _ => null,
    };

    /// <summary>The same request naming only the groups at <paramref name="indices"/>.</summary>
    public abstract IKafkaMessage Narrow(IReadOnlyList<int> indices);

    /// <summary>
    /// One response holding, for each group the client named and in its order, the answer of the part it went to,
    /// or <paramref name="failures"/>' error for it when that part has no answer (never a group left out).
    /// </summary>
    /// <param name="answers">Each part's group indices and decoded response (null when the part failed).</param>
    /// <param name="failures">The error per group index for groups without an answer.</param>
    /// <param name="answered">Called with each answered group's index and the error its coordinator gave it.</param>
    public abstract IKafkaMessage Merge(IReadOnlyList<(IReadOnlyList<int> Indices, IKafkaMessage? Response)> answers,
        IReadOnlyList<ErrorCode> failures, Action<int, ErrorCode> answered);

    /// <summary>Decodes one part's response frame.</summary>
    public abstract IKafkaMessage Decode(PooledFrame frame, ApiKey apiKey, short version);

    /// <summary>Merging by group id with the shape of one API's response.</summary>
    private abstract class Batch<TResponse, TEntry> : GroupBatch where TResponse : IKafkaMessage, new()
    {
        protected abstract List<TEntry> EntriesOf(TResponse response);
        protected abstract string GroupOf(TEntry entry);
        protected abstract short ErrorOf(TEntry entry);
        protected abstract int ThrottleOf(TResponse response);
        protected abstract TEntry Failed(string group, ErrorCode error);
        protected abstract TResponse Build(List<TEntry> entries, int throttleTimeMs);

        public override IKafkaMessage Decode(PooledFrame frame, ApiKey apiKey, short version) =>
            FrameCodec.DecodeResponse<TResponse>(frame, apiKey, version);

        public override IKafkaMessage Merge(IReadOnlyList<(IReadOnlyList<int> Indices, IKafkaMessage? Response)> answers,
            IReadOnlyList<ErrorCode> failures, Action<int, ErrorCode> answered)
        {
            var merged = new TEntry[Groups.Count];
            var filled = new bool[Groups.Count];
            var throttle = 0;
            foreach (var (indices, message) in answers)
            {
                if (message is not TResponse response)
                {
                    continue;
                }
                throttle = Math.Max(throttle, ThrottleOf(response));
                // Brokers need not answer in request order (DeleteGroups does not): match by group id, in order for repeats.
                var byGroup = new Dictionary<string, Queue<TEntry>>(StringComparer.Ordinal);
                foreach (var entry in EntriesOf(response))
                {
                    if (!byGroup.TryGetValue(GroupOf(entry), out var queue))
                    {
                        byGroup[GroupOf(entry)] = queue = new Queue<TEntry>(1);
                    }
                    queue.Enqueue(entry);
                }
                foreach (var index in indices)
                {
                    if (byGroup.TryGetValue(Groups[index], out var queue) && queue.TryDequeue(out var entry))
                    {
                        merged[index] = entry;
                        filled[index] = true;
                        answered(index, (ErrorCode)ErrorOf(entry));
                    }
                }
            }
            var entries = new List<TEntry>(Groups.Count);
            for (var i = 0; i < Groups.Count; i++)
            {
                // A group its coordinator left out of the answer gets an error rather than vanishing.
                entries.Add(filled[i] ? merged[i] : Failed(Groups[i], failures[i] == ErrorCode.None ? ErrorCode.UnknownServerError : failures[i]));
            }
            return Build(entries, throttle);
        }

        protected static List<T> Pick<T>(List<T> items, IReadOnlyList<int> indices)
        {
            var picked = new List<T>(indices.Count);
            foreach (var index in indices)
            {
                picked.Add(items[index]);
            }
            return picked;
        }
    }

    private sealed class DescribeGroupsBatch(DescribeGroupsRequest request)
        : Batch<DescribeGroupsResponse, DescribeGroupsResponse.DescribedGroup>
    {
        public override IReadOnlyList<string> Groups => request.Groups;

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices) => new DescribeGroupsRequest
        {
            Groups = Pick(request.Groups, indices),
            IncludeAuthorizedOperations = request.IncludeAuthorizedOperations,
            UnknownTaggedFields = request.UnknownTaggedFields,
        };

        protected override List<DescribeGroupsResponse.DescribedGroup> EntriesOf(DescribeGroupsResponse response) => response.Groups;
        protected override string GroupOf(DescribeGroupsResponse.DescribedGroup entry) => entry.GroupId;
        protected override short ErrorOf(DescribeGroupsResponse.DescribedGroup entry) => entry.ErrorCode;
        protected override int ThrottleOf(DescribeGroupsResponse response) => response.ThrottleTimeMs;

        // A broker's error entry: empty state and protocol, no members.
        protected override DescribeGroupsResponse.DescribedGroup Failed(string group, ErrorCode error) =>
            new() { GroupId = group, ErrorCode = (short)error, GroupState = "", ProtocolType = "", ProtocolData = "" };

        protected override DescribeGroupsResponse Build(List<DescribeGroupsResponse.DescribedGroup> entries, int throttleTimeMs) =>
            new() { Groups = entries, ThrottleTimeMs = throttleTimeMs };
    }

    private sealed class DeleteGroupsBatch(DeleteGroupsRequest request)
        : Batch<DeleteGroupsResponse, DeleteGroupsResponse.DeletableGroupResult>
    {
        public override IReadOnlyList<string> Groups => request.GroupsNames;

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices) => new DeleteGroupsRequest
        {
            GroupsNames = Pick(request.GroupsNames, indices),
            UnknownTaggedFields = request.UnknownTaggedFields,
        };

        protected override List<DeleteGroupsResponse.DeletableGroupResult> EntriesOf(DeleteGroupsResponse response) => response.Results;
        protected override string GroupOf(DeleteGroupsResponse.DeletableGroupResult entry) => entry.GroupId;
        protected override short ErrorOf(DeleteGroupsResponse.DeletableGroupResult entry) => entry.ErrorCode;
        protected override int ThrottleOf(DeleteGroupsResponse response) => response.ThrottleTimeMs;

        protected override DeleteGroupsResponse.DeletableGroupResult Failed(string group, ErrorCode error) =>
            new() { GroupId = group, ErrorCode = (short)error };

        protected override DeleteGroupsResponse Build(List<DeleteGroupsResponse.DeletableGroupResult> entries, int throttleTimeMs) =>
            new() { Results = entries, ThrottleTimeMs = throttleTimeMs };
    }

    private sealed class ConsumerGroupDescribeBatch(ConsumerGroupDescribeRequest request)
        : Batch<ConsumerGroupDescribeResponse, ConsumerGroupDescribeResponse.DescribedGroup>
    {
        public override IReadOnlyList<string> Groups => request.GroupIds;

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices) => new ConsumerGroupDescribeRequest
        {
            GroupIds = Pick(request.GroupIds, indices),
            IncludeAuthorizedOperations = request.IncludeAuthorizedOperations,
            UnknownTaggedFields = request.UnknownTaggedFields,
        };

        protected override List<ConsumerGroupDescribeResponse.DescribedGroup> EntriesOf(ConsumerGroupDescribeResponse response) => response.Groups;
        protected override string GroupOf(ConsumerGroupDescribeResponse.DescribedGroup entry) => entry.GroupId;
        protected override short ErrorOf(ConsumerGroupDescribeResponse.DescribedGroup entry) => entry.ErrorCode;
        protected override int ThrottleOf(ConsumerGroupDescribeResponse response) => response.ThrottleTimeMs;

        protected override ConsumerGroupDescribeResponse.DescribedGroup Failed(string group, ErrorCode error) =>
            new() { GroupId = group, ErrorCode = (short)error, ErrorMessage = "The group's coordinator could not be reached.", GroupState = "", AssignorName = "" };

        protected override ConsumerGroupDescribeResponse Build(List<ConsumerGroupDescribeResponse.DescribedGroup> entries, int throttleTimeMs) =>
            new() { Groups = entries, ThrottleTimeMs = throttleTimeMs };
    }

    private sealed class OffsetFetchBatch(OffsetFetchRequest request)
        : Batch<OffsetFetchResponse, OffsetFetchResponse.OffsetFetchResponseGroup>
    {
        private readonly List<string> _groups = request.Groups.ConvertAll(g => g.GroupId);

        public override IReadOnlyList<string> Groups => _groups;

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices) => new OffsetFetchRequest
        {
            Groups = Pick(request.Groups, indices),
            RequireStable = request.RequireStable,
            UnknownTaggedFields = request.UnknownTaggedFields,
        };

        protected override List<OffsetFetchResponse.OffsetFetchResponseGroup> EntriesOf(OffsetFetchResponse response) => response.Groups;
        protected override string GroupOf(OffsetFetchResponse.OffsetFetchResponseGroup entry) => entry.GroupId;
        protected override short ErrorOf(OffsetFetchResponse.OffsetFetchResponseGroup entry) => entry.ErrorCode;
        protected override int ThrottleOf(OffsetFetchResponse response) => response.ThrottleTimeMs;

        // A group-level error, no topics: what a broker answers for a group it cannot serve.
        protected override OffsetFetchResponse.OffsetFetchResponseGroup Failed(string group, ErrorCode error) =>
            new() { GroupId = group, ErrorCode = (short)error };

        protected override OffsetFetchResponse Build(List<OffsetFetchResponse.OffsetFetchResponseGroup> entries, int throttleTimeMs)
        {
            var response = new OffsetFetchResponse { Groups = entries, ThrottleTimeMs = throttleTimeMs };
            CoordinatorHandlers.HideLeaderEpochs(response);
            return response;
        }
    }
}
