using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>What an entry of a topic-admin request names, which decides where it goes.</summary>
public enum AdminSubject : byte
{
    /// <summary>A topic: its family's cluster.</summary>
    Topic,

    /// <summary>A broker, by the virtual node id the client knows (config resources of a broker or its loggers).</summary>
    Broker,

    /// <summary>A consumer group (its config resource): the group family's read cluster.</summary>
    Group,

    /// <summary>Nothing a family owns (cluster-wide defaults, client metrics): the default route's read cluster.</summary>
    Cluster,

    /// <summary>A topic id the proxy never handed out: answered UNKNOWN_TOPIC_ID, sent nowhere.</summary>
    UnknownTopicId,
}

/// <summary>One entry of a topic-admin request: what it names (a topic, broker id or group).</summary>
public readonly record struct AdminEntry(AdminSubject Subject, string Name);

/// <summary>
/// A topic-admin request, whose entries may belong to families on different clusters: CreateTopics, CreatePartitions
/// and DeleteTopics (entries are topics), DescribeConfigs, AlterConfigs and IncrementalAlterConfigs (entries are
/// config resources). Each entry is matched in answers by its topic name or resource; topic ids are the proxy's own
/// in both directions, and broker resources name the client's virtual node ids.
/// </summary>
public abstract class TopicAdminBatch : EntryBatch
{
    private const sbyte TopicResource = 2;
    private const sbyte BrokerResource = 4;
    private const sbyte BrokerLoggerResource = 8;
    private const sbyte GroupResource = 32;

    /// <summary>The batch for a topic-admin request, or null for any other request.</summary>
    public static TopicAdminBatch? For(RequestContext context, ProxyState state) => context.ApiKey switch
    {
        ApiKey.CreateTopics => new CreateTopicsBatch(context.Decode<CreateTopicsRequest>(), context.Version, state.TopicIds),
        ApiKey.CreatePartitions => new CreatePartitionsBatch(context.Decode<CreatePartitionsRequest>()),
        ApiKey.DeleteTopics => new DeleteTopicsBatch(context.Decode<DeleteTopicsRequest>(), context.Version, state),
        ApiKey.DescribeConfigs => new DescribeConfigsBatch(context.Decode<DescribeConfigsRequest>()),
        ApiKey.AlterConfigs => new AlterConfigsBatch(context.Decode<AlterConfigsRequest>()),
        ApiKey.IncrementalAlterConfigs => new IncrementalAlterConfigsBatch(context.Decode<IncrementalAlterConfigsRequest>()),
        _ => null,
    };

    /// <summary>What the client's entry at an index names.</summary>
    public abstract AdminEntry EntryAt(int index);

    /// <summary>How long the request lets a broker take before it answers (its timeout), beyond a usual round trip.</summary>
    public virtual TimeSpan BrokerWait => TimeSpan.Zero;

    /// <summary>Names the entry at an index upstream by <paramref name="upstreamName"/> (a broker's own id); answers show the client's name.</summary>
    public virtual void SendAs(int index, string upstreamName) =>
        throw new InvalidOperationException($"Entries of {GetType().Name} are sent by their own names.");

    /// <summary>The message a broker would put beside an error the proxy gives an entry.</summary>
    protected static string? MessageOf(ErrorCode error) => error switch
    {
        ErrorCode.NetworkException => "The cluster serving this entry could not be reached.",
        ErrorCode.UnknownTopicId => "This topic id is unknown.",
        ErrorCode.InvalidRequest => "This broker id is not one of this cluster's brokers.",
        ErrorCode.UnknownServerError => "No answer came for this entry.",
        ErrorCode.TopicAuthorizationFailed or ErrorCode.GroupAuthorizationFailed or ErrorCode.ClusterAuthorizationFailed => "Not authorized.",
        _ => null,
    };

