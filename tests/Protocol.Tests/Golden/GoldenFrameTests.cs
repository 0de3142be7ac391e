using System.Buffers.Binary;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Tests.Captures;

namespace Switchback.Protocol.Tests.Golden;

/// <summary>
/// Every frame captured from real clients and the librdkafka mock broker (see Captures/README.md) must decode with
/// the typed codec at its captured api key and version and re-encode to the very same bytes, header included.
/// The only frames excused are the mock's own wire errors listed in <see cref="MockDeviation"/>; each of those is
/// matched narrowly and checked for the exact way it departs from the protocol.
/// </summary>
public sealed class GoldenFrameTests
{
    private const short UnsupportedVersionErrorCode = 35;

    /// <summary>Responses of the librdkafka 2.16 mock broker that break the Kafka wire format.</summary>
    public enum MockDeviation
    {
        /// <summary>A frame that follows the protocol.</summary>
        None,

        /// <summary>
        /// librdkafka clients open every connection with ApiVersions v3. The mock answers UNSUPPORTED_VERSION in a
        /// broken encoding: a v3 body whose compact ApiKeys length is the plain element count (1 for its one entry
        /// instead of 2), so a v3 reader sees an empty array and misreads the rest. The clients retry with v0.
        /// </summary>
        ApiVersionsUnsupportedVersionReply,

        /// <summary>Metadata v13 responses end with one zero byte after the body's tagged fields.</summary>
        MetadataV13TrailingByte,

        /// <summary>
        /// OffsetFetch v6 asked for all topics (null Topics) is answered with a null Topics array, which is not
        /// nullable in any response version: the mock echoes the request's array count.
        /// </summary>
        OffsetFetchNullTopics,

        /// <summary>
        /// The mock parses LeaveGroup as v0-v2 whatever the version and answers v3 without the Members array
        /// (throttle time and error code only).
        /// </summary>
        LeaveGroupV3WithoutMembers,
    }

    private static readonly Lazy<IReadOnlyDictionary<string, IReadOnlyList<CapturedFrame>>> FramesByClient = new(() =>
        CaptureFile.Clients.ToDictionary(c => c, c => (IReadOnlyList<CapturedFrame>)CaptureFile.Load(c).ToList()));

    /// <summary>One case per well-formed captured frame: client, direction, api, version, index in the client's file.</summary>
    public static TheoryData<string, string, string, short, int> WellFormedFrames()
    {
        var data = new TheoryData<string, string, string, short, int>();
        foreach (var (client, index, frame) in IndexedFrames().Where(f => Classify(f.Frame) == MockDeviation.None))
        {
            data.Add(client, Dir(frame), ApiName(frame), frame.ApiVersion, index);
        }
        return data;
    }

