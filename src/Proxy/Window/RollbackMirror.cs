using System.Diagnostics;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Switching;

namespace Switchback.Proxy.Window;

/// <summary>
/// Copies every record a family's producers write to its new write cluster back to its old (origin) write cluster
/// while the family's rollback window is open, so that a rollback resumes rather than replays. Per partition, in
/// order, to the same partition number, keeping key, value, headers and timestamp (as CreateTime). Reads with a
/// Confluent.Kafka consumer that is assigned its partitions (it never joins or commits to a group on either cluster)
/// at read_committed, so a transaction's records are copied once it commits and an aborted one's never; writes with
/// an idempotent producer (acks=all), so a retried copy is never stored twice and order is kept.
/// </summary>
/// <remarks>
/// <para><b>Progress and restarts.</b> Every <see cref="MirrorOptions.CheckpointInterval"/> the mirror writes, per
/// partition, the next offset to read on the new cluster and the old cluster's end right after the last acknowledged
/// copy (<see cref="MirrorProgressStore"/>). Copies acknowledged, or merely delivered, after that checkpoint are not in
/// it, so a restart cannot simply read on from it. But each copy is exactly one record on the old cluster, appended
/// in the order its originals were read, so the records found there between the checkpoint's old end and the current
/// end are the copies of the next records on the new cluster, in order, possibly interleaved with stray writes. On
/// start (and after any failure) the mirror reads those records back, and while reading the new cluster from the
/// checkpoint it takes each record that is the same (key, value, headers, timestamp) as the next one read back as
/// already copied; one that is not is a stray write. A read that reaches the new cluster's end with records still
/// unmatched means they are all strays. So nothing is copied twice and nothing is skipped, even when something else
/// wrote the old cluster meanwhile, which counting records alone would get wrong. The read-back is bounded by what
/// was written since the last checkpoint. Copies in flight when a process dies may still be applied by the broker after
/// the end is read; a restart takes longer than that in practice, and a failed pipeline is disposed before re-reading.</para>
/// <para><b>Threads.</b> One dedicated thread reads and hands copies to the producer; librdkafka's thread delivers the
/// acknowledgements; checkpoints and stray-write checks run on timers. Nothing here runs on a request's path.</para>
/// </remarks>
public sealed partial class RollbackMirror : IAsyncDisposable
{
    private readonly ClusterConfig _from;
    private readonly ClusterConfig _to;
    private readonly MirrorProgressStore _store;
    private readonly MirrorOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly PartitionMirror[] _partitions;
    private readonly Dictionary<TopicPartition, PartitionMirror> _byPartition;
    private readonly ClusterAdmin _oldAdmin;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _copierDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _waitersLock = new();
    private readonly List<CopiedWaiter> _waiters = [];
    private readonly DateTimeOffset _startedAt;
    private readonly Action<DivergentCopy> _diverged;
    private Task _housekeeping = Task.CompletedTask;
    private DivergentCopy? _firstDivergence;
    private MirrorProgress? _lastSaved;
    private int _waiterCount;
    private volatile MirrorState _state = MirrorState.Resuming;
    private volatile string? _error;
    private int _stopped;
    private bool _checkpointFailed;
    private bool _strayCheckFailed;

    private RollbackMirror(MirrorProgress progress, ClusterConfig from, ClusterConfig to, MirrorProgressStore store, MirrorOptions options,
        ILogger logger, TimeProvider? time)
    {
        if (progress.From != from.Name || progress.To != to.Name)
        {
            throw new ArgumentException($"Progress of family '{progress.Family}' is for {progress.From} -> {progress.To}, not {from.Name} -> {to.Name}.", nameof(progress));
        }
        Family = progress.Family;
        _from = from;
        _to = to;
        _store = store;
        _options = options;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _startedAt = progress.StartedAt;
        _firstDivergence = progress.FirstDivergence;
        _partitions = [.. progress.Partitions.Select(p => new PartitionMirror(p))];
        _byPartition = _partitions.ToDictionary(p => p.TopicPartition);
        _oldAdmin = new ClusterAdmin(to);
        _diverged = copy => Interlocked.CompareExchange(ref _firstDivergence, copy, null);
        _lastSaved = progress;
    }

