using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Routing;
using Xunit;

namespace Switchback.Protocol.Tests.Routing;

/// <summary>
/// The in-place Fetch rewrite must produce exactly what decoding, mapping and re-encoding produces, and must refuse
/// whatever it cannot patch in place (tagged fields, errors). Frames are built with the generated codec.
/// </summary>
public sealed class FetchResponseRewriterTests
{
    private static readonly Guid UpstreamA = Guid.Parse("0b0b0b0b-1111-4222-8333-444444444444");
    private static readonly Guid UpstreamB = Guid.Parse("0c0c0c0c-5555-4666-8777-888888888888");
    private static readonly Guid ClientA = Guid.Parse("aaaaaaaa-aaaa-8aaa-8aaa-aaaaaaaaaaaa");
    private static readonly Guid ClientB = Guid.Parse("bbbbbbbb-bbbb-8bbb-8bbb-bbbbbbbbbbbb");

    public static TheoryData<short> Versions => new() { 12, 13, 15, 16, 17 };

    [Theory]
    [MemberData(nameof(Versions))]
    public void RewriteInPlace_MatchesDecodeMapEncode(short version)
    {
        var upstream = Response(preferredReplica: 2);
        var frame = Frame(upstream, version);

        Assert.True(FetchResponseRewriter.TryRewriteInPlace(frame, version, Map, node => node + 100_000));

        var expected = Response(preferredReplica: 100_002);
        expected.SessionId = 0;
        foreach (var topic in expected.Responses)
        {
            topic.TopicId = version >= 13 ? Map(topic.TopicId)!.Value : topic.TopicId;
        }
        Assert.Equal(Convert.ToHexString(Frame(expected, version)), Convert.ToHexString(frame));
    }

    [Fact]
    public void RewriteInPlace_RefusesLeaderHints()
    {
        var response = Response(preferredReplica: -1);
        response.Responses[0].Partitions[0].CurrentLeader = new FetchResponse.LeaderIdAndEpoch { LeaderId = 3, LeaderEpoch = 9 };
        Assert.False(FetchResponseRewriter.TryRewriteInPlace(Frame(response, 16), 16, Map, n => n));
    }

    [Fact]
    public void RewriteInPlace_RefusesNodeEndpoints()
    {
        var response = Response(preferredReplica: -1);
        response.NodeEndpoints.Add(new FetchResponse.NodeEndpoint { NodeId = 1, Host = "10.0.0.1", Port = 9092 });
        Assert.False(FetchResponseRewriter.TryRewriteInPlace(Frame(response, 16), 16, Map, n => n));
    }

    [Fact]
    public void RewriteInPlace_RefusesPartitionErrorsAndUnknownTopicIds()
    {
        var failed = Response(preferredReplica: -1);
        failed.Responses[1].Partitions[0].ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
        Assert.False(FetchResponseRewriter.TryRewriteInPlace(Frame(failed, 16), 16, Map, n => n));
        Assert.False(FetchResponseRewriter.TryRewriteInPlace(Frame(Response(-1), 16), 16, _ => null, n => n));
    }

    [Fact]
    public void RewriteInPlace_RefusesOlderVersionsAndTruncatedFrames()
    {
        Assert.False(FetchResponseRewriter.TryRewriteInPlace(Frame(Response(-1), 11), 11, Map, n => n));
        var frame = Frame(Response(-1), 16);
        Assert.False(FetchResponseRewriter.TryRewriteInPlace(frame.AsSpan(0, frame.Length - 3), 16, Map, n => n));
    }

    [Fact]
    public void RewriteInPlace_TakesRealBrokerAnswersWithoutErrors()
    {
        // Fetch v16 answers of librdkafka's mock broker to Confluent.Kafka: every one without a partition error must
        // be patchable in place, and the patch must equal decode-map-encode.
        var path = Path.Combine(AppContext.BaseDirectory, "Captures", "confluent.jsonl");
        var checkedFrames = 0;
        foreach (var line in File.ReadLines(path))
        {
            using var json = System.Text.Json.JsonDocument.Parse(line);
            var root = json.RootElement;
            if (root.GetProperty("apiKey").GetInt32() != 1 || root.GetProperty("dir").GetString() != "response")
            {
                continue;
            }
            var version = (short)root.GetProperty("apiVersion").GetInt32();
            var frame = Convert.FromHexString(root.GetProperty("hex").GetString()!);
            var decoded = Decode(frame, version);
            if (decoded.ErrorCode != 0 || decoded.Responses.Any(t => t.Partitions.Any(p => p.ErrorCode != 0)))
            {
                continue;
            }
            Assert.True(FetchResponseRewriter.TryRewriteInPlace(frame, version, id => Mapped(id), n => n + 100_000));
            foreach (var topic in decoded.Responses)
            {
                topic.TopicId = Mapped(topic.TopicId);
            }
            decoded.SessionId = 0;
            // Frame() writes correlation id 1234; the rest must match byte for byte.
            Assert.Equal(Convert.ToHexString(Frame(decoded, version))[8..], Convert.ToHexString(frame)[8..]);
            checkedFrames++;
        }
        Assert.True(checkedFrames > 0, "the capture holds no error-free Fetch answer");
    }

    private static Guid Mapped(Guid upstream)
    {
        var bytes = upstream.ToByteArray();
        Array.Reverse(bytes);
        return new Guid(bytes);
    }

    private static FetchResponse Decode(byte[] frame, short version)
    {
        var reader = new KafkaReader((ReadOnlyMemory<byte>)frame);
        new ResponseHeader().Read(ref reader, KafkaApis.ResponseHeaderVersion(ApiKey.Fetch, version));
        var response = new FetchResponse();
        response.Read(ref reader, version);
        return response;
    }

    private static Guid? Map(Guid upstream) => upstream == UpstreamA ? ClientA : upstream == UpstreamB ? ClientB : null;

    private static FetchResponse Response(int preferredReplica)
    {
        var response = new FetchResponse { ThrottleTimeMs = 5, SessionId = 77 };
        foreach (var (id, name) in new[] { (UpstreamA, "orders.a"), (UpstreamB, "orders.b") })
        {
            var topic = new FetchResponse.FetchableTopicResponse { TopicId = id, Topic = name };
            for (var p = 0; p < 3; p++)
            {
                topic.Partitions.Add(new FetchResponse.PartitionData
                {
                    PartitionIndex = p,
                    HighWatermark = 1000 + p,
                    LastStableOffset = 990 + p,
                    LogStartOffset = 0,
                    AbortedTransactions = p == 1 ? [new FetchResponse.AbortedTransaction { ProducerId = 42, FirstOffset = 7 }] : null,
                    PreferredReadReplica = preferredReplica,
                    Records = Enumerable.Range(0, 300 + p).Select(i => (byte)(i * 7 + p)).ToArray(),
                });
            }
            response.Responses.Add(topic);
        }
        return response;
    }

    // Frames without the size prefix, as the proxy holds them.
    private static byte[] Frame(FetchResponse message, short version) =>
        KafkaFrameEncoder.EncodeResponse(new ResponseHeader { CorrelationId = 1234 }, message, version)[4..];
}
