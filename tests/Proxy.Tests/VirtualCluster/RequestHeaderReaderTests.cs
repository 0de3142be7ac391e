using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;
using Xunit;

namespace Switchback.Proxy.Tests.VirtualCluster;

/// <summary>A connection's request headers parse as the codec parses them, whether the client id is reused or read anew.</summary>
public sealed class RequestHeaderReaderTests
{
    [Theory]
    [InlineData(ApiKey.Produce, 8)] // header v1
    [InlineData(ApiKey.Fetch, 12)] // header v2 (flexible)
    public void RepeatedClientId_IsReused_HeaderAndBodyOffsetAsTheCodecReadsThem(ApiKey apiKey, short version)
    {
        var reader = new RequestHeaderReader();
        var first = Frame(apiKey, version, 1, "orders-app");
        var second = Frame(apiKey, version, 2, "orders-app");

        var firstOffset = reader.Read(first, apiKey, version, out var firstHeader);
        var secondOffset = reader.Read(second, apiKey, version, out var secondHeader);

        AssertParsedAsTheCodec(first, apiKey, version, firstOffset, firstHeader);
        AssertParsedAsTheCodec(second, apiKey, version, secondOffset, secondHeader);
        Assert.Same(firstHeader.ClientId, secondHeader.ClientId);
        Assert.Equal(2, secondHeader.CorrelationId);
    }

    [Theory]
    [InlineData("orders-apq")] // same length, other bytes
    [InlineData("orders")]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("cafés-app")] // multi-byte UTF-8
    public void ChangedClientId_IsReadAnew(string? changed)
    {
        var reader = new RequestHeaderReader();
        reader.Read(Frame(ApiKey.Produce, 8, 1, "orders-app"), ApiKey.Produce, 8, out _);
        var frame = Frame(ApiKey.Produce, 8, 2, changed);

        var offset = reader.Read(frame, ApiKey.Produce, 8, out var header);

        AssertParsedAsTheCodec(frame, ApiKey.Produce, 8, offset, header);
        Assert.Equal(changed, header.ClientId);
        // And the new one is what is reused next.
        var again = Frame(ApiKey.Produce, 8, 3, changed);
        AssertParsedAsTheCodec(again, ApiKey.Produce, 8, reader.Read(again, ApiKey.Produce, 8, out var next), next);
    }

    [Fact]
    public void RepeatedClientId_WithTaggedFields_ReadsTheTaggedFields()
    {
        var reader = new RequestHeaderReader();
        reader.Read(Frame(ApiKey.Fetch, 12, 1, "orders-app"), ApiKey.Fetch, 12, out _);
        var frame = Frame(ApiKey.Fetch, 12, 2, "orders-app", [new RawTaggedField(7, [1, 2, 3])]);

        var offset = reader.Read(frame, ApiKey.Fetch, 12, out var header);

        AssertParsedAsTheCodec(frame, ApiKey.Fetch, 12, offset, header);
        Assert.Equal(7u, Assert.Single(header.UnknownTaggedFields!).Tag);
    }

    [Fact]
    public void TruncatedHeader_AfterARepeatedClientIdPrefix_FailsAsTheCodecDoes()
    {
        var reader = new RequestHeaderReader();
        reader.Read(Frame(ApiKey.Produce, 8, 1, "orders-app"), ApiKey.Produce, 8, out _);
        var truncated = Frame(ApiKey.Produce, 8, 2, "orders-app")[..14];

        Assert.ThrowsAny<KafkaProtocolException>(() => reader.Read(truncated, ApiKey.Produce, 8, out _));
    }

    private static void AssertParsedAsTheCodec(byte[] frame, ApiKey apiKey, short version, int offset, RequestHeader header)
    {
        var expectedOffset = FrameCodec.RequestBodyOffset(frame, apiKey, version, out var expected);
        Assert.Equal(expectedOffset, offset);
        Assert.Equal(expected.ApiKey, header.ApiKey);
        Assert.Equal(expected.ApiVersion, header.ApiVersion);
        Assert.Equal(expected.CorrelationId, header.CorrelationId);
        Assert.Equal(expected.ClientId, header.ClientId);
        Assert.Equal(expected.UnknownTaggedFields?.Count ?? 0, header.UnknownTaggedFields?.Count ?? 0);
    }

    private static byte[] Frame(ApiKey apiKey, short version, int correlationId, string? clientId, List<RawTaggedField>? tagged = null)
    {
        var headerVersion = KafkaApis.RequestHeaderVersion(apiKey, version);
        var header = new RequestHeader { ApiKey = apiKey, ApiVersion = version, CorrelationId = correlationId, ClientId = clientId, UnknownTaggedFields = tagged };
        // A few body bytes after the header: the reader must stop where the header ends.
        var frame = new byte[header.Size(headerVersion) + 3];
        var writer = new KafkaWriter(frame);
        header.Write(ref writer, headerVersion);
        return frame;
    }
}
