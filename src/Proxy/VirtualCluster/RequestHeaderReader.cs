using System.Buffers.Binary;
using System.Text;
using Switchback.Protocol;
using Switchback.Protocol.Messages;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Parses the request headers of one client connection. Clients send the same client id on every request, so when
/// a header repeats the last one and carries no tagged fields, the id decoded before is reused instead of decoded
/// into a new string. Not thread-safe: one per connection, used by its sequential dispatch.
/// </summary>
public sealed class RequestHeaderReader
{
    private const int ClientIdOffset = 8;
    private const int MaxRememberedClientIdBytes = 1024;

    private string? _clientId;
    private byte[]? _clientIdBytes;

    /// <summary>Parses the header of <paramref name="frame"/> (header and body, no size prefix) and returns where the body starts.</summary>
    public int Read(ReadOnlySpan<byte> frame, ApiKey apiKey, short version, out RequestHeader header)
    {
        var headerVersion = KafkaApis.RequestHeaderVersion(apiKey, version);
        if (headerVersion >= 1 && _clientIdBytes is { } known && frame.Length >= ClientIdOffset + 2
            && BinaryPrimitives.ReadInt16BigEndian(frame[ClientIdOffset..]) == known.Length)
        {
            var start = ClientIdOffset + 2;
            var end = start + known.Length;
            // Header v2 ends with tagged fields: only an empty set (a single zero count) takes the short way.
            if (frame.Length >= end && frame[start..end].SequenceEqual(known) && (headerVersion < 2 || (frame.Length > end && frame[end] == 0)))
            {
                header = new RequestHeader
                {
                    ApiKey = (ApiKey)BinaryPrimitives.ReadInt16BigEndian(frame),
                    ApiVersion = BinaryPrimitives.ReadInt16BigEndian(frame[2..]),
                    CorrelationId = BinaryPrimitives.ReadInt32BigEndian(frame[4..]),
                    ClientId = _clientId,
                };
                return headerVersion >= 2 ? end + 1 : end;
            }
        }
        var reader = new KafkaReader(frame);
        header = new RequestHeader();
        header.Read(ref reader, headerVersion);
        if (header.ClientId is { } clientId && clientId != _clientId && Encoding.UTF8.GetByteCount(clientId) <= MaxRememberedClientIdBytes)
        {
            _clientId = clientId;
            _clientIdBytes = Encoding.UTF8.GetBytes(clientId);
        }
        return reader.Position;
    }
}
