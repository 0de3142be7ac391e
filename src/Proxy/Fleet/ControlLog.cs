using System.Text.Json;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Switching;

namespace Switchback.Proxy.Fleet;

/// <summary>
/// The fleet's control topic: a single-partition (compacted) Kafka topic that orders every instance's switch records.
/// Appends go through an idempotent producer with acks=all; every instance reads the partition from the beginning, in
/// order, on one thread, and hands each record to <see cref="RecordRead"/>. Kafka is the arbiter: whatever record
/// comes first in the partition comes first for every instance.
/// </summary>
public sealed partial class ControlLog : IAsyncDisposable
{
    private readonly FleetConfig _fleet;
    private readonly ClusterConfig _cluster;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private IProducer<string, byte[]>? _producer;
    private IConsumer<string, byte[]>? _consumer;
    private Thread? _reader;
    private long _next;
    private IAdminClient? _endOffsets;
    // Completed (and replaced) whenever the read position moves, so waits for a position wake up.
    private TaskCompletionSource _moved = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ControlLog(FleetConfig fleet, ClusterConfig cluster, ILogger logger)
    {
        _fleet = fleet;
        _cluster = cluster;
        _logger = logger;
    }

    /// <summary>Called on the reader thread for each record, in log order, with its offset.</summary>
    public event Action<long, ControlRecord>? RecordRead;

    /// <summary>The offset of the next record to read: everything before it has been handed to <see cref="RecordRead"/>.</summary>
    public long Position => Interlocked.Read(ref _next);

    public string Topic => _fleet.Topic;

    /// <summary>This instance's id in the fleet.</summary>
    public string InstanceId => _fleet.InstanceId;

    private string BootstrapServers => string.Join(',', _cluster.BootstrapServers.Select(s => $"{s.Host}:{s.Port}"));

