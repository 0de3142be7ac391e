using Confluent.Kafka;

namespace Switchback.Proxy.Window;

/// <summary>
/// One partition of a <see cref="RollbackMirror"/>: its durable position and what is in flight. The copier thread
/// and the producer's delivery reports both change it, under its lock; every member is called with the lock held.
/// </summary>
internal sealed class PartitionMirror
{
    // Copies handed to the producer, oldest first: delivery reports of one partition arrive in this order.
    private readonly Queue<InFlightCopy> _inFlight = new();
    // Records found on the old cluster after the checkpoint, not yet matched to a record of the new one.
    private readonly Queue<OldRecord> _unconfirmed = new();
    private long _unconfirmedEnd;
    private long _consumedNext;
    // False until the first pipeline has read back what lies on the old cluster past the checkpoint: copies made after
    // it by an earlier process are there, unaccounted, and an end offset read before then would count them as strays.
    private bool _accounted;

    public PartitionMirror(PartitionProgress progress)
    {
        TopicPartition = new TopicPartition(progress.Topic, progress.Partition);
        Label = $"{progress.Topic}-{progress.Partition}";
        Start = progress.Start;
        Next = progress.Next;
        OldEnd = progress.OldEnd;
        OldObserved = progress.OldEnd;
        Copied = progress.Copied;
        Divergent = progress.Divergent;
        Strays = new StrayWriteDetector(progress.OldBase);
        // Copies before the checkpoint leave exactly this many strays below it.
        Strays.CopyLanded(progress.OldEnd - 1, progress.Copied);
        _consumedNext = progress.Next;
        NewEnd = progress.Next;
    }

    public Lock Sync { get; } = new();
    public TopicPartition TopicPartition { get; }

    /// <summary>"topic-partition", as Kafka tools print it (the metric label).</summary>
    public string Label { get; }
    public long Start { get; }

    /// <summary>Offset after the last acknowledged copy on the new cluster (or past records a read skipped).</summary>
    public long Next { get; private set; }
    public long OldEnd { get; private set; }
    public long OldObserved { get; private set; }
    public long NewEnd { get; private set; }
    public long Copied { get; private set; }
    public long Divergent { get; private set; }
    public long CopiedBytes { get; private set; }
    public long LastCopiedTimestampMs { get; private set; } = -1;
    public StrayWriteDetector Strays { get; }

    /// <summary>The stray count last logged (each increase is logged once).</summary>
    public long LoggedStrays { get; set; }
    public string? Error { get; set; }

    /// <summary>Which pipeline's delivery reports count; earlier pipelines' late reports are ignored.</summary>
    public int Generation { get; private set; }

    public int InFlightCount => _inFlight.Count;

    /// <summary>Everything below this offset on the new cluster is copied and acknowledged.</summary>
    public long Position => _inFlight.TryPeek(out var oldest) ? oldest.NewOffset : Math.Max(Next, _consumedNext);

    /// <summary>Copies that may be on the old cluster without being acknowledged yet (see <see cref="StrayWriteDetector"/>).</summary>
    public long PossiblyLanded => _inFlight.Count + _unconfirmed.Count;

    public long? LagMs(long nowMs)
    {
        if (_inFlight.TryPeek(out var oldest))
        {
            return Math.Max(0, nowMs - oldest.TimestampMs);
        }
        if (NewEnd <= Position)
        {
            return 0;
        }
        return LastCopiedTimestampMs >= 0 ? Math.Max(0, nowMs - LastCopiedTimestampMs) : null;
    }

    /// <summary>A new pipeline begins: nothing is in flight, reading resumes at <see cref="Position"/>.</summary>
    public void BeginPipeline(int generation, List<OldRecord> unconfirmed, long unconfirmedEnd)
    {
        Generation = generation;
        // Copies still in flight from the previous pipeline may or may not have landed: reading resumes at the oldest,
        // and those that landed are among the unconfirmed records read back from the old cluster.
        var resumeAt = Position;
        _inFlight.Clear();
        Next = resumeAt;
        _consumedNext = resumeAt;
        _unconfirmed.Clear();
        foreach (var record in unconfirmed)
        {
            _unconfirmed.Enqueue(record);
        }
        _unconfirmedEnd = unconfirmedEnd;
        OldObserved = Math.Max(OldObserved, unconfirmedEnd);
        Error = null;
        _accounted = true;
    }

