namespace Switchback.Protocol.Routing;

internal static class TaggedFieldSkipper
{
    /// <summary>Skips a tagged-field section whose fields the caller does not need.</summary>
    public static void Skip(ref KafkaReader reader)
    {
        // Nearly every section on the hot path is empty: a single zero byte.
        if (!reader.End && reader.RemainingSpan[0] == 0)
        {
            reader.Skip(1);
            return;
        }
        var count = reader.ReadTaggedFieldCount();
        for (var i = 0; i < count; i++)
        {
            reader.ReadUnsignedVarInt();
            reader.ReadTaggedFieldBody(out _);
        }
    }
}