    /// <summary>Creates the topic when missing (one partition, compacted), then starts reading it from the beginning.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        LibrdkafkaLoader.EnsureLoaded();
        await EnsureTopicAsync().ConfigureAwait(false);
        var producerConfig = new ProducerConfig
        {
            BootstrapServers = BootstrapServers,
            ClientId = $"switchback-fleet-{_fleet.InstanceId}",
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 0,
            MessageTimeoutMs = 30_000,
        };
        ClusterAdmin.ApplySecurity(producerConfig, _cluster.UpstreamSecurity);
        _producer = new ProducerBuilder<string, byte[]>(producerConfig).SetLogHandler(static (_, _) => { }).Build();
        // The log's end is asked over the producer's connections: the reader's connection to the leader is mostly
        // parked in a waiting fetch, and a broker answers a connection's requests in order.
        _endOffsets = new DependentAdminClientBuilder(_producer.Handle).Build();
        var consumerConfig = new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            ClientId = $"switchback-fleet-{_fleet.InstanceId}",
            // Assigned, never subscribed or committed: the group id is only a librdkafka requirement.
            GroupId = _fleet.ReaderGroupId,
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            // A broker answers a waiting fetch as soon as a record arrives, so on a real cluster this only sets how often an
            // idle instance asks; librdkafka's mock cluster waits it out, so there it bounds every step of a switch.
            FetchWaitMaxMs = (int)_fleet.ReadWait.TotalMilliseconds,
            IsolationLevel = IsolationLevel.ReadCommitted,
        };
        ClusterAdmin.ApplySecurity(consumerConfig, _cluster.UpstreamSecurity);
        _consumer = new ConsumerBuilder<string, byte[]>(consumerConfig).SetLogHandler(static (_, _) => { }).Build();
        _consumer.Assign(new TopicPartitionOffset(_fleet.Topic, 0, Offset.Beginning));
        _reader = new Thread(Read) { IsBackground = true, Name = "switchback-control-log" };
        _reader.Start();
        try
        {
            // The first query looks the partition's leader up: here (best effort) rather than in the first switch.
            await EndOffsetAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KafkaException or TimeoutException)
        {
            LogReadFailed(_logger, _fleet.Topic, e.Message);
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    private async Task EnsureTopicAsync()
    {
        var config = new AdminClientConfig { BootstrapServers = BootstrapServers, ClientId = $"switchback-fleet-{_fleet.InstanceId}" };
        ClusterAdmin.ApplySecurity(config, _cluster.UpstreamSecurity);
        using var admin = new AdminClientBuilder(config).SetLogHandler(static (_, _) => { }).Build();
        try
        {
            var metadata = admin.GetMetadata(_fleet.Topic, TimeSpan.FromSeconds(10));
            if (metadata.Topics is [{ Error.IsError: false }])
            {
                return;
            }
            await admin.CreateTopicsAsync([new TopicSpecification
            {
                Name = _fleet.Topic,
                NumPartitions = 1,
                ReplicationFactor = -1, // the cluster's default
                Configs = new Dictionary<string, string> { ["cleanup.policy"] = "compact" },
            }]).ConfigureAwait(false);
        }
        catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code == ErrorCode.TopicAlreadyExists))
        {
            // Another instance created it first.
        }
        catch (KafkaException e)
        {
            // Clusters that do not offer CreateTopics (or deny it) need the topic created beforehand.
            LogTopicNotCreated(_logger, _fleet.Topic, _cluster.Name, e.Message);
        }
    }

    /// <summary>Appends a record; completes once the cluster has it (acks=all), with its offset.</summary>
    public async Task<long> AppendAsync(ControlRecord record, CancellationToken cancellationToken = default)
    {
        var producer = _producer ?? throw new InvalidOperationException("The control log is not started.");
        var value = JsonSerializer.SerializeToUtf8Bytes(record, ControlJson.Options);
        var delivery = await producer.ProduceAsync(new TopicPartition(_fleet.Topic, 0), new Message<string, byte[]> { Key = record.Key, Value = value },
            cancellationToken).ConfigureAwait(false);
        return delivery.Offset.Value;
    }

    /// <summary>Completes once every record appended before the call has been read (the log's end at the time of the call).</summary>
    public async Task CaughtUpAsync(CancellationToken cancellationToken)
    {
        var end = await EndOffsetAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        await ReadUpToAsync(end, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The offset the next record appended will get (read-committed, as the reader reads).</summary>
    private async Task<long> EndOffsetAsync()
    {
        var endOffsets = _endOffsets ?? throw new InvalidOperationException("The control log is not started.");
        var answer = await endOffsets.ListOffsetsAsync(
            [new TopicPartitionOffsetSpec { TopicPartition = new TopicPartition(_fleet.Topic, 0), OffsetSpec = OffsetSpec.Latest() }],
            new ListOffsetsOptions { RequestTimeout = TimeSpan.FromSeconds(10), IsolationLevel = IsolationLevel.ReadCommitted }).ConfigureAwait(false);
        return answer.ResultInfos[0].TopicPartitionOffsetError.Offset.Value;
    }

    /// <summary>Completes once the record at <paramref name="offset"/> - 1 (and all before it) has been read.</summary>
    public async Task ReadUpToAsync(long offset, CancellationToken cancellationToken)
    {
        while (true)
        {
            var moved = Volatile.Read(ref _moved).Task;
            if (Position >= offset)
            {
                return;
            }
            await moved.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void Read()
    {
        var consumer = _consumer!;
        while (!_stop.IsCancellationRequested)
        {
            ConsumeResult<string, byte[]>? result;
            try
            {
                result = consumer.Consume(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ConsumeException e)
            {
                LogReadFailed(_logger, _fleet.Topic, e.Error.Reason);
                continue;
            }
            if (result is null)
            {
                continue;
            }
            if (!result.IsPartitionEOF && result.Message?.Value is { } value)
            {
                ControlRecord? record = null;
                try
                {
                    record = JsonSerializer.Deserialize<ControlRecord>(value, ControlJson.Options);
                }
                catch (JsonException e)
                {
                    LogUnreadable(_logger, _fleet.Topic, result.Offset.Value, e.Message);
                }
                if (record is not null)
                {
                    try
                    {
                        RecordRead?.Invoke(result.Offset.Value, record);
                    }
                    catch (Exception e)
                    {
                        LogHandlerFailed(_logger, result.Offset.Value, e);
                    }
                }
            }
            Interlocked.Exchange(ref _next, result.IsPartitionEOF ? result.Offset.Value : result.Offset.Value + 1);
            Interlocked.Exchange(ref _moved, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        _reader?.Join(TimeSpan.FromSeconds(10));
        _consumer?.Close();
        _consumer?.Dispose();
        _endOffsets?.Dispose();
        _producer?.Flush(TimeSpan.FromSeconds(5));
        _producer?.Dispose();
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 4301, Level = LogLevel.Warning, Message = "Control topic {Topic} could not be created on cluster {Cluster} ({Error}); create it with one partition and cleanup.policy=compact")]
    private static partial void LogTopicNotCreated(ILogger logger, string topic, string cluster, string error);

    [LoggerMessage(EventId = 4302, Level = LogLevel.Warning, Message = "Reading control topic {Topic} failed: {Error}; retrying")]
    private static partial void LogReadFailed(ILogger logger, string topic, string error);

    [LoggerMessage(EventId = 4303, Level = LogLevel.Error, Message = "Control topic {Topic} offset {Offset} is not a record this version understands ({Error}); skipped")]
    private static partial void LogUnreadable(ILogger logger, string topic, long offset, string error);

    [LoggerMessage(EventId = 4304, Level = LogLevel.Error, Message = "Applying control record at offset {Offset} failed")]
    private static partial void LogHandlerFailed(ILogger logger, long offset, Exception exception);
}

internal static class ControlJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);
}