    public string Family { get; }

    /// <summary>The new write cluster, read.</summary>
    public string From => _from.Name;

    /// <summary>The old (origin) write cluster, written.</summary>
    public string To => _to.Name;

    public MirrorState State => _state;

    /// <summary>The partitions mirrored.</summary>
    public IReadOnlyList<TopicPartition> Partitions => [.. _partitions.Select(p => p.TopicPartition)];

    /// <summary>
    /// Starts mirroring a family from <paramref name="startOffsets"/> on <paramref name="from"/> (per partition: the new
    /// cluster's end offsets when writes moved there; when unknown and the clusters were offset-aligned, the old
    /// cluster's end offsets). Reads the old cluster's end offsets (where stray writes are counted from) and persists
    /// the initial progress before it returns, so a restart from then on resumes it.
    /// </summary>
    /// <exception cref="ArgumentException">No partitions, or a negative start offset.</exception>
    /// <exception cref="KafkaException">The old cluster's end offsets could not be read (e.g. a partition missing there).</exception>
    public static async Task<RollbackMirror> BeginAsync(string family, ClusterConfig from, ClusterConfig to, IReadOnlyDictionary<TopicPartition, long> startOffsets,
        MirrorProgressStore store, MirrorOptions options, ILogger logger, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(family);
        if (startOffsets.Count == 0)
        {
            throw new ArgumentException("A mirror needs at least one partition.", nameof(startOffsets));
        }
        if (startOffsets.FirstOrDefault(p => p.Value < 0) is { Key: not null } negative)
        {
            throw new ArgumentException($"Start offset {negative.Value} of {negative.Key} is not an offset.", nameof(startOffsets));
        }
        if (from.Name == to.Name)
        {
            throw new ArgumentException($"A mirror copies between two clusters, not from '{from.Name}' to itself.", nameof(to));
        }
        Dictionary<TopicPartition, long> oldEnds;
        using (var admin = new ClusterAdmin(to))
        {
            // A new admin client's first query also finds the cluster's leaders, which a loaded machine can take seconds
            // over: at least the default bound here (the caller's token still ends it), whatever the running mirror's.
            var timeout = options.EffectiveAdminTimeout > MirrorOptions.Default.EffectiveAdminTimeout ? options.EffectiveAdminTimeout : MirrorOptions.Default.EffectiveAdminTimeout;
            oldEnds = await admin.EndOffsetsAsync([.. startOffsets.Keys], timeout).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        var missing = startOffsets.Keys.Where(p => !oldEnds.TryGetValue(p, out var end) || end < 0).ToList();
        if (missing.Count > 0)
        {
            throw new KafkaException(new Error(ErrorCode.UnknownTopicOrPart, $"No end offset on cluster '{to.Name}' for {string.Join(", ", missing)}."));
        }
        var progress = MirrorProgress.Initial(family, from.Name, to.Name, (time ?? TimeProvider.System).GetUtcNow(),
            startOffsets.Select(p => (p.Key.Topic, p.Key.Partition.Value, p.Value, oldEnds[p.Key])));
        store.Save(progress);
        var mirror = new RollbackMirror(progress, from, to, store, options, logger, time);
        LogStarted(logger, family, from.Name, to.Name, progress.Partitions.Count);
        mirror.Run();
        return mirror;
    }

    /// <summary>Resumes a mirror from its persisted progress (see the remarks on the class for how copies are not repeated).</summary>
    public static RollbackMirror Resume(MirrorProgress progress, ClusterConfig from, ClusterConfig to, MirrorProgressStore store, MirrorOptions options,
        ILogger logger, TimeProvider? time = null)
    {
        var mirror = new RollbackMirror(progress, from, to, store, options, logger, time);
        LogResumed(logger, progress.Family, from.Name, to.Name, progress.Partitions.Count, progress.Partitions.Sum(p => p.Copied));
        mirror.Run();
        return mirror;
    }

    private void Run()
    {
        new Thread(Copy) { IsBackground = true, Name = $"switchback-mirror-{Family}" }.Start();
        _housekeeping = Task.WhenAll(CheckpointLoopAsync(), StrayCheckLoopAsync());
    }

    /// <summary>The mirror's figures now: per partition and in total.</summary>
    public MirrorFigures Figures()
    {
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var partitions = new PartitionMirrorFigures[_partitions.Length];
        long bytes = 0;
        for (var i = 0; i < _partitions.Length; i++)
        {
            var partition = _partitions[i];
            lock (partition.Sync)
            {
                partitions[i] = partition.Figures(nowMs);
                bytes += partition.CopiedBytes;
            }
        }
        long? maxLag = 0;
        foreach (var p in partitions)
        {
            maxLag = p.LagMs is { } lag && maxLag is { } max ? Math.Max(max, lag) : null;
        }
        var copied = partitions.Sum(p => p.Copied);
        var divergent = partitions.Sum(p => p.Divergent);
        return new MirrorFigures(Family, From, To, _state, _startedAt, partitions,
            new MirrorTotals(copied, bytes, partitions.Sum(p => p.LagRecords), maxLag, partitions.Sum(p => p.StrayWrites)),
            new OffsetAlignment(copied - divergent, divergent, Volatile.Read(ref _firstDivergence)),
            _state == MirrorState.Retrying ? _error : null);
    }

    /// <summary>The progress a checkpoint would write now.</summary>
    public MirrorProgress Progress()
    {
        var partitions = new PartitionProgress[_partitions.Length];
        for (var i = 0; i < _partitions.Length; i++)
        {
            lock (_partitions[i].Sync)
            {
                partitions[i] = _partitions[i].Progress();
            }
        }
        return new MirrorProgress(Family, From, To, _startedAt, partitions, Volatile.Read(ref _firstDivergence));
    }

    /// <summary>
    /// Completes once every record below <paramref name="endsOnNewCluster"/> (per partition, offsets on the new
    /// cluster, e.g. its end offsets read inside a rollback's hold) is copied and acknowledged. Completed by delivery
    /// acknowledgements and by reads reaching the end (past commit markers and aborted records), never by polling.
    /// </summary>
    /// <exception cref="ArgumentException">A partition this mirror does not copy.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <exception cref="ObjectDisposedException">The mirror stopped first.</exception>
    public Task WaitCopiedAsync(IReadOnlyDictionary<TopicPartition, long> endsOnNewCluster, CancellationToken cancellationToken)
    {
        var ends = new List<(PartitionMirror Partition, long End)>(endsOnNewCluster.Count);
        foreach (var (topicPartition, end) in endsOnNewCluster)
        {
            if (!_byPartition.TryGetValue(topicPartition, out var partition))
            {
                throw new ArgumentException($"The mirror of family '{Family}' does not copy {topicPartition}.", nameof(endsOnNewCluster));
            }
            ends.Add((partition, end));
        }
        var waiter = new CopiedWaiter(ends);
        if (waiter.IsSatisfied())
        {
            return Task.CompletedTask;
        }
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }
        lock (_waitersLock)
        {
            if (Volatile.Read(ref _stopped) != 0)
            {
                return Task.FromException(new ObjectDisposedException(nameof(RollbackMirror), $"The mirror of family '{Family}' has stopped."));
            }
            _waiters.Add(waiter);
            Interlocked.Increment(ref _waiterCount);
        }
        // An acknowledgement between the first check and the registration would have found no waiter.
        SignalWaiters();
        waiter.Cancellation = cancellationToken.Register(() =>
        {
            if (Remove(waiter))
            {
                waiter.Completion.TrySetCanceled(cancellationToken);
            }
        });
        return waiter.Completion.Task;
    }

