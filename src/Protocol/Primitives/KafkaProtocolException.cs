using System.Diagnostics.CodeAnalysis;

namespace Switchback.Protocol;

/// <summary>The only exception the codec throws for bad input: a frame that does not follow the Kafka wire format.</summary>
public sealed class KafkaProtocolException(string message) : Exception(message)
{
    [DoesNotReturn]
    internal static void Throw(string message) => throw new KafkaProtocolException(message);

    [DoesNotReturn]
    internal static void ThrowTruncated(int wanted, int remaining) =>
        throw new KafkaProtocolException($"Frame truncated: needed {wanted} byte(s), {remaining} left.");

    [DoesNotReturn]
    internal static void ThrowBadLength(string what, long length, int remaining) =>
        throw new KafkaProtocolException($"Invalid {what} length {length} ({remaining} byte(s) left in frame).");
}
