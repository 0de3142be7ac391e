using Switchback.Protocol;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// A request that names several entries (groups, topics, partitions, config resources) which may be answered by
/// different upstream brokers. Knows how to narrow the request to some of its entries and how to merge the parts'
/// answers back into one response in the client's entry order; <see cref="BatchExchange"/> sends the parts.
/// </summary>
public abstract class EntryBatch
{
    /// <summary>How many entries the client named, duplicates kept.</summary>
    public abstract int Count { get; }

    /// <summary>The same request naming only the entries at <paramref name="indices"/>.</summary>
    public abstract IKafkaMessage Narrow(IReadOnlyList<int> indices);

    /// <summary>
    /// One response holding, for each entry the client named and in its order, the answer of the part it went to, or
    /// <paramref name="failures"/>' error for it when that part has no answer (never an entry left out).
    /// </summary>
    /// <param name="answers">Each part's entry indices and decoded response (null when the part failed).</param>
    /// <param name="failures">The error per entry index for entries without an answer.</param>
    /// <param name="answered">Called with each answered entry's index and the error its broker gave it.</param>
    public abstract IKafkaMessage Merge(IReadOnlyList<(IReadOnlyList<int> Indices, IKafkaMessage? Response)> answers,
        IReadOnlyList<ErrorCode> failures, Action<int, ErrorCode> answered);

    /// <summary>Decodes one part's response frame.</summary>
    public abstract IKafkaMessage Decode(PooledFrame frame, ApiKey apiKey, short version);

    /// <summary>True when the client's bytes cannot go upstream as they are (an entry named by an id the proxy gave out, an epoch hidden).</summary>
    public bool Rewritten { get; protected set; }

    /// <summary>False when the broker answers nothing (a produce with acks=0).</summary>
    public virtual bool ExpectsResponse => true;

    /// <summary>
    /// The client's answer when its own bytes went to one broker: that broker's frame, as it is unless it holds
    /// something the proxy shows differently (the frame is consumed), or null when it must be merged like any answer
    /// (the frame is then left as it was).
    /// </summary>
    public virtual PooledFrame? Relayed(RequestContext context, PooledFrame frame) => frame;

    /// <summary>Shows what one part's decoded answer names in its cluster's terms (node ids, topic ids, epochs) as the client knows it.</summary>
    public virtual ValueTask TranslateAsync(BatchPart part, IKafkaMessage response) => default;

    /// <summary>How the entries of one API's response are told apart and matched to the entries the client named.</summary>
    protected interface IAnswerMatching<TResponse, TEntry, TKey> where TKey : notnull
    {
        /// <summary>The key of the client's entry at an index, as it was sent upstream.</summary>
        TKey KeyAt(int index);
        TKey KeyOf(TEntry entry);
        IEnumerable<TEntry> EntriesOf(TResponse response);
        short ErrorOf(TEntry entry);
        int ThrottleOf(TResponse response);

        /// <summary>The entry a broker would give for the client's entry at an index that it could not serve.</summary>
        TEntry Failed(int index, ErrorCode error);

        /// <summary>True when a broker answers a name the client repeated once (a map), false when once per mention.</summary>
        bool RepeatsAnsweredOnce { get; }
    }

    /// <summary>
    /// Each entry's answer in the client's order, paired with its index: the answer of the part it went to, matched
    /// by key (brokers need not answer in request order; repeats are matched in order), or a failed entry. A repeat
    /// the broker answered once is left out, as that broker would.
    /// </summary>
    protected static (List<(int Index, TEntry Entry)> Entries, int ThrottleTimeMs) MergeEntries<TResponse, TEntry, TKey>(
        IAnswerMatching<TResponse, TEntry, TKey> matching, int count,
        IReadOnlyList<(IReadOnlyList<int> Indices, IKafkaMessage? Response)> answers, IReadOnlyList<ErrorCode> failures,
        Action<int, ErrorCode> answered) where TKey : notnull
    {
        var merged = new TEntry[count];
        var filled = new bool[count];
        var throttle = 0;
        foreach (var (indices, message) in answers)
        {
            if (message is not TResponse response)
            {
                continue;
            }
            throttle = Math.Max(throttle, matching.ThrottleOf(response));
            var byKey = new Dictionary<TKey, Queue<TEntry>>();
            foreach (var entry in matching.EntriesOf(response))
            {
                var key = matching.KeyOf(entry);
                if (!byKey.TryGetValue(key, out var queue))
                {
                    byKey[key] = queue = new Queue<TEntry>(1);
                }
                queue.Enqueue(entry);
            }
            foreach (var index in indices)
            {
                if (byKey.TryGetValue(matching.KeyAt(index), out var queue) && queue.TryDequeue(out var entry))
                {
                    merged[index] = entry;
                    filled[index] = true;
                    answered(index, (ErrorCode)matching.ErrorOf(entry));
                }
            }
        }
        var entries = new List<(int, TEntry)>(count);
        HashSet<TKey>? seen = matching.RepeatsAnsweredOnce ? [] : null;
        for (var i = 0; i < count; i++)
        {
            var first = seen?.Add(matching.KeyAt(i)) ?? true;
            if (filled[i])
            {
                entries.Add((i, merged[i]));
            }
            else if (first)
            {
                // An entry its broker left out of the answer gets an error rather than vanishing.
                entries.Add((i, matching.Failed(i, failures[i] == ErrorCode.None ? ErrorCode.UnknownServerError : failures[i])));
            }
        }
        return (entries, throttle);
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
