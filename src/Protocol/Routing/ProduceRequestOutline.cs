namespace Switchback.Protocol.Routing;

/// <summary>
/// A Produce request body with every records field null: the same version, transactional id, acks, topics and
/// partitions in the same order, tagged fields kept. Small enough to keep while the records travel upstream, so
/// the request can still be answered per partition (with errors, say) once its own buffer has been reused.
/// </summary>
public static class ProduceRequestOutline
{
    /// <summary>The outline's length in bytes; checks the whole body as <see cref="ProduceRequestRouting.ReadToEnd"/> does.</summary>
    public static int Measure(ReadOnlySpan<byte> body, short apiVersion)
    {
        var nullRecordsLength = NullRecords(apiVersion).Length;
        var routing = new ProduceRequestRouting(body, apiVersion);
        var length = body.Length;
        while (routing.TryReadTopic(out _))
        {
            while (routing.TryReadPartition(out var partition))
            {
                length -= partition.RecordsOffset + partition.RecordsLength - partition.FieldOffset - nullRecordsLength;
            }
        }
        routing.ReadToEnd();
        return length;
    }

    /// <summary>Writes the outline into <paramref name="destination"/> (at least <see cref="Measure"/> bytes); returns its length.</summary>
    public static int Write(ReadOnlySpan<byte> body, short apiVersion, Span<byte> destination)
    {
        var nullRecords = NullRecords(apiVersion);
        var routing = new ProduceRequestRouting(body, apiVersion);
        var copied = 0; // body bytes before this offset are already in the outline
        var written = 0;
        while (routing.TryReadTopic(out _))
        {
            while (routing.TryReadPartition(out var partition))
            {
                var kept = body[copied..partition.FieldOffset];
                kept.CopyTo(destination[written..]);
                written += kept.Length;
                nullRecords.CopyTo(destination[written..]);
                written += nullRecords.Length;
                copied = partition.RecordsOffset + partition.RecordsLength;
            }
        }
        routing.ReadToEnd();
        body[copied..].CopyTo(destination[written..]);
        return written + body.Length - copied;
    }

    /// <summary>A null records field: INT32 -1, or COMPACT length 0 in flexible versions.</summary>
    private static ReadOnlySpan<byte> NullRecords(short apiVersion) =>
        apiVersion >= ProduceRequestRouting.FirstFlexibleVersion ? [0] : [0xFF, 0xFF, 0xFF, 0xFF];
}
