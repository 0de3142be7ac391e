namespace Switchback.Protocol;

/// <summary>
/// Kafka request header. v0: api key, version, correlation id; v1 adds the client id; v2 (flexible requests) adds
/// tagged fields. The client id stays a non-compact nullable string even in v2.
/// </summary>
public struct RequestHeader
{
    public ApiKey ApiKey;
    public short ApiVersion;
    public int CorrelationId;
    public string? ClientId;
    public List<RawTaggedField>? UnknownTaggedFields;

    /// <summary>Parses only api key, version and correlation id: enough to route a frame without allocating.</summary>
    public static bool TryPeek(ReadOnlySpan<byte> frame, out ApiKey apiKey, out short apiVersion, out int correlationId)
    {
        if (frame.Length < 8)
        {
            apiKey = default;
            apiVersion = default;
            correlationId = default;
            return false;
        }
        apiKey = (ApiKey)System.Buffers.Binary.BinaryPrimitives.ReadInt16BigEndian(frame);
        apiVersion = System.Buffers.Binary.BinaryPrimitives.ReadInt16BigEndian(frame[2..]);
        correlationId = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(frame[4..]);
        return true;
    }

    public void Read(ref KafkaReader reader, short headerVersion)
    {
        ApiKey = (ApiKey)reader.ReadInt16();
        ApiVersion = reader.ReadInt16();
        CorrelationId = reader.ReadInt32();
        ClientId = headerVersion >= 1 ? reader.ReadNullableString(flexible: false) : null;
        if (headerVersion >= 2)
        {
            UnknownTaggedFields = TaggedFields.ReadUnknown(ref reader);
        }
    }

    public readonly int Size(short headerVersion) =>
        8 + (headerVersion >= 1 ? KafkaSize.NullableString(ClientId, flexible: false) : 0)
          + (headerVersion >= 2 ? TaggedFields.Size(UnknownTaggedFields) : 0);

    public readonly void Write(ref KafkaWriter writer, short headerVersion)
    {
        writer.WriteInt16((short)ApiKey);
        writer.WriteInt16(ApiVersion);
        writer.WriteInt32(CorrelationId);
        if (headerVersion >= 1)
        {
            writer.WriteNullableString(ClientId, flexible: false);
        }
        if (headerVersion >= 2)
        {
            TaggedFields.Write(ref writer, UnknownTaggedFields);
        }
    }
}

/// <summary>Kafka response header. v0: correlation id; v1 (flexible responses) adds tagged fields.</summary>
public struct ResponseHeader
{
    public int CorrelationId;
    public List<RawTaggedField>? UnknownTaggedFields;

    public void Read(ref KafkaReader reader, short headerVersion)
    {
        CorrelationId = reader.ReadInt32();
        if (headerVersion >= 1)
        {
            UnknownTaggedFields = TaggedFields.ReadUnknown(ref reader);
        }
    }

    public readonly int Size(short headerVersion) => 4 + (headerVersion >= 1 ? TaggedFields.Size(UnknownTaggedFields) : 0);

    public readonly void Write(ref KafkaWriter writer, short headerVersion)
    {
        writer.WriteInt32(CorrelationId);
        if (headerVersion >= 1)
        {
            TaggedFields.Write(ref writer, UnknownTaggedFields);
        }
    }
}

/// <summary>Reading and writing tagged-field sections whose tags are all unknown to the reader.</summary>
public static class TaggedFields
{
    public static List<RawTaggedField>? ReadUnknown(ref KafkaReader reader)
    {
        var count = reader.ReadTaggedFieldCount();
        List<RawTaggedField>? fields = null;
        for (var i = 0; i < count; i++)
        {
            var tag = reader.ReadUnsignedVarInt();
            var body = reader.ReadTaggedFieldBody(out var size);
            (fields ??= []).Add(new RawTaggedField(tag, body.ReadRawBytes(size)));
        }
        return fields;
    }

    public static int Size(List<RawTaggedField>? fields)
    {
        if (fields is null)
        {
            return 1;
        }
        var size = KafkaSize.UnsignedVarInt((uint)fields.Count);
        foreach (var field in fields)
        {
            size += KafkaSize.UnsignedVarInt(field.Tag) + KafkaSize.UnsignedVarInt((uint)field.Data.Length) + field.Data.Length;
        }
        return size;
    }

    public static void Write(ref KafkaWriter writer, List<RawTaggedField>? fields)
    {
        if (fields is null)
        {
            writer.WriteUnsignedVarInt(0);
            return;
        }
        writer.WriteUnsignedVarInt((uint)fields.Count);
        foreach (var field in fields)
        {
            writer.WriteUnsignedVarInt(field.Tag);
            writer.WriteUnsignedVarInt((uint)field.Data.Length);
            writer.WriteRaw(field.Data);
        }
    }
}
