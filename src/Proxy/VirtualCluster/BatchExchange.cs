using System.Buffers.Binary;
using Switchback.Protocol;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>One part of a split <see cref="EntryBatch"/>: the upstream broker it goes to and the client's entries it carries.</summary>
public sealed class BatchPart(UpstreamCluster cluster, int? node)
{
    public UpstreamCluster Cluster { get; } = cluster;

    /// <summary>The broker, or null for any broker of the cluster (one already connected first).</summary>
    public int? Node { get; } = node;

    /// <summary>Indices of the client's entries this part carries, in the client's order.</summary>
    public List<int> Indices { get; } = [];

    /// <summary>The cluster snapshot the part was sent with, once sent.</summary>
    public ClusterView? View { get; private set; }

    /// <summary>The broker's answer to come, or null when the part was never sent or its broker was lost.</summary>
    public PendingResponse? Pending { get; private set; }

    /// <summary>The part of <paramref name="parts"/> bound for a broker, added when there is none yet.</summary>
    public static BatchPart For(List<BatchPart> parts, UpstreamCluster cluster, int? node)
    {
        foreach (var part in parts)
        {
            if (part.Cluster == cluster && part.Node == node)
            {
                return part;
            }
        }
        var added = new BatchPart(cluster, node);
        parts.Add(added);
        return added;
    }

    /// <summary>The broker's answer, when it came before the part was handed to <see cref="BatchExchange.CompleteAsync"/>.</summary>
    public PooledFrame? Answer { get; private set; }

    /// <summary>A part that carried every entry of a request and was answered already: the answer is merged, not relayed.</summary>
    public static BatchPart Answered(UpstreamCluster cluster, int node, ClusterView view, int count, PooledFrame answer)
    {
        var part = new BatchPart(cluster, node) { View = view, Answer = answer };
        for (var i = 0; i < count; i++)
        {
            part.Indices.Add(i);
        }
        return part;
    }

    internal void Sent(ClusterView view, PendingResponse? pending)
    {
        View = view;
        Pending = pending;
    }

    internal void Lost() => Pending = null;
}

/// <summary>
/// Sends the parts of a split <see cref="EntryBatch"/> and merges their answers: the client's bytes as they are when
/// one part carries every entry (relay), otherwise each part narrowed to its entries. Every part's deadline starts
/// when all are sent, so one slow broker does not shorten the others' time; a part that cannot be sent or answered
/// is handed to the caller's <c>lost</c>, which sets its entries' errors.
/// </summary>
public static class BatchExchange
{
    public static async ValueTask SendAsync(RequestContext context, EntryBatch batch, List<BatchPart> parts, bool relay, Action<BatchPart> lost)
    {
        var closed = context.Session.Closed;
        foreach (var part in parts)
        {
            try
            {
                var view = await part.Cluster.GetViewAsync(closed).ConfigureAwait(false);
                var connection = part.Node is { } node
                    ? await context.Session.Upstreams.GetAsync(view, node, closed).ConfigureAwait(false)
                    : await context.Session.Upstreams.GetAnyAsync(view, closed).ConfigureAwait(false);
                PendingResponse? pending;
                if (relay)
                {
                    pending = await connection.SendAsync(context.Frame.Memory, batch.ExpectsResponse, closed).ConfigureAwait(false);
                }
                else
                {
                    using var frame = FrameCodec.EncodeRequest(context.ApiKey, context.Version, context.CorrelationId, context.Header.ClientId,
                        batch.Narrow(part.Indices));
                    pending = await connection.SendAsync(frame.Memory, batch.ExpectsResponse, closed).ConfigureAwait(false);
                }
                part.Sent(view, pending);
                if (pending is not null)
                {
                    context.UpstreamSettled.Add(pending.Settled);
                }
            }
            catch (UpstreamUnavailableException)
            {
                part.Lost();
                lost(part);
            }
        }
    }

    /// <summary>
    /// The client's answer: the one broker's own frame when relayed and the batch lets it go as it is, otherwise the
    /// merged answers.
    /// </summary>
    /// <param name="answered">Called with the part, index and broker's error of each answered entry.</param>
    public static async Task<PooledFrame> CompleteAsync(RequestContext context, EntryBatch batch, List<BatchPart> parts, ErrorCode[] failures,
        bool relay, TimeSpan timeout, Action<BatchPart> lost, Action<BatchPart, int, ErrorCode> answered)
    {
        var closed = context.Session.Closed;
        var waits = new ValueTask<PooledFrame>?[parts.Count];
        for (var i = 0; i < parts.Count; i++)
        {
            waits[i] = parts[i].Answer is { } known ? new ValueTask<PooledFrame>(known) : parts[i].Pending?.WaitAsync(timeout, closed);
        }
        var frames = new List<PooledFrame>(parts.Count);
        try
        {
            var answers = new List<(IReadOnlyList<int>, IKafkaMessage?)>(parts.Count);
            for (var i = 0; i < parts.Count; i++)
            {
                IKafkaMessage? response = null;
                if (waits[i] is { } wait)
                {
                    try
                    {
                        var frame = await wait.ConfigureAwait(false);
                        if (relay)
                        {
                            BinaryPrimitives.WriteInt32BigEndian(frame.Span, context.CorrelationId);
                            if (batch.Relayed(context, frame) is { } relayed)
                            {
                                return relayed;
                            }
                        }
                        frames.Add(frame); // decoded answers may slice it: kept until the merged answer is encoded
                        response = batch.Decode(frame, context.ApiKey, context.Version);
                        await batch.TranslateAsync(parts[i], response).ConfigureAwait(false);
                    }
                    catch (UpstreamUnavailableException)
                    {
                        parts[i].Lost();
                        lost(parts[i]);
                    }
                    catch (KafkaProtocolException)
                    {
                        // An answer that cannot be read: its entries get an error, the others their answers.
                        response = null;
                    }
                }
                answers.Add((parts[i].Indices, response));
            }
            var partOf = new BatchPart?[batch.Count];
            foreach (var part in parts)
            {
                foreach (var index in part.Indices)
                {
                    partOf[index] = part;
                }
            }
            var merged = batch.Merge(answers, failures, (index, error) =>
            {
                if (partOf[index] is { } part)
                {
                    answered(part, index, error);
                }
            });
            return context.Respond(merged);
        }
        finally
        {
            foreach (var frame in frames)
            {
                frame.Dispose();
            }
        }
    }
}
