using System.Text;
using Switchback.Protocol.Routing;

namespace Switchback.Protocol.Tests.Routing;

public class FetchRequestRoutingTests
{
    internal static readonly Guid OrdersId = Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
    internal static readonly Guid PaymentsId = Guid.Parse("11111111-2222-3333-4444-555555555555");

    internal sealed record Partition(int Index, long FetchOffset, int CurrentLeaderEpoch = 5, int LastFetchedEpoch = 4, long LogStartOffset = 10, int MaxBytes = 1 << 20);

    internal sealed record Topic(string Name, Guid Id, Partition[] Partitions);

    internal sealed record Forgotten(string Name, Guid Id, int[] Partitions);

    /// <summary>A Fetch request body laid out field by field from FetchRequest.json for <paramref name="version"/>.</summary>
    internal static byte[] Encode(short v, Topic[] topics, Forgotten[]? forgotten = null, string? clusterId = null,
        int replicaId = -1, long replicaEpoch = -1, string rackId = "")
    {
        var flexible = v >= 12;
        var w = new WireBuilder();
        if (v <= 14)
        {
            w.Int32(replicaId);
        }
        w.Int32(500).Int32(1);
        if (v >= 3)
        {
            w.Int32(52_428_800);
        }
        if (v >= 4)
        {
            w.Int8(1);
        }
        if (v >= 7)
        {
            w.Int32(123).Int32(7);
        }
        w.ArrayLength(topics.Length, flexible);
        foreach (var topic in topics)
        {
            if (v >= 13)
            {
                w.Uuid(topic.Id);
            }
            else
            {
                w.String(topic.Name, flexible);
            }
            w.ArrayLength(topic.Partitions.Length, flexible);
            foreach (var p in topic.Partitions)
            {
                w.Int32(p.Index);
                if (v >= 9)
                {
                    w.Int32(p.CurrentLeaderEpoch);
                }
                w.Int64(p.FetchOffset);
                if (v >= 12)
                {
                    w.Int32(p.LastFetchedEpoch);
                }
                if (v >= 5)
                {
                    w.Int64(p.LogStartOffset);
                }
                w.Int32(p.MaxBytes);
                if (v >= 17)
                {
                    // ReplicaDirectoryId, tag 0.
                    w.UVarInt(1).Tag(0, Guid.NewGuid().ToByteArray(bigEndian: true));
                }
                else
                {
                    w.NoTags(flexible);
                }
            }
            w.NoTags(flexible);
        }
        if (v >= 7)
        {
            forgotten ??= [];
            w.ArrayLength(forgotten.Length, flexible);
            foreach (var f in forgotten)
            {
                if (v >= 13)
                {
                    w.Uuid(f.Id);
                }
                else
                {
                    w.String(f.Name, flexible);
                }
                w.ArrayLength(f.Partitions.Length, flexible);
                foreach (var p in f.Partitions)
                {
                    w.Int32(p);
                }
                w.NoTags(flexible);
            }
        }
        if (v >= 11)
        {
            w.String(rackId, flexible);
        }
        if (flexible)
        {
            var tags = new List<(uint, byte[])>();
            if (clusterId is not null)
            {
                tags.Add((0, new WireBuilder().String(clusterId, true).ToArray()));
            }
            if (v >= 15)
            {
                tags.Add((1, new WireBuilder().Int32(replicaId).Int64(replicaEpoch).NoTags(true).ToArray()));
            }
            w.UVarInt((uint)tags.Count);
            foreach (var (tag, payload) in tags)
            {
                w.Tag(tag, payload);
            }
        }
        return w.ToArray();
    }