    /// <summary>One case per mock frame that breaks the wire format, with the deviation it shows.</summary>
    public static TheoryData<string, string, string, short, int, MockDeviation> MockDeviationFrames()
    {
        var data = new TheoryData<string, string, string, short, int, MockDeviation>();
        foreach (var (client, index, frame) in IndexedFrames())
        {
            var deviation = Classify(frame);
            if (deviation != MockDeviation.None)
            {
                data.Add(client, Dir(frame), ApiName(frame), frame.ApiVersion, index, deviation);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(WellFormedFrames))]
    public void CapturedFrame_DecodesAndReencodes_ByteForByte(string client, string dir, string api, short version, int index)
    {
        var frame = Frame(client, index);
        AssertCaseMatches(frame, dir, api, version);
        var apiKey = (ApiKey)frame.ApiKey;
        Assert.True(
            KafkaApis.IsSupported(apiKey, frame.ApiVersion),
            $"Codec does not define {apiKey} v{frame.ApiVersion} (defined: v{KafkaApis.LowestVersion(apiKey)}-v{KafkaApis.HighestVersion(apiKey)}), but a real client uses it: {frame}");

        var (size, encoded) = Reencode(frame);

        // Hex strings so that a failure shows where the encodings part.
        Assert.Equal(Convert.ToHexString(frame.Bytes), Convert.ToHexString(encoded));
        Assert.Equal(frame.Bytes.Length, size);
    }

    [Theory]
    [MemberData(nameof(MockDeviationFrames))]
    public void MockDeviationFrame_DepartsFromTheProtocolOnlyAsDocumented(string client, string dir, string api, short version, int index, MockDeviation deviation)
    {
        var frame = Frame(client, index);
        AssertCaseMatches(frame, dir, api, version);
        Assert.Equal(deviation, Classify(frame));

        switch (deviation)
        {
            case MockDeviation.ApiVersionsUnsupportedVersionReply:
                // A correct codec cannot reproduce it: it must reject it or read something that encodes differently.
                byte[] encoded;
                try
                {
                    (_, encoded) = Reencode(frame);
                }
                catch (KafkaProtocolException)
                {
                    return;
                }
                Assert.NotEqual(Convert.ToHexString(frame.Bytes), Convert.ToHexString(encoded));
                break;

            case MockDeviation.MetadataV13TrailingByte:
                // Everything up to the stray byte is a well-formed v13 response and round-trips exactly.
                Assert.Equal(0, frame.Bytes[^1]);
                var (size, withoutTrailingByte) = Reencode(frame);
                Assert.Equal(Convert.ToHexString(frame.Bytes.AsSpan(0, frame.Bytes.Length - 1)), Convert.ToHexString(withoutTrailingByte));
                Assert.Equal(frame.Bytes.Length - 1, size);
                break;

            case MockDeviation.OffsetFetchNullTopics:
            case MockDeviation.LeaveGroupV3WithoutMembers:
                Assert.Throws<KafkaProtocolException>(() => Reencode(frame));
                break;

            default:
                Assert.Fail($"unexpected deviation {deviation}");
                break;
        }
    }

    [Fact]
    public void MockDeviations_AreSeenOnlyWhereTheirClientsTriggerThem()
    {
        var seen = IndexedFrames()
            .Select(f => (f.Frame.Client, Deviation: Classify(f.Frame)))
            .Where(f => f.Deviation != MockDeviation.None)
            .Distinct()
            .Order()
            .ToList();

        // Keeps the excused set as narrow as the quirks: a new kind of failing frame must fail the golden theory.
        Assert.Equal(
            [
                ("confluent", MockDeviation.ApiVersionsUnsupportedVersionReply),
                ("confluent", MockDeviation.MetadataV13TrailingByte),
                ("confluent", MockDeviation.OffsetFetchNullTopics),
                ("kafkajs", MockDeviation.LeaveGroupV3WithoutMembers),
                ("kcat", MockDeviation.ApiVersionsUnsupportedVersionReply),
            ],
            seen);
    }

    [Fact]
    public void Captures_CoverFourClients_EachWithProduceFetchAndMetadataInBothDirections()
    {
        var frames = FramesByClient.Value.Values.SelectMany(f => f).ToList();
        var clients = frames.Select(f => f.Client).Distinct().ToList();

        Assert.True(clients.Count >= 4, $"captures cover only {clients.Count} client(s): {string.Join(", ", clients)}");
        foreach (var client in clients)
        {
            foreach (var api in new[] { ApiKey.Produce, ApiKey.Fetch, ApiKey.Metadata })
            {
                foreach (var direction in new[] { CaptureDirection.Request, CaptureDirection.Response })
                {
                    Assert.True(
                        frames.Any(f => f.Client == client && f.ApiKey == (short)api && f.Direction == direction),
                        $"{client} has no {api} {direction} frame");
                }
            }
        }
    }

    /// <summary>Which documented mock deviation, if any, a captured frame shows; each test is as narrow as the quirk.</summary>
    private static MockDeviation Classify(CapturedFrame frame)
    {
        if (frame.Direction != CaptureDirection.Response)
        {
            return MockDeviation.None;
        }
        var body = frame.Bytes.AsSpan(4);
        return (ApiKey)frame.ApiKey switch
        {
            ApiKey.ApiVersions when frame.ApiVersion >= 3 && body.Length >= 2
                && BinaryPrimitives.ReadInt16BigEndian(body) == UnsupportedVersionErrorCode
                => MockDeviation.ApiVersionsUnsupportedVersionReply,
            ApiKey.Metadata when frame.ApiVersion == 13
                => MockDeviation.MetadataV13TrailingByte,
            // Flexible v6-v7: header tagged fields (1), throttle time (4), then a compact array length of 0 is null.
            ApiKey.OffsetFetch when frame.ApiVersion is 6 or 7 && body.Length >= 6 && body[0] == 0 && body[5] == 0
                => MockDeviation.OffsetFetchNullTopics,
            // Throttle time and error code, nothing after them.
            ApiKey.LeaveGroup when frame.ApiVersion == 3 && body.Length == 6
                => MockDeviation.LeaveGroupV3WithoutMembers,
            _ => MockDeviation.None,
        };
    }

    private static IEnumerable<(string Client, int Index, CapturedFrame Frame)> IndexedFrames() =>
        FramesByClient.Value.SelectMany(c => c.Value.Select((frame, index) => (c.Key, index, frame)));

    private static CapturedFrame Frame(string client, int index) => FramesByClient.Value[client][index];

    private static string Dir(CapturedFrame frame) => frame.Direction == CaptureDirection.Request ? "request" : "response";

    private static string ApiName(CapturedFrame frame) => ((ApiKey)frame.ApiKey).ToString();

    private static void AssertCaseMatches(CapturedFrame frame, string dir, string api, short version) =>
        Assert.Equal((dir, api, version), (Dir(frame), ApiName(frame), frame.ApiVersion));

    /// <summary>Decodes header and body at the captured api key and version and encodes them again.</summary>
    private static (int Size, byte[] Encoded) Reencode(CapturedFrame frame)
    {
        var apiKey = (ApiKey)frame.ApiKey;
        var version = frame.ApiVersion;
        var reader = new KafkaReader(new ReadOnlyMemory<byte>(frame.Bytes));
        int size;
        byte[] encoded;
        if (frame.Direction == CaptureDirection.Request)
        {
            var headerVersion = KafkaApis.RequestHeaderVersion(apiKey, version);
            var header = default(RequestHeader);
            header.Read(ref reader, headerVersion);
            Assert.Equal((apiKey, version, frame.CorrelationId), (header.ApiKey, header.ApiVersion, header.CorrelationId));
            var body = KafkaMessages.CreateRequest(apiKey) ?? throw new InvalidOperationException($"No request definition for {apiKey}.");
            body.Read(ref reader, version);

            size = header.Size(headerVersion) + body.Size(version);
            encoded = new byte[size];
            var writer = new KafkaWriter(encoded);
            header.Write(ref writer, headerVersion);
            body.Write(ref writer, version);
            Assert.Equal(size, writer.Position);
        }
        else
        {
            var headerVersion = KafkaApis.ResponseHeaderVersion(apiKey, version);
            var header = default(ResponseHeader);
            header.Read(ref reader, headerVersion);
            Assert.Equal(frame.CorrelationId, header.CorrelationId);
            var body = KafkaMessages.CreateResponse(apiKey) ?? throw new InvalidOperationException($"No response definition for {apiKey}.");
            body.Read(ref reader, version);

            size = header.Size(headerVersion) + body.Size(version);
            encoded = new byte[size];
            var writer = new KafkaWriter(encoded);
            header.Write(ref writer, headerVersion);
            body.Write(ref writer, version);
            Assert.Equal(size, writer.Position);
        }
        return (size, encoded);
    }
}
