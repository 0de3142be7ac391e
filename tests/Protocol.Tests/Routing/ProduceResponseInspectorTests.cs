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
