using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Net;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.Upstream;

/// <summary>
/// The proxy's control-plane view of one upstream cluster: a cached <see cref="ClusterView"/> refreshed
/// periodically and on demand (coalesced), and group/transaction coordinator lookups. Data-plane requests never
/// use its connection; each client session has its own (<see cref="UpstreamPool"/>).
/// </summary>
public sealed partial class UpstreamCluster : IAsyncDisposable
{
    private const string ClientId = "switchback";
    private const short MaxMetadataVersion = 12;
    private static readonly TimeSpan MinRefreshInterval = TimeSpan.FromMilliseconds(200);

    private readonly LimitsConfig _limits;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _controlLock = new(1, 1);
    private readonly ConcurrentDictionary<(sbyte KeyType, string Key), int> _coordinators = new();
    private UpstreamConnection? _control;
    private ClusterView? _view;
    private Task<ClusterView>? _refresh;
    private readonly Lock _refreshLock = new();
    private string? _lastError;

    private readonly Func<string, bool> _hidden;

    /// <param name="hidden">Topics left out of this cluster's views, so no client request can reach them (the fleet's control topic).</param>
    public UpstreamCluster(ClusterConfig config, LimitsConfig limits, ILogger logger, Func<string, bool>? hidden = null)
    {
        _hidden = hidden ?? (static _ => false);
        Config = config;
        _limits = limits;
        _logger = logger;
    }

    public ClusterConfig Config { get; }
    public string Name => Config.Name;

    /// <summary>The latest snapshot, or null before the first successful refresh.</summary>
    public ClusterView? View => Volatile.Read(ref _view);

    /// <summary>Why the last refresh failed, or null when it succeeded.</summary>
    public string? LastError => Volatile.Read(ref _lastError);

