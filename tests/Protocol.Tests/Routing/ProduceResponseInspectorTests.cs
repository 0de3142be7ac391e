using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Protocol.Routing;
using Xunit;

namespace Switchback.Protocol.Tests.Routing;

/// <summary>A Produce answer is relayed as bytes only when it names no broker (no KIP-951 hints, no error).</summary>
public sealed class ProduceResponseInspectorTests
{
    [Theory]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(10)]
    [InlineData(11)]
    public void Answer_WithoutErrorsOrHints_IsRelayedAsIs(short version) =>
        Assert.True(ProduceResponseInspector.CanRelayAsIs(Frame(Answer(), version), version));

    [Fact]
    public void Answer_WithCurrentLeaderHint_IsRewritten()
    {
        var answer = Answer();
        answer.Responses[0].PartitionResponses[1].CurrentLeader = new ProduceResponse.LeaderIdAndEpoch { LeaderId = 2, LeaderEpoch = 3 };
        Assert.False(ProduceResponseInspector.CanRelayAsIs(Frame(answer, 10), 10));
    }

    [Fact]
    public void Answer_WithNodeEndpoints_IsRewritten()
    {
        var answer = Answer();
        answer.NodeEndpoints.Add(new ProduceResponse.NodeEndpoint { NodeId = 2, Host = "10.1.2.3", Port = 9092 });
        Assert.False(ProduceResponseInspector.CanRelayAsIs(Frame(answer, 10), 10));
    }

    [Fact]
    public void Answer_WithAnError_IsRewritten()
    {
        var answer = Answer();
        answer.Responses[1].PartitionResponses[0].ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
        Assert.False(ProduceResponseInspector.CanRelayAsIs(Frame(answer, 10), 10));
        var frame = Frame(Answer(), 10);
        Assert.False(ProduceResponseInspector.CanRelayAsIs(frame.AsSpan(0, frame.Length - 2), 10));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(10)]
    [InlineData(11)]
    public void Errors_AreCountedFromTheBytes_InEveryVersion(short version)
    {
        var answer = Answer();
        answer.Responses[0].PartitionResponses[1].ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
        answer.Responses[1].PartitionResponses[0].ErrorCode = (short)ErrorCode.RequestTimedOut;
        if (version >= 10)
        {
            answer.Responses[0].PartitionResponses[1].CurrentLeader = new ProduceResponse.LeaderIdAndEpoch { LeaderId = 2, LeaderEpoch = 3 };
            answer.NodeEndpoints.Add(new ProduceResponse.NodeEndpoint { NodeId = 2, Host = "10.1.2.3", Port = 9092 });
        }
        var partitions = answer.Responses.Sum(t => t.PartitionResponses.Count);
        Assert.True(ProduceResponseInspector.TryCountErrors(Frame(answer, version), version, out var counted, out var errors, out var first));
        Assert.Equal(partitions, counted);
        Assert.Equal(2, errors);
        Assert.Equal((short)ErrorCode.NotLeaderOrFollower, first);

        Assert.True(ProduceResponseInspector.TryCountErrors(Frame(Answer(), version), version, out counted, out errors, out _));
        Assert.Equal((partitions, 0), (counted, errors));
        var truncated = Frame(answer, version);
        Assert.False(ProduceResponseInspector.TryCountErrors(truncated.AsSpan(0, 12), version, out _, out _, out _));
    }

    private static ProduceResponse Answer()
    {
        var answer = new ProduceResponse { ThrottleTimeMs = 0 };
        foreach (var name in new[] { "orders.a", "orders.b" })
        {
            var topic = new ProduceResponse.TopicProduceResponse { Name = name };
            for (var p = 0; p < 3; p++)
            {
                topic.PartitionResponses.Add(new ProduceResponse.PartitionProduceResponse { Index = p, BaseOffset = 100 * p, LogAppendTimeMs = -1, LogStartOffset = 0 });
            }
            answer.Responses.Add(topic);
        }
        return answer;
    }

    // Frames without the size prefix, as the proxy holds them.
    private static byte[] Frame(ProduceResponse message, short version) =>
        KafkaFrameEncoder.EncodeResponse(new ResponseHeader { CorrelationId = 9 }, message, version)[4..];
}
