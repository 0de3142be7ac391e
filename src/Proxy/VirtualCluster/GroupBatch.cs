using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// A request that names several consumer groups, each answered by its own coordinator: DescribeGroups, DeleteGroups,
/// ConsumerGroupDescribe and OffsetFetch v8+; its entries are the groups, matched in answers by group id.
/// </summary>
public abstract class GroupBatch : EntryBatch
{
    /// <summary>The groups the client named, in its order (duplicates kept).</summary>
    public abstract IReadOnlyList<string> Groups { get; }

    public override int Count => Groups.Count;

    /// <summary>The batch for a request that names groups, or null for any other request.</summary>
    public static GroupBatch? For(RequestContext context) => context.ApiKey switch
    {
        ApiKey.DescribeGroups => new DescribeGroupsBatch(context.Decode<DescribeGroupsRequest>()),
        ApiKey.DeleteGroups => new DeleteGroupsBatch(context.Decode<DeleteGroupsRequest>()),
        ApiKey.ConsumerGroupDescribe => new ConsumerGroupDescribeBatch(context.Decode<ConsumerGroupDescribeRequest>()),
        ApiKey.OffsetFetch when context.Version >= 8 => new OffsetFetchBatch(context.Decode<OffsetFetchRequest>()),
        _ => null,
    };

    /// <summary>Merging by group id with the shape of one API's response.</summary>
    private abstract class Batch<TResponse, TEntry> : GroupBatch, IAnswerMatching<TResponse, TEntry, string>
        where TResponse : IKafkaMessage, new()
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
            var (entries, throttle) = MergeEntries(this, Count, answers, failures, answered);
            return Build(entries.ConvertAll(e => e.Entry), throttle);
        }

        string IAnswerMatching<TResponse, TEntry, string>.KeyAt(int index) => Groups[index];
        string IAnswerMatching<TResponse, TEntry, string>.KeyOf(TEntry entry) => GroupOf(entry);
        IEnumerable<TEntry> IAnswerMatching<TResponse, TEntry, string>.EntriesOf(TResponse response) => EntriesOf(response);
        short IAnswerMatching<TResponse, TEntry, string>.ErrorOf(TEntry entry) => ErrorOf(entry);
        int IAnswerMatching<TResponse, TEntry, string>.ThrottleOf(TResponse response) => ThrottleOf(response);
        TEntry IAnswerMatching<TResponse, TEntry, string>.Failed(int index, ErrorCode error) => Failed(Groups[index], error);

        // A coordinator answers each mention of a group.
        bool IAnswerMatching<TResponse, TEntry, string>.RepeatsAnsweredOnce => false;
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

        public override PooledFrame? Relayed(RequestContext context, PooledFrame frame) => CoordinatorHandlers.HideLeaderEpochs(context, frame);

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
