using Switchback.Protocol;
using Switchback.Protocol.Messages;

namespace Switchback.Proxy.Upstream;

/// <summary>Encodes typed messages into pooled frames (header + body, no size prefix) and decodes them back.</summary>
public static class FrameCodec
{
    public static PooledFrame EncodeRequest(ApiKey apiKey, short version, int correlationId, string? clientId, IKafkaMessage body)
    {
        var headerVersion = KafkaApis.RequestHeaderVersion(apiKey, version);
        var header = new RequestHeader { ApiKey = apiKey, ApiVersion = version, CorrelationId = correlationId, ClientId = clientId };
        var frame = PooledFrame.Rent(header.Size(headerVersion) + body.Size(version));
        var writer = new KafkaWriter(frame.Span);
        header.Write(ref writer, headerVersion);
        body.Write(ref writer, version);
        return frame;
    }

    public static PooledFrame EncodeResponse(ApiKey apiKey, short version, int correlationId, IKafkaMessage body)
    {
        var headerVersion = KafkaApis.ResponseHeaderVersion(apiKey, version);
        var header = new ResponseHeader { CorrelationId = correlationId };
        var frame = PooledFrame.Rent(header.Size(headerVersion) + body.Size(version));
        var writer = new KafkaWriter(frame.Span);
        header.Write(ref writer, headerVersion);
        body.Write(ref writer, version);
        return frame;
    }

    public static T DecodeResponse<T>(PooledFrame frame, ApiKey apiKey, short version) where T : IKafkaMessage, new()
    {
        var reader = new KafkaReader((ReadOnlyMemory<byte>)frame.Memory);
        var header = new ResponseHeader();
        header.Read(ref reader, KafkaApis.ResponseHeaderVersion(apiKey, version));
        var message = new T();
        message.Read(ref reader, version);
        return message;
    }

    /// <summary>Byte offset where the body of a request frame starts (after its header).</summary>
    public static int RequestBodyOffset(ReadOnlyMemory<byte> frame, ApiKey apiKey, short version, out RequestHeader header)
    {
        var reader = new KafkaReader(frame);
        header = new RequestHeader();
        header.Read(ref reader, KafkaApis.RequestHeaderVersion(apiKey, version));
        return reader.Position;
    }

    public static T DecodeBody<T>(ReadOnlyMemory<byte> body, short version) where T : IKafkaMessage, new()
    {
        var reader = new KafkaReader(body);
        var message = new T();
        message.Read(ref reader, version);
        return message;
    }
}
