using System.Buffers.Binary;

namespace Switchback.Protocol.Routing;

/// <summary>
/// The client's Fetch request made into the one the proxy sends upstream, where it lies: sessionless (session id 0,
/// session epoch -1, v7+), leader epochs unset (current leader epoch v9+ and last fetched epoch v12+ become -1:
/// epochs are per cluster and the proxy hides them), topic ids mapped to the upstream cluster's (v13+). Every
/// changed field has a fixed width, so the request is relayed without being re-encoded.
/// </summary>
public static class FetchRequestRewriter
{
    /// <summary>
    /// Rewrites <paramref name="body"/> (the request body after the header) in place. Returns false, with nothing
    /// changed, for an incremental fetch (forgotten topics), a topic id <paramref name="topicIds"/> cannot map, a
    /// version it does not know or a malformed body.
    /// </summary>
    public static bool TryRewriteInPlace<TMap>(Span<byte> body, short version, TMap topicIds) where TMap : IFetchRequestTopicIds
    {
        if ((ushort)version > FetchRequestRouting.MaxVersion)
        {
            return false;
        }
        try
        {
            // The first walk only checks, so a request that cannot be rewritten whole is left as it came.
            if (!Walk(body, version, ref topicIds, write: false))
            {
                return false;
            }
            Walk(body, version, ref topicIds, write: true);
            return true;
        }
        catch (KafkaProtocolException)
        {
            return false; // the full decode reports it properly
        }
    }

    private static bool Walk<TMap>(Span<byte> body, short version, ref TMap topicIds, bool write) where TMap : IFetchRequestTopicIds
    {
        var flexible = version >= FetchRequestRouting.FirstFlexibleVersion;
        var reader = new KafkaReader((ReadOnlySpan<byte>)body);
        reader.Skip((version <= 14 ? 4 : 0) + 4 + 4 + (version >= 3 ? 4 : 0) + (version >= 4 ? 1 : 0)); // replica id, waits, sizes, isolation
        if (version >= 7)
        {
            if (write)
            {
                BinaryPrimitives.WriteInt32BigEndian(body[reader.Position..], 0);
                BinaryPrimitives.WriteInt32BigEndian(body[(reader.Position + 4)..], -1);
            }
            reader.Skip(8);
        }
        var topics = reader.ReadArrayLength(flexible);
        for (var t = 0; t < topics; t++)
        {
            if (version >= FetchRequestRouting.FirstTopicIdVersion)
            {
                var idAt = reader.Position;
                if (!topicIds.TryMapTopicId(reader.ReadUuid(), out var upstreamId))
                {
                    return false;
                }
                if (write)
                {
                    upstreamId.TryWriteBytes(body.Slice(idAt, 16), bigEndian: true, out _);
                }
            }
            else
            {
                reader.ReadStringSpan(flexible, out _);
            }
            var partitions = reader.ReadArrayLength(flexible);
            for (var p = 0; p < partitions; p++)
            {
                reader.Skip(4); // partition index
                if (version >= 9)
                {
                    if (write)
                    {
                        BinaryPrimitives.WriteInt32BigEndian(body[reader.Position..], -1);
                    }
                    reader.Skip(4); // current leader epoch
                }
                reader.Skip(8); // fetch offset
                if (version >= 12)
                {
                    if (write)
                    {
                        BinaryPrimitives.WriteInt32BigEndian(body[reader.Position..], -1);
                    }
                    reader.Skip(4); // last fetched epoch
                }
                reader.Skip((version >= 5 ? 8 : 0) + 4); // log start offset, partition max bytes
                if (flexible)
                {
                    TaggedFieldSkipper.Skip(ref reader);
                }
            }
            if (flexible)
            {
                TaggedFieldSkipper.Skip(ref reader);
            }
        }
        // Forgotten topics belong to a fetch session, which the proxy never grants: such a request takes the full path.
        return version < 7 || reader.ReadArrayLength(flexible) <= 0;
    }
}

/// <summary>Maps the client's topic ids in a Fetch request to the upstream cluster's.</summary>
public interface IFetchRequestTopicIds
{
    /// <summary>The upstream id of a client-visible topic id; false when unknown.</summary>
    bool TryMapTopicId(Guid clientId, out Guid upstreamId);
}
