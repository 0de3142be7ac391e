using Confluent.Kafka;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Switching;

namespace Switchback.Proxy.Translation;

/// <summary>An internal topic could not be read to its end.</summary>
public sealed class InternalTopicUnavailableException(string message) : Exception(message);

/// <summary>
/// Reads one of MirrorMaker 2's internal topics from its beginning and keeps following it, on a thread of its own,
/// handing every record to a callback in order. Assigned, never subscribed, never committed. A reader can wait until
/// everything written to the topic before it asked has been handed over (<see cref="CatchUpAsync"/>).
/// </summary>
public sealed class InternalTopicFollower : IDisposable
{
    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(5);

    private readonly ClusterConfig _cluster;
    private readonly Func<int, bool> _readPartition;
    private readonly Action<ConsumeResult<byte[]?, byte[]?>> _handle;
    private readonly IConsumer<byte[]?, byte[]?> _consumer;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _assignLock = new();
    private readonly Dictionary<int, long> _next = [];
    private Thread? _thread;
    private int[]? _partitions;
    private TaskCompletionSource _advanced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _readToEndOnce;

    public InternalTopicFollower(ClusterConfig cluster, string topic, Func<int, bool> readPartition, Action<ConsumeResult<byte[]?, byte[]?>> handle, string purpose)
    {
        _cluster = cluster;
        Topic = topic;
        _readPartition = readPartition;
        _handle = handle;
        LibrdkafkaLoader.EnsureLoaded();
        var config = new ConsumerConfig
        {
            BootstrapServers = string.Join(',', cluster.BootstrapServers.Select(s => $"{s.Host}:{s.Port}")),
            ClientId = $"switchback-{purpose}",
            GroupId = $"switchback-{purpose}",
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            EnablePartitionEof = true,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            // An open transaction on the topic would hold a read_committed reader below the end it waits for.
            IsolationLevel = IsolationLevel.ReadUncommitted,
            FetchWaitMaxMs = 100,
            AllowAutoCreateTopics = false,
        };
        ClusterAdmin.ApplySecurity(config, cluster.UpstreamSecurity);
        _consumer = new ConsumerBuilder<byte[]?, byte[]?>(config).SetLogHandler(static (_, _) => { }).SetErrorHandler(static (_, _) => { }).Build();
    }

    public string Topic { get; }

    public string Cluster => _cluster.Name;

    /// <summary>Whether the topic has been read to its end at least once.</summary>
    public bool ReadToEndOnce => Volatile.Read(ref _readToEndOnce);

    /// <summary>Starts following (when the topic exists; otherwise at the first <see cref="CatchUpAsync"/> that finds it).</summary>
    public void Start()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = $"switchback-follow-{Topic}" };
        _thread.Start();
    }

    /// <summary>
    /// Waits until every record the topic held when called has been handed over. Throws
    /// <see cref="InternalTopicUnavailableException"/> when the topic does not exist or its end cannot be read.
    /// </summary>
    public async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        var partitions = await Task.Run(EnsureAssigned, cancellationToken).ConfigureAwait(false);
        var ends = await Task.Run(() => partitions.ToDictionary(p => p, p =>
        {
            try
            {
                return _consumer.QueryWatermarkOffsets(new TopicPartition(Topic, p), MetadataTimeout).High.Value;
            }
            catch (KafkaException e)
            {
                throw new InternalTopicUnavailableException($"the end of topic '{Topic}' on cluster '{Cluster}' could not be read: {e.Error.Reason}");
            }
        }), cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var advanced = Volatile.Read(ref _advanced).Task;
            lock (_next)
            {
                if (ends.All(e => _next.GetValueOrDefault(e.Key, 0) >= e.Value))
                {
                    Volatile.Write(ref _readToEndOnce, true);
                    return;
                }
            }
            await advanced.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private int[] EnsureAssigned()
    {
        lock (_assignLock)
        {
            if (_partitions is { } assigned)
            {
                return assigned;
            }
            using var admin = new DependentAdminClientBuilder(_consumer.Handle).Build();
            Metadata metadata;
            try
            {
                metadata = admin.GetMetadata(Topic, MetadataTimeout);
            }
            catch (KafkaException e)
            {
                throw new InternalTopicUnavailableException($"cluster '{Cluster}' did not describe topic '{Topic}': {e.Error.Reason}");
            }
            var topic = metadata.Topics.FirstOrDefault(t => t.Topic == Topic);
            if (topic is null || topic.Error.IsError || topic.Partitions.Count == 0)
            {
                throw new InternalTopicUnavailableException($"topic '{Topic}' does not exist on cluster '{Cluster}'{(topic is { Error.IsError: true } ? $" ({topic.Error.Reason})" : "")}");
            }
            var partitions = topic.Partitions.Select(p => p.PartitionId).Where(_readPartition).Order().ToArray();
            _consumer.Assign(partitions.Select(p => new TopicPartitionOffset(Topic, p, Offset.Beginning)));
            _partitions = partitions;
            return partitions;
        }
    }

    private void Run()
    {
        try
        {
            try
            {
                EnsureAssigned();
            }
            catch (InternalTopicUnavailableException)
            {
                // Not there yet: the first CatchUpAsync that finds it assigns it, and this thread then reads it.
            }
            while (!_stop.IsCancellationRequested)
            {
                ConsumeResult<byte[]?, byte[]?>? result;
                try
                {
                    result = _consumer.Consume(TimeSpan.FromMilliseconds(200));
                }
                catch (ConsumeException)
                {
                    continue; // a fetch error is retried; CatchUpAsync's caller is bounded by its own deadline
                }
                if (result is null)
                {
                    continue;
                }
                if (!result.IsPartitionEOF)
                {
                    _handle(result);
                }
                lock (_next)
                {
                    _next[result.Partition.Value] = result.IsPartitionEOF ? result.Offset.Value : result.Offset.Value + 1;
                }
                Interlocked.Exchange(ref _advanced, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            }
        }
        catch (ObjectDisposedException)
        {
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _thread?.Join(TimeSpan.FromSeconds(5));
        _consumer.Close();
        _consumer.Dispose();
        _stop.Dispose();
    }
}