    public async ValueTask<ClusterView> GetViewAsync(CancellationToken cancellationToken)
    {
        var view = View;
        if (view is not null && DateTimeOffset.UtcNow - view.FetchedAt < _limits.MetadataRefreshInterval)
        {
            return view;
        }
        try
        {
            return await RefreshAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (UpstreamUnavailableException) when (view is not null)
        {
            return view;
        }
    }

    /// <summary>Fetches fresh metadata; concurrent callers share one fetch.</summary>
    public Task<ClusterView> RefreshAsync()
    {
        lock (_refreshLock)
        {
            if (_refresh is { IsCompleted: false } running)
            {
                return running;
            }
            // Many requests naming a missing topic must not turn into a refresh storm.
            if (_refresh is { IsCompletedSuccessfully: true } recent && DateTimeOffset.UtcNow - recent.Result.FetchedAt < MinRefreshInterval)
            {
                return recent;
            }
            return _refresh = Task.Run(FetchViewAsync);
        }
    }

    private async Task<ClusterView> FetchViewAsync()
    {
        try
        {
            var view = await FetchViewCoreAsync().ConfigureAwait(false);
            Volatile.Write(ref _view, view);
            Volatile.Write(ref _lastError, null);
            return view;
        }
        catch (Exception e) when (e is UpstreamUnavailableException or KafkaProtocolException)
        {
            Volatile.Write(ref _lastError, e.Message);
            LogRefreshFailed(_logger, Name, e.Message);
            throw e as UpstreamUnavailableException ?? new UpstreamUnavailableException(e.Message, e);
        }
    }

    private async Task<ClusterView> FetchViewCoreAsync()
    {
        var apiVersions = await SendControlAsync<ApiVersionsResponse>(ApiKey.ApiVersions, 0, new ApiVersionsRequest()).ConfigureAwait(false);
        if (apiVersions.ErrorCode != 0)
        {
            throw new UpstreamUnavailableException($"Cluster '{Name}' answered ApiVersions with error {apiVersions.ErrorCode}.");
        }
        var versions = new Dictionary<short, (short, short)>();
        foreach (var api in apiVersions.ApiKeys)
        {
            versions[api.ApiKeyValue] = (api.MinVersion, api.MaxVersion);
        }
        short metadataVersion = versions.TryGetValue((short)ApiKey.Metadata, out var range) ? Math.Min(range.Item2, MaxMetadataVersion) : (short)1;
        var metadata = await SendControlAsync<MetadataResponse>(ApiKey.Metadata, metadataVersion,
            new MetadataRequest { Topics = null, AllowAutoTopicCreation = false }).ConfigureAwait(false);

        var brokers = new List<UpstreamBroker>(metadata.Brokers.Count);
        foreach (var broker in metadata.Brokers)
        {
            brokers.Add(new UpstreamBroker(broker.NodeId, broker.Host, broker.Port, broker.Rack));
        }
        var topics = new List<TopicView>(metadata.Topics.Count);
        foreach (var topic in metadata.Topics)
        {
            if (topic.Name is null || _hidden(topic.Name))
            {
                continue;
            }
            var partitions = new PartitionView[topic.Partitions.Count];
            for (var i = 0; i < partitions.Length; i++)
            {
                var p = topic.Partitions[i];
                partitions[i] = new PartitionView(p.PartitionIndex, p.ErrorCode, p.LeaderId, p.LeaderEpoch,
                    [.. p.ReplicaNodes], [.. p.IsrNodes], [.. p.OfflineReplicas]);
            }
            Array.Sort(partitions, static (a, b) => a.Index.CompareTo(b.Index));
            topics.Add(new TopicView(topic.Name, topic.TopicId, topic.ErrorCode, topic.IsInternal, partitions));
        }
        return new ClusterView(Name, Config.Ordinal, metadata.ClusterId, brokers, topics,
            versions.ToFrozenDictionary(), DateTimeOffset.UtcNow);
    }

    /// <summary>Finds (and caches) the coordinator of a group (key type 0) or transactional id (1).</summary>
    public async ValueTask<int> FindCoordinatorAsync(sbyte keyType, string key, CancellationToken cancellationToken, bool refresh = false)
    {
        if (!refresh && _coordinators.TryGetValue((keyType, key), out var cached))
        {
            return cached;
        }
        var response = await SendControlAsync<FindCoordinatorResponse>(ApiKey.FindCoordinator, 1,
            new FindCoordinatorRequest { Key = key, KeyType = keyType }).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (response.ErrorCode != 0)
        {
            throw new CoordinatorUnavailableException(response.ErrorCode,
                $"Cluster '{Name}' has no coordinator for '{key}' (error {response.ErrorCode}).");
        }
        if (_coordinators.Count > 100_000)
        {
            _coordinators.Clear();
        }
        _coordinators[(keyType, key)] = response.NodeId;
        return response.NodeId;
    }

    /// <summary>A fresh idempotent producer id on this cluster, for mapping a client's producer onto it.</summary>
    public async ValueTask<(long ProducerId, short Epoch)> InitProducerIdAsync(CancellationToken cancellationToken)
    {
        var view = View ?? await RefreshAsync().ConfigureAwait(false);
        var version = view.ApiVersions.TryGetValue((short)ApiKey.InitProducerId, out var range) ? Math.Min(range.Max, (short)2) : (short)0;
        var response = await SendControlAsync<InitProducerIdResponse>(ApiKey.InitProducerId, version,
            new InitProducerIdRequest { TransactionalId = null, TransactionTimeoutMs = 60_000, ProducerId = -1, ProducerEpoch = -1 })
            .WaitAsync(cancellationToken).ConfigureAwait(false);
        if (response.ErrorCode != 0)
        {
            throw new UpstreamUnavailableException($"Cluster '{Name}' refused a producer id (error {response.ErrorCode}).");
        }
        return (response.ProducerId, response.ProducerEpoch);
    }

    /// <summary>A fresh producer id for a transactional id, from its transaction coordinator on this cluster.</summary>
    public async ValueTask<(long ProducerId, short Epoch)> InitTransactionalProducerIdAsync(string transactionalId, int transactionTimeoutMs, CancellationToken cancellationToken)
    {
        var view = View ?? await RefreshAsync().ConfigureAwait(false);
        var version = view.ApiVersions.TryGetValue((short)ApiKey.InitProducerId, out var range) ? Math.Min(range.Max, (short)2) : (short)0;
        for (var attempt = 0; ; attempt++)
        {
            var node = await FindCoordinatorAsync(1, transactionalId, cancellationToken, refresh: attempt > 0).ConfigureAwait(false);
            if (!view.BrokersById.TryGetValue(node, out var broker))
            {
                view = await RefreshAsync().ConfigureAwait(false);
                broker = view.BrokersById.GetValueOrDefault(node) ?? throw new UpstreamUnavailableException($"Coordinator {node} of '{transactionalId}' is not in cluster '{Name}'.");
            }
            await using var connection = await UpstreamConnection.ConnectAsync(new DnsEndPoint(broker.Host, broker.Port), $"{Name}/{node} (txn)",
                _limits.UpstreamConnectTimeout, _logger, cancellationToken, Config.UpstreamSecurity).ConfigureAwait(false);
            using var frame = FrameCodec.EncodeRequest(ApiKey.InitProducerId, version, 0, ClientId,
                new InitProducerIdRequest { TransactionalId = transactionalId, TransactionTimeoutMs = transactionTimeoutMs, ProducerId = -1, ProducerEpoch = -1 });
            var pending = await connection.SendAsync(frame.Memory, expectResponse: true, cancellationToken).ConfigureAwait(false);
            using var responseFrame = await pending!.WaitAsync(_limits.UpstreamRequestTimeout, cancellationToken).ConfigureAwait(false);
            var response = FrameCodec.DecodeResponse<InitProducerIdResponse>(responseFrame, ApiKey.InitProducerId, version);
            var error = (Protocol.ErrorCode)response.ErrorCode;
            if (error == Protocol.ErrorCode.None)
            {
                return (response.ProducerId, response.ProducerEpoch);
            }
            if (attempt >= 5 || error is not (Protocol.ErrorCode.NotCoordinator or Protocol.ErrorCode.CoordinatorNotAvailable or Protocol.ErrorCode.CoordinatorLoadInProgress or Protocol.ErrorCode.ConcurrentTransactions))
            {
                throw new UpstreamUnavailableException($"Cluster '{Name}' refused a producer id for '{transactionalId}' (error {response.ErrorCode}).");
            }
            await Task.Delay(100 * (attempt + 1), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Each topic's <c>retention.ms</c> as the cluster describes it (-1: kept forever); topics it could not describe are left out.</summary>
    /// <exception cref="UpstreamUnavailableException">The cluster is unreachable, or does not offer DescribeConfigs.</exception>
    public async Task<Dictionary<string, long>> TopicRetentionMsAsync(IReadOnlyCollection<string> topics)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        var view = View ?? await RefreshAsync().ConfigureAwait(false);
        // Asked only when offered: a broker (librdkafka's mock among them) may close the connection on an API it lacks.
        if (!view.ApiVersions.TryGetValue((short)ApiKey.DescribeConfigs, out var range))
        {
            throw new UpstreamUnavailableException($"Cluster '{Name}' does not offer DescribeConfigs.");
        }
        if (topics.Count == 0)
        {
            return result;
        }
        var version = Math.Max(range.Min, Math.Min(range.Max, KafkaApis.HighestVersion(ApiKey.DescribeConfigs)));
        var response = await SendControlAsync<DescribeConfigsResponse>(ApiKey.DescribeConfigs, version, new DescribeConfigsRequest
        {
            Resources = [.. topics.Select(t => new DescribeConfigsRequest.DescribeConfigsResource { ResourceType = 2, ResourceName = t, ConfigurationKeys = ["retention.ms"] })],
        }).ConfigureAwait(false);
        foreach (var topic in response.Results.Where(r => r.ErrorCode == 0))
        {
            if (topic.Configs.FirstOrDefault(c => c.Name == "retention.ms")?.Value is { } value
                && long.TryParse(value, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var ms))
            {
                result[topic.ResourceName] = ms;
            }
        }
        return result;
    }

    public void ForgetCoordinator(sbyte keyType, string key) => _coordinators.TryRemove((keyType, key), out _);

    private async Task<T> SendControlAsync<T>(ApiKey apiKey, short version, IKafkaMessage request) where T : IKafkaMessage, new()
    {
        await _controlLock.WaitAsync().ConfigureAwait(false);
        try
        {
            Exception? last = null;
            // The control connection, then each bootstrap server and each known broker in turn.
            foreach (var candidate in Candidates())
            {
                try
                {
                    if (_control is not { IsHealthy: true })
                    {
                        if (_control is not null)
                        {
                            await _control.DisposeAsync().ConfigureAwait(false);
                            _control = null;
                        }
                        if (candidate is null)
                        {
                            continue;
                        }
                        _control = await UpstreamConnection.ConnectAsync(candidate, $"{Name} control ({candidate.Host}:{candidate.Port})",
                            _limits.UpstreamConnectTimeout, _logger, CancellationToken.None, Config.UpstreamSecurity).ConfigureAwait(false);
                    }
                    using var frame = FrameCodec.EncodeRequest(apiKey, version, 0, ClientId, request);
                    var pending = await _control.SendAsync(frame.Memory, expectResponse: true).ConfigureAwait(false);
                    using var response = await pending!.WaitAsync(_limits.UpstreamRequestTimeout, CancellationToken.None).ConfigureAwait(false);
                    return FrameCodec.DecodeResponse<T>(response, apiKey, version);
                }
                catch (Exception e) when (e is UpstreamUnavailableException or KafkaProtocolException)
                {
                    last = e;
                    if (_control is not null)
                    {
                        await _control.DisposeAsync().ConfigureAwait(false);
                        _control = null;
                    }
                }
            }
            throw new UpstreamUnavailableException($"Cluster '{Name}' is unreachable: {last?.Message ?? "no broker address"}", last);
        }
        finally
        {
            _controlLock.Release();
        }
    }

    private IEnumerable<DnsEndPoint?> Candidates()
    {
        yield return null; // the current control connection, when healthy
        foreach (var server in Config.BootstrapServers)
        {
            yield return server;
        }
        if (View is { } view)
        {
            foreach (var broker in view.Brokers)
            {
                yield return new DnsEndPoint(broker.Host, broker.Port);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_control is not null)
        {
            await _control.DisposeAsync().ConfigureAwait(false);
        }
        _controlLock.Dispose();
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Metadata refresh of cluster {Cluster} failed: {Reason}")]
    private static partial void LogRefreshFailed(ILogger logger, string cluster, string reason);
}

/// <summary>A cluster answered FindCoordinator with an error (e.g. COORDINATOR_NOT_AVAILABLE).</summary>
public sealed class CoordinatorUnavailableException(short errorCode, string message) : Exception(message)
{
    public short ErrorCode { get; } = errorCode;
}
