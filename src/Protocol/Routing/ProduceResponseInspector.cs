
namespace Switchback.Protocol.Routing;

/// <summary>
/// Whether a Produce answer from one upstream broker can be relayed as it is. From v10 an answer may carry leader
/// hints (KIP-951: a partition's current leader and the endpoints of brokers) that name upstream brokers and must
/// be rewritten; they come only with errors, as tagged fields. An answer with no error and no tagged field names no
/// broker, so its bytes go back untouched.
/// </summary>
public static class ProduceResponseInspector
{
    public static bool CanRelayAsIs(ReadOnlySpan<byte> frame, short version)
    {
        if (version < 9)
        {
            return true; // nothing in these versions names a broker
        }
        try
        {
            var reader = new KafkaReader(frame);
            reader.ReadInt32(); // correlation id
            if (reader.ReadTaggedFieldCount() != 0)
            {
                return false;
            }
            var topics = reader.ReadArrayLength(flexible: true);
            for (var t = 0; t < topics; t++)
            {
                reader.ReadStringSpan(flexible: true, out _);
                var partitions = reader.ReadArrayLength(flexible: true);
                for (var p = 0; p < partitions; p++)
                {
                    reader.Skip(4); // index
                    if (reader.ReadInt16() != 0)
                    {
                        return false; // errors may mean leadership moved: the full path refreshes and rewrites hints
                    }
                    reader.Skip(8 + 8 + 8); // base offset, log append time, log start offset
                    var recordErrors = reader.ReadArrayLength(flexible: true);
                    for (var e = 0; e < recordErrors; e++)
                    {
                        reader.Skip(4);
                        reader.ReadStringSpan(flexible: true, out _);
                        if (reader.ReadTaggedFieldCount() != 0)
                        {
                            return false;
                        }
                    }
                    reader.ReadStringSpan(flexible: true, out _); // error message
                    if (reader.ReadTaggedFieldCount() != 0)
                    {
                        return false;
                    }
                }
                if (reader.ReadTaggedFieldCount() != 0)
                {
                    return false;
                }
            }
            reader.ReadInt32(); // throttle time
            return reader.ReadTaggedFieldCount() == 0 && reader.End;
        }
        catch (KafkaProtocolException)
        {
            return false; // the full decode reports it properly
        }
    }

    /// <summary>
    /// The partitions an answer carries and how many of them carry an error, read without decoding (any version up to
    /// 11), and the first error; false when the frame is not a well-formed Produce answer of <paramref name="version"/>.
    /// </summary>
    public static bool TryCountErrors(ReadOnlySpan<byte> frame, short version, out int partitions, out int errors, out short firstError)
    {
        partitions = 0;
        errors = 0;
        firstError = 0;
        var flexible = version >= 9;
        try
        {
            var reader = new KafkaReader(frame);
            reader.ReadInt32(); // correlation id
            if (flexible)
            {
                SkipTaggedFields(ref reader);
            }
            var topics = reader.ReadArrayLength(flexible);
            for (var t = 0; t < topics; t++)
            {
                reader.ReadStringSpan(flexible, out _);
                var count = reader.ReadArrayLength(flexible);
                for (var p = 0; p < count; p++)
                {
                    reader.Skip(4); // index
                    var error = reader.ReadInt16();
                    if (error != 0)
                    {
                        firstError = errors++ == 0 ? error : firstError;
                    }
                    partitions++;
                    reader.Skip(8 + (version >= 2 ? 8 : 0) + (version >= 5 ? 8 : 0)); // base offset, log append time, log start offset
                    if (version >= 8)
                    {
                        var recordErrors = reader.ReadArrayLength(flexible);
                        for (var e = 0; e < recordErrors; e++)
                        {
                            reader.Skip(4);
                            reader.ReadStringSpan(flexible, out _);
                            if (flexible)
                            {
                                SkipTaggedFields(ref reader);
                            }
                        }
                        reader.ReadStringSpan(flexible, out _); // error message
                    }
                    if (flexible)
                    {
                        SkipTaggedFields(ref reader);
                    }
                }
                if (flexible)
                {
                    SkipTaggedFields(ref reader);
                }
            }
            return true;
        }
        catch (KafkaProtocolException)
        {
            return false;
        }
    }

    private static void SkipTaggedFields(ref KafkaReader reader)
    {
        var count = reader.ReadTaggedFieldCount();
        for (var i = 0; i < count; i++)
        {
            reader.ReadUnsignedVarInt(); // tag
            reader.ReadTaggedFieldBody(out _);
        }
    }
}