    /// <summary>Merging by key with the shape of one API's response.</summary>
    private abstract class Batch<TResponse, TEntry, TKey> : TopicAdminBatch, IAnswerMatching<TResponse, TEntry, TKey>
        where TResponse : IKafkaMessage, new() where TKey : notnull
    {
        public abstract TKey KeyAt(int index);
        public abstract TKey KeyOf(TEntry entry);
        public abstract IEnumerable<TEntry> EntriesOf(TResponse response);
        public abstract short ErrorOf(TEntry entry);
        public abstract int ThrottleOf(TResponse response);
        public abstract TEntry Failed(int index, ErrorCode error);

        // Brokers answer each topic or partition once (duplicates are one error), but each config resource named.
        public virtual bool RepeatsAnsweredOnce => true;

        protected abstract TResponse Build(List<(int Index, TEntry Entry)> entries, int throttleTimeMs);

        public override IKafkaMessage Decode(PooledFrame frame, ApiKey apiKey, short version) =>
            FrameCodec.DecodeResponse<TResponse>(frame, apiKey, version);

        public override IKafkaMessage Merge(IReadOnlyList<(IReadOnlyList<int> Indices, IKafkaMessage? Response)> answers,
            IReadOnlyList<ErrorCode> failures, Action<int, ErrorCode> answered)
        {
            var (entries, throttle) = MergeEntries(this, Count, answers, failures, answered);
            return Build(entries, throttle);
        }
    }

    private sealed class CreateTopicsBatch(CreateTopicsRequest request, short version, TopicIds ids)
        : Batch<CreateTopicsResponse, CreateTopicsResponse.CreatableTopicResult, string>
    {
        public override int Count => request.Topics.Count;
        public override AdminEntry EntryAt(int index) => new(AdminSubject.Topic, request.Topics[index].Name);
        public override TimeSpan BrokerWait => TimeSpan.FromMilliseconds(Math.Max(0, request.timeoutMs));

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices) => new CreateTopicsRequest
        {
            Topics = Pick(request.Topics, indices),
            timeoutMs = request.timeoutMs,
            validateOnly = request.validateOnly,
            UnknownTaggedFields = request.UnknownTaggedFields,
        };

        public override string KeyAt(int index) => request.Topics[index].Name;
        public override string KeyOf(CreateTopicsResponse.CreatableTopicResult entry) => entry.Name;
        public override IEnumerable<CreateTopicsResponse.CreatableTopicResult> EntriesOf(CreateTopicsResponse response) => response.Topics;
        public override short ErrorOf(CreateTopicsResponse.CreatableTopicResult entry) => entry.ErrorCode;
        public override int ThrottleOf(CreateTopicsResponse response) => response.ThrottleTimeMs;

        public override CreateTopicsResponse.CreatableTopicResult Failed(int index, ErrorCode error) =>
            new() { Name = request.Topics[index].Name, ErrorCode = (short)error, ErrorMessage = MessageOf(error) };

        protected override CreateTopicsResponse Build(List<(int Index, CreateTopicsResponse.CreatableTopicResult Entry)> entries, int throttleTimeMs)
        {
            var response = new CreateTopicsResponse { ThrottleTimeMs = throttleTimeMs, Topics = entries.ConvertAll(e => e.Entry) };
            ShowProxyIds(response);
            return response;
        }

        public override PooledFrame? Relayed(RequestContext context, PooledFrame frame)
        {
            if (version < 7)
            {
                return frame; // no topic ids on the wire
            }
            CreateTopicsResponse response;
            try
            {
                response = FrameCodec.DecodeResponse<CreateTopicsResponse>(frame, context.ApiKey, version);
            }
            catch (KafkaProtocolException)
            {
                return frame;
            }
            using (frame)
            {
                ShowProxyIds(response);
                return context.Respond(response);
            }
        }

