using System.Runtime.InteropServices;
using Switchback.Protocol.Messages;

namespace Switchback.Protocol.Tests.Messages;

/// <summary>Encodings checked byte by byte against the protocol documentation.</summary>
public sealed class KnownBytesTests
{
    [Fact]
    public void MetadataRequestV0_ForTopicA_EncodesToDocumentedFrame()
    {
        var body = new MetadataRequest { Topics = [new MetadataRequest.MetadataRequestTopic { Name = "a" }] };
        var header = new RequestHeader { ApiKey = ApiKey.Metadata, ApiVersion = 0, CorrelationId = 7, ClientId = "c" };

        var frame = KafkaFrameEncoder.EncodeRequest(header, body);

        byte[] expected =
        [
            0x00, 0x00, 0x00, 0x12,             // size 18
            0x00, 0x03, 0x00, 0x00,             // api key 3, version 0
            0x00, 0x00, 0x00, 0x07,             // correlation id
            0x00, 0x01, (byte)'c',              // client id (int16 length)
            0x00, 0x00, 0x00, 0x01,             // topics: int32 count
            0x00, 0x01, (byte)'a',              // name: int16 length
        ];
        Assert.Equal(expected, frame);
    }

    [Fact]
    public void ApiVersionsRequestV3_UsesCompactStringsAndRequestHeaderV2()
    {
        var body = new ApiVersionsRequest { ClientSoftwareName = "a", ClientSoftwareVersion = "1" };
        var header = new RequestHeader { ApiKey = ApiKey.ApiVersions, ApiVersion = 3, CorrelationId = 1, ClientId = "c" };

        var frame = KafkaFrameEncoder.EncodeRequest(header, body);

        byte[] expected =
        [
            0x00, 0x00, 0x00, 0x11,
            0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,
            0x00, 0x01, (byte)'c',              // client id stays a non-compact string in header v2
            0x00,                               // header tagged fields
            0x02, (byte)'a', 0x02, (byte)'1',   // compact strings: uvarint length + 1
            0x00,                               // body tagged fields
        ];
        Assert.Equal(expected, frame);
    }

    [Fact]
    public void MetadataResponseV13_CarriesTopLevelErrorCodeAfterTopics()
    {
        byte[] body =
        [
            0x00, 0x00, 0x00, 0x00,             // throttle time
            0x01,                               // brokers: empty compact array
            0x00,                               // cluster id: null compact string
            0xFF, 0xFF, 0xFF, 0xFF,             // controller id -1
            0x01,                               // topics: empty compact array
            0x00, 0x23,                         // error code 35
            0x00,                               // tagged fields
        ];

        var response = new MetadataResponse().ReadFrom(body, 13);

        Assert.Equal(35, response.ErrorCode);
        Assert.Null(response.ClusterId);
        Assert.Equal(-1, response.ControllerId);
        Assert.Equal(body, response.ToArray(13));
        Assert.Equal(body.Length - 2, new MetadataResponse().ToArray(12).Length);
    }

    [Fact]
    public void ProduceResponseV10_DecodesKnownTagAndKeepsUnknownTagVerbatim()
    {
        byte[] body =
        [
            0x01,                               // responses: empty
            0x00, 0x00, 0x00, 0x00,             // throttle time
            0x02,                               // two tagged fields
            0x00, 0x0D,                         // tag 0 (NodeEndpoints), 13 bytes
            0x02, 0x00, 0x00, 0x00, 0x01, 0x02, (byte)'h', 0x00, 0x00, 0x23, 0x84, 0x00, 0x00,
            0x07, 0x01, 0xAB,                   // tag 7, unknown to this version
        ];

        var response = new ProduceResponse().ReadFrom(body, 10);

        var endpoint = Assert.Single(response.NodeEndpoints);
        Assert.Equal((1, "h", 9092, (string?)null), (endpoint.NodeId, endpoint.Host, endpoint.Port, endpoint.Rack));
        var unknown = Assert.Single(response.UnknownTaggedFields!);
        Assert.Equal(7u, unknown.Tag);
        Assert.Equal([0xAB], unknown.Data);
        Assert.Equal(body, response.ToArray(10));
    }

    [Fact]
    public void TaggedFields_AreWrittenInAscendingTagOrder_MergingUnknownOnes()
    {
        var response = new ApiVersionsResponse
        {
            FinalizedFeaturesEpoch = 5,
            ZkMigrationReady = true,
            UnknownTaggedFields = [new RawTaggedField(2u, [0x01]), new RawTaggedField(9u, [])],
        };
        // FinalizedFeatures (tag 2) stays empty, its default, so the unknown tag 2 takes that slot.
        var bytes = response.ToArray(3);

        var tags = new List<uint>();
        // Error code (2), empty api keys (1) and throttle time (4) come before the tagged fields.
        var reader = new KafkaReader(bytes.AsMemory(7));
        var count = reader.ReadTaggedFieldCount();
        for (var i = 0; i < count; i++)
        {
            tags.Add(reader.ReadUnsignedVarInt());
            reader.ReadTaggedFieldBody(out _);
        }
        Assert.Equal([1u, 2u, 3u, 9u], tags);
    }

    [Fact]
    public void NullStruct_InFlexibleVersion_IsWrittenAsMinusOneMarker()
    {
        var response = new ConsumerGroupHeartbeatResponse { ErrorCode = 1, MemberEpoch = 2, HeartbeatIntervalMs = 3 };

        byte[] expected =
        [
            0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // throttle time, error code
            0x00, 0x00,                         // error message, member id: null
            0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03,
            0xFF,                               // assignment: null marker
            0x00,
        ];
        Assert.Equal(expected, response.ToArray(0));
        response.Assignment = new ConsumerGroupHeartbeatResponse.AssignmentData();
        Assert.Equal(0x01, response.ToArray(0)[16]);
    }

    [Fact]
    public void Records_AreSlicesOfTheFrame_NotCopies()
    {
        var request = new ProduceRequest
        {
            Acks = -1,
            TimeoutMs = 1000,
            TopicData = [new() { Name = "t", PartitionData = [new() { Index = 0, Records = new byte[] { 1, 2, 3 } }] }],
        };
        var frame = request.ToArray(3);

        var decoded = new ProduceRequest().ReadFrom(frame, 3);

        var records = decoded.TopicData[0].PartitionData[0].Records!.Value;
        Assert.True(MemoryMarshal.TryGetArray(records, out var segment));
        Assert.Same(frame, segment.Array);
        Assert.Equal([1, 2, 3], records.ToArray());
    }
}
