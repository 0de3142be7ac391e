namespace Switchback.Protocol.Messages;

/// <summary>Encoding helpers over <see cref="IKafkaMessage"/>.</summary>
public static class KafkaMessageExtensions
{
    /// <summary>Encodes the message body (no header, no size prefix) at <paramref name="version"/>.</summary>
    public static byte[] ToArray(this IKafkaMessage message, short version)
    {
        var buffer = new byte[message.Size(version)];
        var writer = new KafkaWriter(buffer);
        message.Write(ref writer, version);
        EnsureFilled(writer.Position, buffer.Length);
        return buffer;
    }

    /// <summary>Reads a message body of <paramref name="version"/> from a frame slice; the bytes/records fields stay slices of it.</summary>
    public static T ReadFrom<T>(this T message, ReadOnlyMemory<byte> body, short version)
        where T : IKafkaMessage
    {
        var reader = new KafkaReader(body);
        message.Read(ref reader, version);
        return message;
    }

    internal static void EnsureFilled(int written, int expected)
    {
        if (written != expected)
        {
            throw new InvalidOperationException($"Message wrote {written} byte(s) but sized itself at {expected}.");
        }
    }
}

/// <summary>Builds complete frames: int32 size prefix, header, body.</summary>
public static class KafkaFrameEncoder
{
    /// <summary>Encodes a request frame; the header version follows from the api key and version in <paramref name="header"/>.</summary>
    public static byte[] EncodeRequest(in RequestHeader header, IKafkaMessage body)
    {
        var headerVersion = KafkaApis.RequestHeaderVersion(header.ApiKey, header.ApiVersion);
        var headerSize = header.Size(headerVersion);
        var bodySize = body.Size(header.ApiVersion);
        var buffer = new byte[4 + headerSize + bodySize];
        var writer = new KafkaWriter(buffer);
        writer.WriteInt32(headerSize + bodySize);
        header.Write(ref writer, headerVersion);
        body.Write(ref writer, header.ApiVersion);
        KafkaMessageExtensions.EnsureFilled(writer.Position, buffer.Length);
        return buffer;
    }

    /// <summary>Encodes a response frame for a request of <paramref name="apiVersion"/>.</summary>
    public static byte[] EncodeResponse(in ResponseHeader header, IKafkaMessage body, short apiVersion)
    {
        var headerVersion = KafkaApis.ResponseHeaderVersion(body.ApiKey, apiVersion);
        var headerSize = header.Size(headerVersion);
        var bodySize = body.Size(apiVersion);
        var buffer = new byte[4 + headerSize + bodySize];
        var writer = new KafkaWriter(buffer);
        writer.WriteInt32(headerSize + bodySize);
        header.Write(ref writer, headerVersion);
        body.Write(ref writer, apiVersion);
        KafkaMessageExtensions.EnsureFilled(writer.Position, buffer.Length);
        return buffer;
    }
}
