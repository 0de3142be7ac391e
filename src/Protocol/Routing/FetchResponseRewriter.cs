using System.Buffers.Binary;


namespace Switchback.Protocol.Routing;

/// <summary>
/// The common Fetch answer, rewritten where it lies: a flexible (v12+) response from one upstream broker with no
/// tagged fields (no leader hints, no diverging epochs, no node endpoints) differs from what the client must see
/// only in fixed-width fields: topic ids (upstream id to proxy id, 16 bytes each), the preferred read replica and
/// the session id. Patching those in the response buffer relays the records without a copy or an allocation.
/// Anything else returns false and the caller decodes and re-encodes instead.
/// </summary>
public static class FetchResponseRewriter
{
    public const short FirstVersion = 12;

    /// <param name="frame">The whole response frame (response header v1, then the body).</param>
    /// <param name="mapTopicId">Upstream topic id to client-visible id; null when unknown (fall back).</param>
    /// <param name="mapNode">Upstream node id to client-visible node id.</param>
    public static bool TryRewriteInPlace(Span<byte> frame, short version, Func<Guid, Guid?> mapTopicId, Func<int, int> mapNode) =>
        TryRewriteInPlace(frame, version, new DelegateMap(mapTopicId, mapNode));

    /// <summary>As the delegate overload, with the identities mapped by a struct: no closure per answer.</summary>
    public static bool TryRewriteInPlace<TMap>(Span<byte> frame, short version, TMap map) where TMap : IFetchAnswerIdentities
    {
        if (version < FirstVersion)
        {
            return false;
        }
        try
        {
            return TryRewrite(frame, version, ref map);
        }
        catch (KafkaProtocolException)
        {
            return false; // the full decode reports it properly
        }
    }

    private static bool TryRewrite<TMap>(Span<byte> frame, short version, ref TMap map) where TMap : IFetchAnswerIdentities
    {
        var reader = new KafkaReader((ReadOnlySpan<byte>)frame);
        reader.ReadInt32(); // correlation id
        if (reader.ReadTaggedFieldCount() != 0)
        {
            return false;
        }
        reader.ReadInt32(); // throttle time
        if (reader.ReadInt16() != 0)
        {
            return false;
        }
        var sessionIdAt = reader.Position;
        reader.ReadInt32();
        BinaryPrimitives.WriteInt32BigEndian(frame[sessionIdAt..], 0); // sessionless towards the client too

        var topics = reader.ReadArrayLength(flexible: true);
        for (var t = 0; t < topics; t++)
        {
            if (version >= 13)
            {
                var idAt = reader.Position;
                var upstreamId = reader.ReadUuid();
                if (!map.TryMapTopicId(upstreamId, out var clientId))
                {
                    return false;
                }
                clientId.TryWriteBytes(frame.Slice(idAt, 16), bigEndian: true, out _);
            }
            else
            {
                reader.ReadStringSpan(flexible: true, out _);
            }
            var partitions = reader.ReadArrayLength(flexible: true);
            for (var p = 0; p < partitions; p++)
            {
                reader.Skip(4); // partition index
                if (reader.ReadInt16() != 0)
                {
                    return false; // errors may mean leadership moved: the full path refreshes the cluster view
                }
                reader.Skip(8 + 8 + 8); // high watermark, last stable offset, log start offset
                var aborted = reader.ReadArrayLength(flexible: true);
                for (var a = 0; a < aborted; a++)
                {
                    reader.Skip(16);
                    if (reader.ReadTaggedFieldCount() != 0)
                    {
                        return false;
                    }
                }
                var replicaAt = reader.Position;
                var preferred = reader.ReadInt32();
                if (preferred >= 0)
                {
                    BinaryPrimitives.WriteInt32BigEndian(frame[replicaAt..], map.MapNode(preferred));
                }
                reader.ReadBytesSpan(flexible: true, out _); // records: relayed as they are
                if (reader.ReadTaggedFieldCount() != 0)
                {
                    return false; // diverging epoch, current leader or snapshot id: needs the full rewrite
                }
            }
            if (reader.ReadTaggedFieldCount() != 0)
            {
                return false;
            }
        }
        return reader.ReadTaggedFieldCount() == 0 && reader.End; // node endpoints need the full rewrite
    }

    private readonly struct DelegateMap(Func<Guid, Guid?> mapTopicId, Func<int, int> mapNode) : IFetchAnswerIdentities
    {
        public bool TryMapTopicId(Guid upstreamId, out Guid clientId)
        {
            var mapped = mapTopicId(upstreamId);
            clientId = mapped.GetValueOrDefault();
            return mapped.HasValue;
        }

        public int MapNode(int upstreamNodeId) => mapNode(upstreamNodeId);
    }
}

/// <summary>The upstream identities a Fetch answer names, mapped to those its client sees.</summary>
public interface IFetchAnswerIdentities
{
    /// <summary>The client-visible id of an upstream topic id; false when unknown (the caller falls back).</summary>
    bool TryMapTopicId(Guid upstreamId, out Guid clientId);

    /// <summary>The client-visible id of an upstream node.</summary>
    int MapNode(int upstreamNodeId);
}
