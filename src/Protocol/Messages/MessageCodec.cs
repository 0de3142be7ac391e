using System.Diagnostics.CodeAnalysis;

namespace Switchback.Protocol.Messages;

/// <summary>Throw helpers and tagged-field plumbing shared by the generated message code.</summary>
internal static class MessageCodec
{
    [DoesNotReturn]
    public static void ThrowUnsupportedRead(string message, short version) =>
        throw new KafkaProtocolException($"{message} does not support version {version}.");

    [DoesNotReturn]
    public static void ThrowUnsupportedWrite(string message, short version) =>
        throw new ArgumentOutOfRangeException(nameof(version), version, $"{message} does not support version {version}.");

    [DoesNotReturn]
    public static void ThrowNullInNonNullable(string field) =>
        throw new KafkaProtocolException($"Null value for non-nullable field {field}.");

    [DoesNotReturn]
    public static void ThrowNullNotAllowed(string field, short version) =>
        throw new InvalidOperationException($"Field {field} is null but is not nullable in version {version}.");

    public static T Require<T>(T? value, string field)
        where T : class
    {
        if (value is null)
        {
            throw new InvalidOperationException($"Field {field} is null but is not nullable in this version.");
        }
        return value;
    }

    public static ReadOnlyMemory<byte> RequireValue(ReadOnlyMemory<byte>? value, string field) =>
        value ?? throw new InvalidOperationException($"Field {field} is null but is not nullable in this version.");

    /// <summary>Adds the encoded size of the unknown tagged fields and counts them into <paramref name="count"/>.</summary>
    public static int UnknownTaggedFieldsSize(List<RawTaggedField>? fields, ref int count)
    {
        if (fields is null)
        {
            return 0;
        }
        var size = 0;
        foreach (var field in fields)
        {
            size += KafkaSize.UnsignedVarInt(field.Tag) + KafkaSize.UnsignedVarInt((uint)field.Data.Length) + field.Data.Length;
        }
        count += fields.Count;
        return size;
    }

    /// <summary>
    /// Writes unknown tagged fields, from <paramref name="index"/> on, whose tag is below <paramref name="tag"/>, so
    /// known and unknown fields come out merged in ascending tag order as Kafka writes them.
    /// </summary>
    public static void WriteUnknownTaggedFieldsBefore(ref KafkaWriter writer, List<RawTaggedField>? fields, ref int index, uint tag)
    {
        if (fields is null)
        {
            return;
        }
        while (index < fields.Count && (fields[index].Tag < tag || tag == uint.MaxValue))
        {
            var field = fields[index++];
            writer.WriteUnsignedVarInt(field.Tag);
            writer.WriteUnsignedVarInt((uint)field.Data.Length);
            writer.WriteRaw(field.Data);
        }
    }
}
