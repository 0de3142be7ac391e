namespace Switchback.Proxy.Window;

/// <summary>How a <see cref="RollbackMirror"/> paces its background work; every wait it makes is bounded by one of these.</summary>
/// <param name="StrayCheckInterval">How often the old write cluster's end offsets are read to find writes that bypassed the proxy.</param>
/// <param name="CheckpointInterval">How often progress is written to the state directory (when it changed).</param>
/// <param name="MaxInFlight">Copies handed to the producer and not yet acknowledged, at most (reading pauses beyond).</param>
/// <param name="FetchWaitMaxMs">Longest a fetch on the new cluster waits for records (the copy's latency when idle).</param>
/// <param name="LingerMs">How long the producer gathers copies into a batch.</param>
/// <param name="DeliveryTimeout">A copy not acknowledged within this fails the pipeline, which restarts from its checkpoint.</param>
/// <param name="AdminTimeout">Bound of every end-offset query and of reading back copies after a checkpoint.</param>
/// <param name="StopTimeout">How long a stop waits for copies in flight to be acknowledged.</param>
/// <param name="RetryBackoff">First wait before a failed pipeline is restarted (doubled per failure, at most 30 s).</param>
public sealed record MirrorOptions(
    TimeSpan StrayCheckInterval,
    TimeSpan CheckpointInterval,
    int MaxInFlight = 50_000,
    int FetchWaitMaxMs = 10,
    int LingerMs = 2,
    TimeSpan? DeliveryTimeout = null,
    TimeSpan? AdminTimeout = null,
    TimeSpan? StopTimeout = null,
    TimeSpan? RetryBackoff = null)
{
    /// <summary>Stray writes checked every 5 s, progress written every second.</summary>
    public static MirrorOptions Default { get; } = new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1));

    internal TimeSpan EffectiveDeliveryTimeout => DeliveryTimeout ?? TimeSpan.FromMinutes(2);
    internal TimeSpan EffectiveAdminTimeout => AdminTimeout ?? TimeSpan.FromSeconds(15);
    internal TimeSpan EffectiveStopTimeout => StopTimeout ?? TimeSpan.FromSeconds(10);
    internal TimeSpan EffectiveRetryBackoff => RetryBackoff ?? TimeSpan.FromMilliseconds(500);
}