        // A created topic's id is its cluster's own; clients know topics by the proxy's id (Metadata, Fetch).
        private void ShowProxyIds(CreateTopicsResponse response)
        {
            foreach (var topic in response.Topics)
            {
                if (topic.TopicId != Guid.Empty)
                {
                    topic.TopicId = ids.IdOf(topic.Name);
                }
            }
        }
    }

    private sealed class CreatePartitionsBatch(CreatePartitionsRequest request)
        : Batch<CreatePartitionsResponse, CreatePartitionsResponse.CreatePartitionsTopicResult, string>
    {
        public override int Count => request.Topics.Count;
        public override AdminEntry EntryAt(int index) => new(AdminSubject.Topic, request.Topics[index].Name);
        public override TimeSpan BrokerWait => TimeSpan.FromMilliseconds(Math.Max(0, request.TimeoutMs));

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices) => new CreatePartitionsRequest
        {
            Topics = Pick(request.Topics, indices),
            TimeoutMs = request.TimeoutMs,
            ValidateOnly = request.ValidateOnly,
            UnknownTaggedFields = request.UnknownTaggedFields,
        };

        public override string KeyAt(int index) => request.Topics[index].Name;
        public override string KeyOf(CreatePartitionsResponse.CreatePartitionsTopicResult entry) => entry.Name;
        public override IEnumerable<CreatePartitionsResponse.CreatePartitionsTopicResult> EntriesOf(CreatePartitionsResponse response) => response.Results;
        public override short ErrorOf(CreatePartitionsResponse.CreatePartitionsTopicResult entry) => entry.ErrorCode;
        public override int ThrottleOf(CreatePartitionsResponse response) => response.ThrottleTimeMs;

        public override CreatePartitionsResponse.CreatePartitionsTopicResult Failed(int index, ErrorCode error) =>
            new() { Name = request.Topics[index].Name, ErrorCode = (short)error, ErrorMessage = MessageOf(error) };

        protected override CreatePartitionsResponse Build(List<(int Index, CreatePartitionsResponse.CreatePartitionsTopicResult Entry)> entries, int throttleTimeMs) =>
            new() { ThrottleTimeMs = throttleTimeMs, Results = entries.ConvertAll(e => e.Entry) };
    }

    /// <summary>DeleteTopics: by name, or from v6 by the proxy's topic id, which is sent upstream as the name it stands for.</summary>
    private sealed class DeleteTopicsBatch : Batch<DeleteTopicsResponse, DeleteTopicsResponse.DeletableTopicResult, string>
    {
        private readonly DeleteTopicsRequest _request;
        private readonly short _version;
        private readonly TopicIds _ids;
        private readonly string?[] _names;

        public DeleteTopicsBatch(DeleteTopicsRequest request, short version, ProxyState state)
        {
            _request = request;
            _version = version;
            _ids = state.TopicIds;
            if (version < 6)
            {
                _names = [.. request.TopicNames];
                return;
            }
            _names = new string?[request.Topics.Count];
            for (var i = 0; i < _names.Length; i++)
            {
                var topic = request.Topics[i];
                if (topic.Name is null)
                {
                    _names[i] = state.TopicIds.NameOf(topic.TopicId, state.KnownTopicNames());
                    Rewritten = true;
                }
                else
                {
                    _names[i] = topic.Name;
                }
            }
        }

        public override int Count => _names.Length;
        public override TimeSpan BrokerWait => TimeSpan.FromMilliseconds(Math.Max(0, _request.TimeoutMs));

        public override AdminEntry EntryAt(int index) => _names[index] is { } name
            ? new AdminEntry(AdminSubject.Topic, name)
            : new AdminEntry(AdminSubject.UnknownTopicId, _request.Topics[index].TopicId.ToString());

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
        {
            var narrowed = new DeleteTopicsRequest { TimeoutMs = _request.TimeoutMs, UnknownTaggedFields = _request.UnknownTaggedFields };
            foreach (var index in indices)
            {
                if (_version < 6)
                {
                    narrowed.TopicNames.Add(_request.TopicNames[index]);
                }
                else
                {
                    var topic = _request.Topics[index];
                    // A topic the client named by the proxy's id goes by name: each cluster has its own id for it.
                    narrowed.Topics.Add(topic.Name is null ? new DeleteTopicsRequest.DeleteTopicState { Name = _names[index], TopicId = Guid.Empty } : topic);
                }
            }
            return narrowed;
        }

        public override string KeyAt(int index) => _names[index] ?? _request.Topics[index].TopicId.ToString();
        public override string KeyOf(DeleteTopicsResponse.DeletableTopicResult entry) => entry.Name ?? entry.TopicId.ToString();
        public override IEnumerable<DeleteTopicsResponse.DeletableTopicResult> EntriesOf(DeleteTopicsResponse response) => response.Responses;
        public override short ErrorOf(DeleteTopicsResponse.DeletableTopicResult entry) => entry.ErrorCode;
        public override int ThrottleOf(DeleteTopicsResponse response) => response.ThrottleTimeMs;

        public override DeleteTopicsResponse.DeletableTopicResult Failed(int index, ErrorCode error) => new()
        {
            Name = _version < 6 ? _request.TopicNames[index] : _request.Topics[index].Name,
            TopicId = _version < 6 ? Guid.Empty : _request.Topics[index].TopicId,
            ErrorCode = (short)error,
            ErrorMessage = MessageOf(error),
        };

        protected override DeleteTopicsResponse Build(List<(int Index, DeleteTopicsResponse.DeletableTopicResult Entry)> entries, int throttleTimeMs)
        {
            var response = new DeleteTopicsResponse { ThrottleTimeMs = throttleTimeMs };
            foreach (var (index, entry) in entries)
            {
                if (_version >= 6 && _request.Topics[index].Name is null)
                {
                    entry.TopicId = _request.Topics[index].TopicId; // as the client named it
                }
                else
                {
                    ShowProxyId(entry);
                }
                response.Responses.Add(entry);
            }
            return response;
        }

        public override PooledFrame? Relayed(RequestContext context, PooledFrame frame)
        {
            if (_version < 6)
            {
                return frame; // no topic ids on the wire
            }
            DeleteTopicsResponse response;
            try
            {
                response = FrameCodec.DecodeResponse<DeleteTopicsResponse>(frame, context.ApiKey, _version);
            }
            catch (KafkaProtocolException)
            {
                return frame;
            }
            using (frame)
            {
                response.Responses.ForEach(ShowProxyId);
                return context.Respond(response);
            }
        }

        // A deleted topic's id is its cluster's own; clients know topics by the proxy's id.
        private void ShowProxyId(DeleteTopicsResponse.DeletableTopicResult entry)
        {
            if (entry.TopicId != Guid.Empty && entry.Name is { } name)
            {
                entry.TopicId = _ids.IdOf(name);
            }
        }
    }

    /// <summary>
    /// A request whose entries are config resources. A topic goes to its family's cluster; a broker or broker-logger
    /// resource to the broker behind the virtual id it names, sent under that broker's own id and answered under the
    /// client's; a group to its family's read cluster; anything else (cluster-wide defaults, client metrics) to the
    /// default route. Each resource named is answered, repeats included.
    /// </summary>
    private abstract class ConfigResourceBatch<TResponse, TResult> : Batch<TResponse, TResult, (sbyte, string)>
        where TResponse : IKafkaMessage, new()
    {
        private string[]? _sentNames;

        /// <summary>The type and name of the client's resource at an index.</summary>
        protected abstract (sbyte Type, string Name) ResourceAt(int index);

        /// <summary>The type and name an answer names.</summary>
        protected abstract (sbyte Type, string Name) ResourceOf(TResult result);

        /// <summary>An answer for a resource, with an error or none.</summary>
        protected abstract TResult Result(sbyte type, string name, ErrorCode error, string? message);

        /// <summary>Shows an answer under the name the client gave its resource.</summary>
        protected abstract void Rename(TResult result, string name);

        protected abstract TResponse Response(List<TResult> results, int throttleTimeMs);

        public override bool RepeatsAnsweredOnce => false;

        public override AdminEntry EntryAt(int index)
        {
            var (type, name) = ResourceAt(index);
            return type switch
            {
                TopicResource => new AdminEntry(AdminSubject.Topic, name),
                // An empty broker name means the cluster-wide defaults, which any broker serves.
                BrokerResource or BrokerLoggerResource when name.Length > 0 => new AdminEntry(AdminSubject.Broker, name),
                GroupResource => new AdminEntry(AdminSubject.Group, name),
                _ => new AdminEntry(AdminSubject.Cluster, name),
            };
        }

        public override void SendAs(int index, string upstreamName)
        {
            if (_sentNames is null)
            {
                _sentNames = new string[Count];
                for (var i = 0; i < _sentNames.Length; i++)
                {
                    _sentNames[i] = ResourceAt(i).Name;
                }
            }
            _sentNames[index] = upstreamName;
            Rewritten = true;
        }

        /// <summary>The name the resource at an index goes upstream by.</summary>
        protected string SentNameAt(int index) => _sentNames?[index] ?? ResourceAt(index).Name;

        public override (sbyte, string) KeyAt(int index) => (ResourceAt(index).Type, SentNameAt(index));
        public override (sbyte, string) KeyOf(TResult entry) => ResourceOf(entry);

        public override TResult Failed(int index, ErrorCode error)
        {
            var (type, name) = ResourceAt(index);
            return Result(type, name, error, MessageOf(error));
        }

        protected override TResponse Build(List<(int Index, TResult Entry)> entries, int throttleTimeMs)
        {
            var results = new List<TResult>(entries.Count);
            foreach (var (index, entry) in entries)
            {
                Rename(entry, ResourceAt(index).Name); // a broker by the client's id for it
                results.Add(entry);
            }
            return Response(results, throttleTimeMs);
        }
    }

    private sealed class DescribeConfigsBatch(DescribeConfigsRequest request)
        : ConfigResourceBatch<DescribeConfigsResponse, DescribeConfigsResponse.DescribeConfigsResult>
    {
        public override int Count => request.Resources.Count;

        protected override (sbyte Type, string Name) ResourceAt(int index) =>
            (request.Resources[index].ResourceType, request.Resources[index].ResourceName);

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
        {
            var narrowed = new DescribeConfigsRequest
            {
                IncludeSynonyms = request.IncludeSynonyms,
                IncludeDocumentation = request.IncludeDocumentation,
                UnknownTaggedFields = request.UnknownTaggedFields,
            };
            foreach (var index in indices)
            {
                var resource = request.Resources[index];
                narrowed.Resources.Add(new DescribeConfigsRequest.DescribeConfigsResource
                {
                    ResourceType = resource.ResourceType,
                    ResourceName = SentNameAt(index),
                    ConfigurationKeys = resource.ConfigurationKeys,
                    UnknownTaggedFields = resource.UnknownTaggedFields,
                });
            }
            return narrowed;
        }

        protected override (sbyte Type, string Name) ResourceOf(DescribeConfigsResponse.DescribeConfigsResult result) => (result.ResourceType, result.ResourceName);
        public override IEnumerable<DescribeConfigsResponse.DescribeConfigsResult> EntriesOf(DescribeConfigsResponse response) => response.Results;
        public override short ErrorOf(DescribeConfigsResponse.DescribeConfigsResult entry) => entry.ErrorCode;
        public override int ThrottleOf(DescribeConfigsResponse response) => response.ThrottleTimeMs;

        protected override DescribeConfigsResponse.DescribeConfigsResult Result(sbyte type, string name, ErrorCode error, string? message) =>
            new() { ResourceType = type, ResourceName = name, ErrorCode = (short)error, ErrorMessage = message };

        protected override void Rename(DescribeConfigsResponse.DescribeConfigsResult result, string name) => result.ResourceName = name;

        protected override DescribeConfigsResponse Response(List<DescribeConfigsResponse.DescribeConfigsResult> results, int throttleTimeMs) =>
            new() { ThrottleTimeMs = throttleTimeMs, Results = results };
    }

    private sealed class AlterConfigsBatch(AlterConfigsRequest request)
        : ConfigResourceBatch<AlterConfigsResponse, AlterConfigsResponse.AlterConfigsResourceResponse>
    {
        public override int Count => request.Resources.Count;

        protected override (sbyte Type, string Name) ResourceAt(int index) =>
            (request.Resources[index].ResourceType, request.Resources[index].ResourceName);

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
        {
            var narrowed = new AlterConfigsRequest { ValidateOnly = request.ValidateOnly, UnknownTaggedFields = request.UnknownTaggedFields };
            foreach (var index in indices)
            {
                var resource = request.Resources[index];
                narrowed.Resources.Add(new AlterConfigsRequest.AlterConfigsResource
                {
                    ResourceType = resource.ResourceType,
                    ResourceName = SentNameAt(index),
                    Configs = resource.Configs,
                    UnknownTaggedFields = resource.UnknownTaggedFields,
                });
            }
            return narrowed;
        }

        protected override (sbyte Type, string Name) ResourceOf(AlterConfigsResponse.AlterConfigsResourceResponse result) => (result.ResourceType, result.ResourceName);
        public override IEnumerable<AlterConfigsResponse.AlterConfigsResourceResponse> EntriesOf(AlterConfigsResponse response) => response.Responses;
        public override short ErrorOf(AlterConfigsResponse.AlterConfigsResourceResponse entry) => entry.ErrorCode;
        public override int ThrottleOf(AlterConfigsResponse response) => response.ThrottleTimeMs;

        protected override AlterConfigsResponse.AlterConfigsResourceResponse Result(sbyte type, string name, ErrorCode error, string? message) =>
            new() { ResourceType = type, ResourceName = name, ErrorCode = (short)error, ErrorMessage = message };

        protected override void Rename(AlterConfigsResponse.AlterConfigsResourceResponse result, string name) => result.ResourceName = name;

        protected override AlterConfigsResponse Response(List<AlterConfigsResponse.AlterConfigsResourceResponse> results, int throttleTimeMs) =>
            new() { ThrottleTimeMs = throttleTimeMs, Responses = results };
    }

    private sealed class IncrementalAlterConfigsBatch(IncrementalAlterConfigsRequest request)
        : ConfigResourceBatch<IncrementalAlterConfigsResponse, IncrementalAlterConfigsResponse.AlterConfigsResourceResponse>
    {
        public override int Count => request.Resources.Count;

        protected override (sbyte Type, string Name) ResourceAt(int index) =>
            (request.Resources[index].ResourceType, request.Resources[index].ResourceName);

        public override IKafkaMessage Narrow(IReadOnlyList<int> indices)
        {
            var narrowed = new IncrementalAlterConfigsRequest { ValidateOnly = request.ValidateOnly, UnknownTaggedFields = request.UnknownTaggedFields };
            foreach (var index in indices)
            {
                var resource = request.Resources[index];
                narrowed.Resources.Add(new IncrementalAlterConfigsRequest.AlterConfigsResource
                {
                    ResourceType = resource.ResourceType,
                    ResourceName = SentNameAt(index),
                    Configs = resource.Configs,
                    UnknownTaggedFields = resource.UnknownTaggedFields,
                });
            }
            return narrowed;
        }

        protected override (sbyte Type, string Name) ResourceOf(IncrementalAlterConfigsResponse.AlterConfigsResourceResponse result) => (result.ResourceType, result.ResourceName);
        public override IEnumerable<IncrementalAlterConfigsResponse.AlterConfigsResourceResponse> EntriesOf(IncrementalAlterConfigsResponse response) => response.Responses;
        public override short ErrorOf(IncrementalAlterConfigsResponse.AlterConfigsResourceResponse entry) => entry.ErrorCode;
        public override int ThrottleOf(IncrementalAlterConfigsResponse response) => response.ThrottleTimeMs;

        protected override IncrementalAlterConfigsResponse.AlterConfigsResourceResponse Result(sbyte type, string name, ErrorCode error, string? message) =>
            new() { ResourceType = type, ResourceName = name, ErrorCode = (short)error, ErrorMessage = message };

        protected override void Rename(IncrementalAlterConfigsResponse.AlterConfigsResourceResponse result, string name) => result.ResourceName = name;

        protected override IncrementalAlterConfigsResponse Response(List<IncrementalAlterConfigsResponse.AlterConfigsResourceResponse> results, int throttleTimeMs) =>
            new() { ThrottleTimeMs = throttleTimeMs, Responses = results };
    }
}