    /// <summary>
    /// A record read from the new cluster. True when it must be copied (it is then in flight); false when a copy of it
    /// was found on the old cluster after the checkpoint (it is then acknowledged).
    /// </summary>
    public bool Read(ConsumeResult<byte[]?, byte[]?> record, int bytes, Action<DivergentCopy> diverged)
    {
        var offset = record.Offset.Value;
        _consumedNext = Math.Max(_consumedNext, offset + 1);
        NewEnd = Math.Max(NewEnd, offset + 1);
        if (_unconfirmed.Count > 0)
        {
            // Copies are made in order, so those after the checkpoint are copies of the records read next, in order;
            // anything on the old cluster that is not the next such copy is a stray write (see RollbackMirror).
            while (_unconfirmed.TryDequeue(out var old))
            {
                if (old.IsCopyOf(record.Message))
                {
                    Acknowledge(offset, old.Offset, record.Message.Timestamp.UnixTimestampMs, bytes, diverged);
                    return false;
                }
            }
            Strays.EndObserved(_unconfirmedEnd, Copied, PossiblyLanded);
        }
        _inFlight.Enqueue(new InFlightCopy(offset, record.Message.Timestamp.UnixTimestampMs, bytes));
        return true;
    }

    /// <summary>A read reached the new cluster's end (the last stable offset under read_committed) at <paramref name="offset"/>.</summary>
    public void EndReached(long offset)
    {
        _consumedNext = Math.Max(_consumedNext, offset);
        NewEnd = Math.Max(NewEnd, offset);
        if (_unconfirmed.Count > 0)
        {
            // Every record of the new cluster has been read and none matched these: none is a copy.
            _unconfirmed.Clear();
            Strays.EndObserved(_unconfirmedEnd, Copied, PossiblyLanded);
        }
    }

    public void NewEndSeen(long end) => NewEnd = Math.Max(NewEnd, end);

    /// <summary>The producer acknowledged the oldest copy in flight at <paramref name="oldOffset"/>.</summary>
    public void Delivered(long oldOffset, Action<DivergentCopy> diverged)
    {
        var copy = _inFlight.Dequeue();
        Acknowledge(copy.NewOffset, oldOffset, copy.TimestampMs, copy.Bytes, diverged);
    }

    /// <summary>The old cluster's end was read as <paramref name="end"/>; true when the stray count rose.</summary>
    public bool OldEndSeen(long end)
    {
        OldObserved = Math.Max(OldObserved, end);
        return _accounted && Strays.EndObserved(end, Copied, PossiblyLanded);
    }

    public PartitionProgress Progress() => new(TopicPartition.Topic, TopicPartition.Partition, Start, Position, Strays.OldBase, OldEnd, Copied, Divergent);

    public PartitionMirrorFigures Figures(long nowMs)
    {
        var position = Position;
        return new PartitionMirrorFigures(TopicPartition.Topic, TopicPartition.Partition, Start, position, NewEnd, Math.Max(OldObserved, OldEnd),
            Copied, Math.Max(0, NewEnd - position), LagMs(nowMs), Strays.Count, Divergent, Error);
    }

    private void Acknowledge(long newOffset, long oldOffset, long timestampMs, int bytes, Action<DivergentCopy> diverged)
    {
        Copied++;
        CopiedBytes += bytes;
        if (newOffset != oldOffset && Divergent++ == 0)
        {
            diverged(new DivergentCopy(TopicPartition.Topic, TopicPartition.Partition, newOffset, oldOffset));
        }
        Next = newOffset + 1;
        OldEnd = oldOffset + 1;
        OldObserved = Math.Max(OldObserved, OldEnd);
        LastCopiedTimestampMs = timestampMs;
        Strays.CopyLanded(oldOffset, Copied);
    }

    private readonly record struct InFlightCopy(long NewOffset, long TimestampMs, int Bytes);
}

/// <summary>A record read back from the old cluster after a checkpoint: a copy the checkpoint missed, or a stray write.</summary>
internal sealed record OldRecord(long Offset, byte[]? Key, byte[]? Value, Headers? Headers, Timestamp Timestamp)
{
    /// <summary>Whether this is a copy of <paramref name="original"/>: same key, value, headers and timestamp.</summary>
    public bool IsCopyOf(Message<byte[]?, byte[]?> original) =>
        SameBytes(Key, original.Key) && SameBytes(Value, original.Value) && SameHeaders(Headers, original.Headers)
        // A topic that stamps records on append (LogAppendTime) replaces the copied timestamp: not comparable then.
        && (Timestamp.Type == TimestampType.LogAppendTime || Timestamp.UnixTimestampMs == original.Timestamp.UnixTimestampMs);

    private static bool SameBytes(byte[]? a, byte[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);

    private static bool SameHeaders(Headers? a, Headers? b)
    {
        var count = a?.Count ?? 0;
        if (count != (b?.Count ?? 0))
        {
            return false;
        }
        for (var i = 0; i < count; i++)
        {
            if (a![i].Key != b![i].Key || !SameBytes(a[i].GetValueBytes(), b[i].GetValueBytes()))
            {
                return false;
            }
        }
        return true;
    }
}