    /// <summary>Reads the old cluster's end offsets once and counts stray writes (the periodic check calls this).</summary>
    public async Task CheckStrayWritesAsync(CancellationToken cancellationToken = default)
    {
        var ends = await _oldAdmin.EndOffsetsAsync(Partitions, _options.EffectiveAdminTimeout).WaitAsync(cancellationToken).ConfigureAwait(false);
        foreach (var partition in _partitions)
        {
            if (!ends.TryGetValue(partition.TopicPartition, out var end) || end < 0)
            {
                continue;
            }
            long count, increase;
            lock (partition.Sync)
            {
                // The counts the detector needs are read now, after the end offset was.
                partition.OldEndSeen(end);
                count = partition.Strays.Count;
                increase = count - partition.LoggedStrays;
                partition.LoggedStrays = count;
            }
            if (increase > 0)
            {
                LogStrayWrites(_logger, Family, increase, partition.TopicPartition.Topic, partition.TopicPartition.Partition.Value, To, count);
            }
        }
    }

    /// <summary>Stops copying (copies in flight are awaited, bounded) and writes a last checkpoint; the progress stays on disk.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            await _copierDone.Task.ConfigureAwait(false);
            return;
        }
        _stop.Cancel();
        await _copierDone.Task.ConfigureAwait(false);
        try
        {
            await _housekeeping.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        Checkpoint();
        _state = MirrorState.Stopped;
        List<CopiedWaiter> waiters;
        lock (_waitersLock)
        {
            waiters = [.. _waiters];
            _waiters.Clear();
            Volatile.Write(ref _waiterCount, 0);
        }
        foreach (var waiter in waiters)
        {
            waiter.Cancellation.Dispose();
            waiter.Completion.TrySetException(new ObjectDisposedException(nameof(RollbackMirror), $"The mirror of family '{Family}' has stopped."));
        }
        _oldAdmin.Dispose();
        LogStopped(_logger, Family, _partitions.Sum(p => { lock (p.Sync) { return p.Copied; } }));
    }

    public ValueTask DisposeAsync() => new(StopAsync());

    // The copier thread: one pipeline at a time; a failed one is disposed and the next resumes from what was acknowledged.
    private void Copy()
    {
        var failures = 0;
        var generation = 0;
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                Pipeline? pipeline = null;
                try
                {
                    _state = MirrorState.Resuming;
                    var unconfirmed = ReadBackUnconfirmed();
                    pipeline = new Pipeline(this, ++generation, unconfirmed);
                    _state = MirrorState.Running;
                    pipeline.Run(() => failures = 0);
                }
                catch (Exception e) when (!_stop.IsCancellationRequested)
                {
                    failures++;
                    _error = e.Message;
                    _state = MirrorState.Retrying;
                    var delay = TimeSpan.FromMilliseconds(Math.Min(30_000, _options.EffectiveRetryBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 16))));
                    LogFailed(_logger, Family, failures, e.Message, (long)delay.TotalMilliseconds);
                    pipeline?.Dispose(flush: false);
                    pipeline = null;
                    _stop.Token.WaitHandle.WaitOne(delay);
                }
                catch (Exception) when (_stop.IsCancellationRequested)
                {
                    // Stopping: whatever failed, the last checkpoint reflects what was acknowledged.
                }
                finally
                {
                    pipeline?.Dispose(flush: true);
                }
            }
        }
        finally
        {
            _copierDone.TrySetResult();
        }
    }

    /// <summary>
    /// The records on the old cluster between each partition's checkpointed end and its current end, read with a
    /// consumer of their own (read_uncommitted: a bypassing producer's records are strays whether it commits or not).
    /// </summary>
    private Dictionary<PartitionMirror, (List<OldRecord> Records, long End)> ReadBackUnconfirmed()
    {
        var ends = _oldAdmin.EndOffsetsAsync(Partitions, _options.EffectiveAdminTimeout).WaitAsync(_stop.Token).GetAwaiter().GetResult();
        var result = new Dictionary<PartitionMirror, (List<OldRecord>, long)>();
        var pending = new Dictionary<TopicPartition, (PartitionMirror Partition, long From, long End)>();
        foreach (var partition in _partitions)
        {
            if (!ends.TryGetValue(partition.TopicPartition, out var end) || end < 0)
            {
                throw new KafkaException(new Error(ErrorCode.UnknownTopicOrPart, $"No end offset on cluster '{To}' for {partition.TopicPartition}."));
            }
            long from;
            lock (partition.Sync)
            {
                from = partition.OldEnd;
            }
            result[partition] = ([], Math.Max(end, from));
            if (end > from)
            {
                pending[partition.TopicPartition] = (partition, from, end);
            }
            else if (end < from)
            {
                LogOldClusterShrank(_logger, Family, partition.TopicPartition.Topic, partition.TopicPartition.Partition.Value, To, from, end);
            }
        }
        if (pending.Count == 0)
        {
            return result;
        }
        using var consumer = BuildConsumer(_to, IsolationLevel.ReadUncommitted, "read-back");
        consumer.Assign(pending.Select(p => new TopicPartitionOffset(p.Key, p.Value.From)));
        var deadline = Stopwatch.StartNew();
        var limit = _options.EffectiveAdminTimeout * 4;
        long read = 0;
        while (pending.Count > 0)
        {
            _stop.Token.ThrowIfCancellationRequested();
            if (deadline.Elapsed > limit)
            {
                throw new TimeoutException($"Reading back {pending.Count} partition(s) of cluster '{To}' after the checkpoint took longer than {limit.TotalSeconds:0} s.");
            }
            // A read error (e.g. the checkpoint's offset no longer exists there) fails this attempt; it is retried.
            var record = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (record is null || !pending.TryGetValue(record.TopicPartition, out var entry))
            {
                continue;
            }
            var offset = record.Offset.Value;
            if (!record.IsPartitionEOF && offset < entry.End)
            {
                result[entry.Partition].Item1.Add(new OldRecord(offset, record.Message.Key, record.Message.Value, record.Message.Headers, record.Message.Timestamp));
                read++;
            }
            if ((record.IsPartitionEOF ? offset : offset + 1) >= entry.End)
            {
                pending.Remove(record.TopicPartition);
            }
        }
        LogReadBack(_logger, Family, read, To);
        return result;
    }

    private IConsumer<byte[]?, byte[]?> BuildConsumer(ClusterConfig cluster, IsolationLevel isolation, string purpose)
    {
        LibrdkafkaLoader.EnsureLoaded();
        var config = new ConsumerConfig
        {
            BootstrapServers = Bootstrap(cluster),
            ClientId = $"switchback-mirror-{Family}-{purpose}",
            // Assigned, never subscribed and never committed: the group id is only a librdkafka requirement.
            GroupId = $"switchback-mirror-{Family}",
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            EnablePartitionEof = true,
            IsolationLevel = isolation,
            // A start offset that no longer exists is an error to report, never a silent jump.
            AutoOffsetReset = AutoOffsetReset.Error,
            // An empty fetch waits this long on a broker that has nothing (the mock clusters wait it out in full).
            FetchWaitMaxMs = _options.FetchWaitMaxMs,
            QueuedMaxMessagesKbytes = 16 * 1024,
        };
        ClusterAdmin.ApplySecurity(config, cluster.UpstreamSecurity);
        return new ConsumerBuilder<byte[]?, byte[]?>(config).SetLogHandler(static (_, _) => { }).SetErrorHandler(static (_, _) => { }).Build();
    }

    private static string Bootstrap(ClusterConfig cluster) => string.Join(',', cluster.BootstrapServers.Select(s => $"{s.Host}:{s.Port}"));

    private void SignalWaiters()
    {
        if (Volatile.Read(ref _waiterCount) == 0)
        {
            return;
        }
        List<CopiedWaiter>? done = null;
        lock (_waitersLock)
        {
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].IsSatisfied())
                {
                    (done ??= []).Add(_waiters[i]);
                    _waiters.RemoveAt(i);
                    Interlocked.Decrement(ref _waiterCount);
                }
            }
        }
        foreach (var waiter in done ?? [])
        {
            waiter.Cancellation.Dispose();
            waiter.Completion.TrySetResult();
        }
    }

    private bool Remove(CopiedWaiter waiter)
    {
        lock (_waitersLock)
        {
            if (!_waiters.Remove(waiter))
            {
                return false;
            }
            Interlocked.Decrement(ref _waiterCount);
            return true;
        }
    }

    private async Task CheckpointLoopAsync()
    {
        using var timer = new PeriodicTimer(_options.CheckpointInterval, _time);
        while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
        {
            await Task.Run(Checkpoint).ConfigureAwait(false);
        }
    }

    private void Checkpoint()
    {
        var progress = Progress();
        if (_lastSaved is { } last && SameProgress(last, progress))
        {
            return;
        }
        try
        {
            _store.Save(progress);
            _lastSaved = progress;
            _checkpointFailed = false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Copying goes on; a restart then re-reads more of the old cluster (nothing is copied twice either way).
            if (!_checkpointFailed)
            {
                LogCheckpointFailed(_logger, Family, _store.PathOf(Family), e.Message);
                _checkpointFailed = true;
            }
        }
    }

    private static bool SameProgress(MirrorProgress a, MirrorProgress b) =>
        a.FirstDivergence == b.FirstDivergence && a.Partitions.SequenceEqual(b.Partitions);

    private async Task StrayCheckLoopAsync()
    {
        using var timer = new PeriodicTimer(_options.StrayCheckInterval, _time);
        while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
        {
            try
            {
                await CheckStrayWritesAsync(_stop.Token).ConfigureAwait(false);
                _strayCheckFailed = false;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                if (!_strayCheckFailed)
                {
                    LogStrayCheckFailed(_logger, Family, To, e.Message);
                    _strayCheckFailed = true;
                }
            }
        }
    }

    /// <summary>One consumer and one producer, from a starting point until they fail or the mirror stops.</summary>
    private sealed class Pipeline
    {
        private readonly RollbackMirror _mirror;
        private readonly int _generation;
        private readonly IConsumer<byte[]?, byte[]?> _consumer;
        private readonly IProducer<byte[]?, byte[]?> _producer;
        private readonly SemaphoreSlim _inFlight;
        private readonly Dictionary<PartitionMirror, Action<DeliveryReport<byte[]?, byte[]?>>> _delivered = [];
        private Exception? _failure;
        private int _disposed;

        public Pipeline(RollbackMirror mirror, int generation, Dictionary<PartitionMirror, (List<OldRecord> Records, long End)> unconfirmed)
        {
            _mirror = mirror;
            _generation = generation;
            _inFlight = new SemaphoreSlim(mirror._options.MaxInFlight, mirror._options.MaxInFlight);
            var assignments = new List<TopicPartitionOffset>(mirror._partitions.Length);
            foreach (var partition in mirror._partitions)
            {
                lock (partition.Sync)
                {
                    var (records, end) = unconfirmed[partition];
                    partition.BeginPipeline(generation, records, end);
                    assignments.Add(new TopicPartitionOffset(partition.TopicPartition, partition.Next));
                }
                _delivered[partition] = report => Delivered(partition, report);
            }
            var producerConfig = new ProducerConfig
            {
                BootstrapServers = Bootstrap(mirror._to),
                ClientId = $"switchback-mirror-{mirror.Family}",
                EnableIdempotence = true,
                Acks = Acks.All,
                MaxInFlight = 5,
                LingerMs = mirror._options.LingerMs,
                MessageTimeoutMs = (int)mirror._options.EffectiveDeliveryTimeout.TotalMilliseconds,
                QueueBufferingMaxMessages = mirror._options.MaxInFlight + 1000,
                // Any record the new cluster took must pass the client's own size check; the old cluster's limit decides.
                MessageMaxBytes = 64 * 1024 * 1024,
                // The acknowledgement needs only the offset; the copy's bytes need not be marshalled back.
                DeliveryReportFields = "none",
            };
            ClusterAdmin.ApplySecurity(producerConfig, mirror._to.UpstreamSecurity);
            _producer = new ProducerBuilder<byte[]?, byte[]?>(producerConfig)
                .SetLogHandler(static (_, _) => { })
                .SetErrorHandler((_, error) =>
                {
                    if (error.IsFatal)
                    {
                        Fail(new KafkaException(error));
                    }
                })
                .Build();
            try
            {
                _consumer = mirror.BuildConsumer(mirror._from, IsolationLevel.ReadCommitted, "read");
                _consumer.Assign(assignments);
            }
            catch
            {
                _producer.Dispose();
                throw;
            }
        }

        /// <summary>Copies until the mirror stops (returns) or something fails (throws).</summary>
        public void Run(Action copied)
        {
            var stop = _mirror._stop.Token;
            var watermarksAt = Stopwatch.GetTimestamp();
            var progressed = false;
            while (!stop.IsCancellationRequested)
            {
                ThrowIfFailed();
                if (Stopwatch.GetElapsedTime(watermarksAt) > TimeSpan.FromMilliseconds(200))
                {
                    RefreshNewEnds();
                    watermarksAt = Stopwatch.GetTimestamp();
                }
                ConsumeResult<byte[]?, byte[]?>? record;
                try
                {
                    record = _consumer.Consume(TimeSpan.FromMilliseconds(100));
                }
                catch (ConsumeException e) when (!e.Error.IsFatal && e.ConsumerRecord?.TopicPartition is { } failed && _mirror._byPartition.TryGetValue(failed, out var partition))
                {
                    PartitionFailed(partition, e.Error);
                    continue;
                }
                if (record is null)
                {
                    continue;
                }
                var mirrored = _mirror._byPartition[record.TopicPartition];
                if (record.IsPartitionEOF)
                {
                    lock (mirrored.Sync)
                    {
                        mirrored.EndReached(record.Offset.Value);
                    }
                    _mirror.SignalWaiters();
                    continue;
                }
                while (!_inFlight.Wait(100, stop))
                {
                    ThrowIfFailed();
                }
                var bytes = Size(record.Message);
                bool copy;
                lock (mirrored.Sync)
                {
                    copy = mirrored.Read(record, bytes, _mirror._diverged);
                }
                if (!copy)
                {
                    _inFlight.Release();
                    _mirror.SignalWaiters();
                    continue;
                }
                _producer.Produce(mirrored.TopicPartition, new Message<byte[]?, byte[]?>
                {
                    Key = record.Message.Key,
                    Value = record.Message.Value,
                    Headers = record.Message.Headers,
                    Timestamp = new Timestamp(record.Message.Timestamp.UnixTimestampMs, TimestampType.CreateTime),
                }, _delivered[mirrored]);
                if (!progressed)
                {
                    progressed = true;
                    copied();
                }
            }
        }

        private void Delivered(PartitionMirror partition, DeliveryReport<byte[]?, byte[]?> report)
        {
            if (Volatile.Read(ref _disposed) == 0)
            {
                _inFlight.Release();
            }
            if (report.Error.IsError)
            {
                Fail(new KafkaException(report.Error));
                return;
            }
            lock (partition.Sync)
            {
                if (partition.Generation != _generation)
                {
                    return;
                }
                partition.Delivered(report.Offset.Value, _mirror._diverged);
            }
            _mirror.SignalWaiters();
        }

        private void PartitionFailed(PartitionMirror partition, Error error)
        {
            var text = $"{error.Code}: {error.Reason}";
            bool first;
            lock (partition.Sync)
            {
                first = partition.Error != text;
                partition.Error = text;
            }
            if (first)
            {
                LogPartitionFailed(_mirror._logger, _mirror.Family, partition.TopicPartition.Topic, partition.TopicPartition.Partition.Value, _mirror.From, text);
            }
        }

        private void RefreshNewEnds()
        {
            foreach (var partition in _mirror._partitions)
            {
                var watermarks = _consumer.GetWatermarkOffsets(partition.TopicPartition);
                if (watermarks?.High.Value is >= 0 and var high)
                {
                    lock (partition.Sync)
                    {
                        partition.NewEndSeen(high);
                    }
                }
            }
        }

        private void Fail(Exception failure) => Interlocked.CompareExchange(ref _failure, failure, null);

        private void ThrowIfFailed()
        {
            if (Volatile.Read(ref _failure) is { } failure)
            {
                throw new KafkaException(new Error(ErrorCode.Local_Fail, $"copy to cluster '{_mirror.To}' failed: {failure.Message}"), failure);
            }
        }

        private static int Size(Message<byte[]?, byte[]?> message)
        {
            var size = (message.Key?.Length ?? 0) + (message.Value?.Length ?? 0);
            if (message.Headers is { } headers)
            {
                foreach (var header in headers)
                {
                    size += header.Key.Length + (header.GetValueBytes()?.Length ?? 0);
                }
            }
            return size;
        }

        /// <summary>
        /// Flushes (when stopping) so that what is in flight is acknowledged and checkpointed; then disposes both
        /// clients. After this no copy of this pipeline is sent again.
        /// </summary>
        public void Dispose(bool flush)
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }
            try
            {
                if (flush)
                {
                    _producer.Flush(_mirror._options.EffectiveStopTimeout);
                }
            }
            catch (KafkaException)
            {
            }
            finally
            {
                _consumer.Dispose();
                _producer.Dispose();
            }
        }
    }

    private sealed class CopiedWaiter(List<(PartitionMirror Partition, long End)> ends)
    {
        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CancellationTokenRegistration Cancellation { get; set; }

        public bool IsSatisfied()
        {
            foreach (var (partition, end) in ends)
            {
                lock (partition.Sync)
                {
                    if (partition.Position < end)
                    {
                        return false;
                    }
                }
            }
            return true;
        }
    }

    [LoggerMessage(EventId = 4401, Level = LogLevel.Information, Message = "Mirror of family {Family} started: {From} -> {To}, {Partitions} partition(s)")]
    private static partial void LogStarted(ILogger logger, string family, string from, string to, int partitions);

    [LoggerMessage(EventId = 4402, Level = LogLevel.Information, Message = "Mirror of family {Family} resumed from its checkpoint: {From} -> {To}, {Partitions} partition(s), {Copied} record(s) copied before")]
    private static partial void LogResumed(ILogger logger, string family, string from, string to, int partitions, long copied);

    [LoggerMessage(EventId = 4403, Level = LogLevel.Warning, Message = "Family {Family}: {Increase} more write(s) to {Topic}[{Partition}] on cluster {Cluster} did not come from the mirror ({Total} since it started): a producer bypasses the proxy")]
    private static partial void LogStrayWrites(ILogger logger, string family, long increase, string topic, int partition, string cluster, long total);

    [LoggerMessage(EventId = 4404, Level = LogLevel.Warning, Message = "Mirror of family {Family} failed (attempt {Attempt}): {Reason}; resuming from what was acknowledged in {DelayMs} ms")]
    private static partial void LogFailed(ILogger logger, string family, int attempt, string reason, long delayMs);

    [LoggerMessage(EventId = 4405, Level = LogLevel.Error, Message = "Mirror of family {Family} cannot read {Topic}[{Partition}] on cluster {Cluster}: {Reason}")]
    private static partial void LogPartitionFailed(ILogger logger, string family, string topic, int partition, string cluster, string reason);

    [LoggerMessage(EventId = 4406, Level = LogLevel.Information, Message = "Mirror of family {Family} stopped; {Copied} record(s) copied since it started")]
    private static partial void LogStopped(ILogger logger, string family, long copied);

    [LoggerMessage(EventId = 4407, Level = LogLevel.Error, Message = "Mirror of family {Family} could not write its progress to {Path}: {Reason}")]
    private static partial void LogCheckpointFailed(ILogger logger, string family, string path, string reason);

    [LoggerMessage(EventId = 4408, Level = LogLevel.Warning, Message = "Mirror of family {Family}: the end offsets of cluster {Cluster} could not be read for the stray-write check: {Reason}")]
    private static partial void LogStrayCheckFailed(ILogger logger, string family, string cluster, string reason);

    [LoggerMessage(EventId = 4409, Level = LogLevel.Information, Message = "Mirror of family {Family}: read back {Records} record(s) written on cluster {Cluster} after the last checkpoint")]
    private static partial void LogReadBack(ILogger logger, string family, long records, string cluster);

    [LoggerMessage(EventId = 4410, Level = LogLevel.Error, Message = "Mirror of family {Family}: {Topic}[{Partition}] on cluster {Cluster} ends at {End}, below the {Checkpoint} its last copy left (records were deleted there)")]
    private static partial void LogOldClusterShrank(ILogger logger, string family, string topic, int partition, string cluster, long checkpoint, long end);
}
