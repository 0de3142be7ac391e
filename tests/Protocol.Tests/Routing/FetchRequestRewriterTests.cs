using System.Text;
using Switchback.Protocol.Routing;
using static Switchback.Protocol.Tests.Routing.FetchRequestRoutingTests;

namespace Switchback.Protocol.Tests.Routing;

/// <summary>
/// The in-place Fetch request rewrite: sessionless, epochs unset, topic ids mapped, every other field as the client
/// sent it; and nothing changed at all when the request cannot be rewritten whole.
/// </summary>
public sealed class FetchRequestRewriterTests
{
    private static readonly Guid UpstreamOrders = Guid.Parse("0b0b0b0b-1111-4222-8333-444444444444");
    private static readonly Guid UpstreamPayments = Guid.Parse("0c0c0c0c-5555-4666-8777-888888888888");

    private readonly struct Map : IFetchRequestTopicIds
    {
        public bool TryMapTopicId(Guid clientId, out Guid upstreamId)
        {
            upstreamId = clientId == OrdersId ? UpstreamOrders : clientId == PaymentsId ? UpstreamPayments : Guid.Empty;
            return upstreamId != Guid.Empty;
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(7)]
    [InlineData(9)]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    [InlineData(15)]
    [InlineData(17)]
    public void RewriteInPlace_MakesTheRequestSessionlessWithoutEpochs(short version)
    {
        var body = Encode(version, TwoTopics, clusterId: "cluster-a", rackId: "rack-1");
        var length = body.Length;

        Assert.True(FetchRequestRewriter.TryRewriteInPlace(body, version, new Map()));

        Assert.Equal(length, body.Length);
        var reader = new FetchRequestRouting(body, version);
        Assert.Equal(500, reader.MaxWaitMs);
        Assert.Equal(0, reader.SessionId);
        Assert.Equal(-1, reader.SessionEpoch);
        var seen = new List<(string, Guid, FetchPartitionRouting)>();
        while (reader.TryReadTopic(out var topic))
        {
            var name = Encoding.UTF8.GetString(topic.Name);
            var id = topic.TopicId;
            while (reader.TryReadPartition(out var partition))
            {
                seen.Add((name, id, partition));
            }
        }
        reader.ReadToEnd();
        Assert.True(reader.IsComplete);
        if (version >= 12)
        {
            Assert.Equal("cluster-a", Encoding.UTF8.GetString(reader.ClusterId));
        }
        if (version >= 11)
        {
            Assert.Equal("rack-1", Encoding.UTF8.GetString(reader.RackId));
        }
        var expected = new List<(string, Guid, FetchPartitionRouting)>();
        foreach (var topic in TwoTopics)
        {
            var id = version >= 13 ? (topic.Id == OrdersId ? UpstreamOrders : UpstreamPayments) : Guid.Empty;
            foreach (var p in topic.Partitions)
            {
                expected.Add((version >= 13 ? "" : topic.Name, id, new FetchPartitionRouting(p.Index, -1, p.FetchOffset, -1,
                    version >= 5 ? p.LogStartOffset : -1, p.MaxBytes)));
            }
        }
        Assert.Equal(expected, seen);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(12)]
    [InlineData(13)]
    public void RewriteInPlace_IncrementalFetch_LeavesTheRequestAsItCame(short version)
    {
        var body = Encode(version, TwoTopics, forgotten: [new Forgotten("payments", PaymentsId, [3])]);
        var original = body.ToArray();

        Assert.False(FetchRequestRewriter.TryRewriteInPlace(body, version, new Map()));

        Assert.Equal(original, body);
    }

    [Fact]
    public void RewriteInPlace_UnknownTopicId_LeavesTheRequestAsItCame()
    {
        Topic[] topics = [.. TwoTopics, new Topic("unknown", Guid.Parse("99999999-9999-4999-8999-999999999999"), [new Partition(0, 1)])];
        var body = Encode(13, topics);
        var original = body.ToArray();

        Assert.False(FetchRequestRewriter.TryRewriteInPlace(body, 13, new Map()));

        Assert.Equal(original, body);
    }

    [Fact]
    public void RewriteInPlace_TruncatedOrUnknownVersion_ReturnsFalse()
    {
        var body = Encode(12, TwoTopics);
        Assert.False(FetchRequestRewriter.TryRewriteInPlace(body.AsSpan(0, 20), 12, new Map()));
        Assert.False(FetchRequestRewriter.TryRewriteInPlace(body, 18, new Map()));
    }
}
