using Confluent.Kafka;
using Xunit;

namespace Switchback.Proxy.Tests.Integration.Upstream;

/// <summary>An upstream cluster going down harms only the families routed to it, and only while it is down.</summary>
[Collection(ProxyCollection.Name)]
public sealed class UpstreamDownTests(ProxyFixture fixture)
{
    [Fact]
    public async Task TargetClusterDown_PaymentsProduceFailsRetriably_OrdersKeepsSucceedingInSameProducer_PaymentsRecoversWhenUp()
    {
        var orders = fixture.NewTopic("orders");
        var payments = fixture.NewTopic("payments");
        var config = fixture.ProducerConfig();
        config.MessageTimeoutMs = 4000;
        config.RequestTimeoutMs = 3000;
        using var producer = new ProducerBuilder<string, string>(config).Build();
        await fixture.ProduceAsync(producer, orders, 3, "orders-before");
        await fixture.ProduceAsync(producer, payments, 3, "payments-before");

        foreach (var broker in fixture.Target.BrokerIds)
        {
            fixture.Target.SetBrokerDown(broker);
        }
        try
        {
            var failed = producer.ProduceAsync(payments, new Message<string, string> { Key = "k", Value = "payments-during" });
            // Orders are on source and must not notice.
            await fixture.ProduceAsync(producer, orders, 3, "orders-during");

            var error = (await Assert.ThrowsAsync<ProduceException<string, string>>(() => failed.WaitAsync(TimeSpan.FromSeconds(20)))).Error;
            Assert.False(error.IsFatal, $"payments produce failed fatally: {error}");
            Assert.True(error.Code is ErrorCode.Local_MsgTimedOut or ErrorCode.RequestTimedOut or ErrorCode.NotLeaderForPartition
                    or ErrorCode.LeaderNotAvailable or ErrorCode.Local_Transport or ErrorCode.NetworkException,
                $"expected a retriable or timeout error, got {error.Code}: {error.Reason}");
        }
        finally
        {
            foreach (var broker in fixture.Target.BrokerIds)
            {
                fixture.Target.SetBrokerUp(broker);
            }
        }

        // Same producer, same 4 s message timeout: the proxy must be serving payments again well within it.
        var result = await producer.ProduceAsync(payments, new Message<string, string> { Key = "k", Value = "payments-after" })
            .WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(PersistenceStatus.Persisted, result.Status);

        var onTarget = ProxyFixture.ReadDirectly(fixture.Target, payments).Select(r => r.Message.Value).ToList();
        Assert.Equal(4, onTarget.Count(v => v.StartsWith("payments-", StringComparison.Ordinal)));
        Assert.Contains("payments-after", onTarget);
        Assert.DoesNotContain("payments-during", onTarget);
        Assert.Equal(6, ProxyFixture.ReadDirectly(fixture.Source, orders).Count);
        Assert.Empty(ProxyFixture.ReadDirectly(fixture.Source, payments));
    }
}