    internal static readonly Topic[] TwoTopics =
    [
        new("orders", OrdersId, [new Partition(0, 100), new Partition(2, 200, MaxBytes: 4096)]),
        new("payments", PaymentsId, [new Partition(1, 42)]),
    ];

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(7)]
    [InlineData(9)]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    [InlineData(14)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    public void Read_EveryVersion_ExposesRoutingFields(short version)
    {
        var body = Encode(version, TwoTopics, clusterId: "cluster-a", replicaId: -1, rackId: "rack-1");
        var reader = new FetchRequestRouting(body, version);

        Assert.Equal(500, reader.MaxWaitMs);
        Assert.Equal(1, reader.MinBytes);
        Assert.Equal(version >= 3 ? 52_428_800 : int.MaxValue, reader.MaxBytes);
        Assert.Equal(version >= 4 ? 1 : 0, reader.IsolationLevel);
        Assert.Equal(version >= 7 ? (123, 7) : (0, -1), (reader.SessionId, reader.SessionEpoch));
        Assert.Equal(2, reader.TopicCount);

        var seen = new List<string>();
        while (reader.TryReadTopic(out var topic))
        {
            var key = version >= 13 ? topic.TopicId.ToString() : Encoding.UTF8.GetString(topic.Name);
            Assert.Equal(version >= 13, topic.Name.IsEmpty);
            while (reader.TryReadPartition(out var p))
            {
                seen.Add($"{key}/{p.Index}@{p.FetchOffset}");
                Assert.Equal(version >= 9 ? 5 : -1, p.CurrentLeaderEpoch);
                Assert.Equal(version >= 12 ? 4 : -1, p.LastFetchedEpoch);
                Assert.Equal(version >= 5 ? 10 : -1, p.LogStartOffset);
            }
        }
        Assert.True(reader.IsComplete);
        reader.ReadToEnd();

        var orders = version >= 13 ? OrdersId.ToString() : "orders";
        var payments = version >= 13 ? PaymentsId.ToString() : "payments";
        Assert.Equal([$"{orders}/0@100", $"{orders}/2@200", $"{payments}/1@42"], seen);
        Assert.Equal(version >= 11 ? "rack-1" : "", Encoding.UTF8.GetString(reader.RackId));
        Assert.Equal(version >= 12 ? "cluster-a" : "", Encoding.UTF8.GetString(reader.ClusterId));
    }

    [Theory]
    [InlineData(11)]
    [InlineData(14)]
    [InlineData(15)]
    [InlineData(17)]
    public void ReplicaId_FromFixedFieldOrTrailingReplicaState(short version)
    {
        var body = Encode(version, TwoTopics, replicaId: 3, replicaEpoch: 99);
        var reader = new FetchRequestRouting(body, version);
        reader.ReadToEnd();
        Assert.Equal(3, reader.ReplicaId);
        Assert.Equal(version >= 15 ? 99 : -1, reader.ReplicaEpoch);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(12)]
    [InlineData(13)]
    public void ForgottenTopics_IteratedAfterTopics(short version)
    {
        var body = Encode(version, TwoTopics, [new Forgotten("old", OrdersId, [4, 5, 6]), new Forgotten("gone", PaymentsId, [])]);
        var reader = new FetchRequestRouting(body, version);
        while (reader.TryReadTopic(out _))
        {
        }
        Assert.Equal(2, reader.ForgottenTopicCount);
        Assert.False(reader.IsComplete);
        Assert.True(reader.TryReadForgottenTopic(out var first));
        Assert.Equal(version >= 13 ? OrdersId : Guid.Empty, first.TopicId);
        Assert.Equal(version >= 13 ? "" : "old", Encoding.UTF8.GetString(first.Name));
        var partitions = new int[first.PartitionCount];
        for (var i = 0; i < partitions.Length; i++)
        {
            partitions[i] = first.GetPartition(i);
        }
        Assert.Equal([4, 5, 6], partitions);
        Assert.True(reader.TryReadForgottenTopic(out var second));
        Assert.Equal(0, second.PartitionCount);
        Assert.False(reader.TryReadForgottenTopic(out _));
        Assert.True(reader.IsComplete);
        reader.ReadToEnd();
    }

    [Fact]
    public void Read_V4BytesFromProtocolGuide_MatchFieldByField()
    {
        // Fetch v4: replica_id max_wait_ms min_bytes max_bytes isolation_level [topic [partition fetch_offset partition_max_bytes]].
        byte[] body =
        [
            0xFF, 0xFF, 0xFF, 0xFF,                         // replica_id = -1
            0x00, 0x00, 0x01, 0xF4,                         // max_wait_ms = 500
            0x00, 0x00, 0x00, 0x01,                         // min_bytes = 1
            0x03, 0x20, 0x00, 0x00,                         // max_bytes = 52428800
            0x01,                                           // isolation_level = read committed
            0x00, 0x00, 0x00, 0x01,                         // 1 topic
            0x00, 0x01, (byte)'t',                          // topic = "t"
            0x00, 0x00, 0x00, 0x01,                         // 1 partition
            0x00, 0x00, 0x00, 0x03,                         // partition = 3
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, // fetch_offset = 256
            0x00, 0x10, 0x00, 0x00,                         // partition_max_bytes = 1 MiB
        ];
        Assert.Equal(Encode(4, [new Topic("t", Guid.Empty, [new Partition(3, 256)])]), body);

        var reader = new FetchRequestRouting(body, 4);
        Assert.True(reader.TryReadTopic(out var topic));
        Assert.Equal("t"u8, topic.Name);
        Assert.True(reader.TryReadPartition(out var p));
        Assert.Equal(new FetchPartitionRouting(3, -1, 256, -1, -1, 1 << 20), p);
        Assert.False(reader.TryReadTopic(out _));
        reader.ReadToEnd();
    }

    [Fact]
    public void Read_V13TopicIdBytes_MatchFieldByField()
    {
        var id = Guid.Parse("00010203-0405-0607-0809-0a0b0c0d0e0f");
        byte[] body =
        [
            0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x01, 0xF4, 0x00, 0x00, 0x00, 0x01, 0x03, 0x20, 0x00, 0x00, 0x01,
            0x00, 0x00, 0x00, 0x7B, 0x00, 0x00, 0x00, 0x07, // session id 123, epoch 7
            0x02,                                           // 1 topic (compact)
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, // topic id
            0x02,                                           // 1 partition
            0x00, 0x00, 0x00, 0x00,                         // partition 0
            0x00, 0x00, 0x00, 0x05,                         // current leader epoch 5
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // fetch offset 9
            0x00, 0x00, 0x00, 0x04,                         // last fetched epoch 4
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0A, // log start offset 10
            0x00, 0x10, 0x00, 0x00,                         // partition max bytes
            0x00, 0x00,                                     // partition, topic tagged fields
            0x01,                                           // no forgotten topics
            0x01,                                           // rack id ""
            0x00,                                           // request tagged fields
        ];
        Assert.Equal(Encode(13, [new Topic("", id, [new Partition(0, 9)])]), body);

        var reader = new FetchRequestRouting(body, 13);
        Assert.True(reader.TryReadTopic(out var topic));
        Assert.Equal(id, topic.TopicId);
        Assert.True(reader.TryReadPartition(out var p));
        Assert.Equal(9, p.FetchOffset);
        reader.ReadToEnd();
    }

    [Fact]
    public void Read_TruncatedBody_ThrowsProtocolException()
    {
        var body = Encode(15, TwoTopics, clusterId: "c", replicaId: 1, replicaEpoch: 2);
        for (var cut = 0; cut < body.Length; cut++)
        {
            var truncated = body.AsSpan(0, cut).ToArray();
            Assert.Throws<KafkaProtocolException>(() =>
            {
                var reader = new FetchRequestRouting(truncated, 15);
                reader.ReadToEnd();
            });
        }
    }

    [Fact]
    public void Constructor_UnsupportedVersion_Throws() =>
        Assert.Throws<KafkaProtocolException>(() => new FetchRequestRouting([], 18));
}
