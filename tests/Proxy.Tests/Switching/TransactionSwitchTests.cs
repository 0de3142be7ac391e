using System.Net;
using Confluent.Kafka;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>A write switch waits for the family's open transactions: a transaction never spans two clusters.</summary>
public sealed class TransactionSwitchTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Switch_WithOpenTransaction_WaitsOrTimesOut()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 2);
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = rig.BootstrapServers,
            TransactionalId = $"orders-tx-{Guid.NewGuid():N}",
            Acks = Acks.All,
            TransactionTimeoutMs = 30_000,
        }).SetLogHandler(static (_, _) => { })
        .SetErrorHandler((_, e) => errors.Add($"{e.Code} {e.Reason} fatal={e.IsFatal}")).Build();
        producer.InitTransactions(TimeSpan.FromSeconds(20));
        producer.BeginTransaction();
        // The first record of the transaction registers its partition (AddPartitionsToTxn): the transaction is open.
        var first = await producer.ProduceAsync(new TopicPartition(SwitchingRig.Topic, 0), new Message<string, string> { Key = "k", Value = "in-tx-1" });
        Assert.Equal(PersistenceStatus.Persisted, first.Status);

        var refused = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 700, reason = "open transaction" });
        output.WriteLine(refused.ToString());
        Assert.True(refused.Status == HttpStatusCode.ServiceUnavailable, refused.ToString());
        Assert.Contains("open transactions: 1", refused.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
        var family = await rig.FamilyAsync();
        Assert.Equal(("source", 0L, "active"), (family.Body.GetProperty("write").GetString(), family.Body.GetProperty("epoch").GetInt64(), family.Body.GetProperty("state").GetString()));
        Assert.Contains("\"outcome\":\"failed\"", rig.AuditText(), StringComparison.Ordinal);

        // The transaction goes on where it began, and ends there.
        var second = await producer.ProduceAsync(new TopicPartition(SwitchingRig.Topic, 1), new Message<string, string> { Key = "k", Value = "in-tx-2" });
        Assert.Equal(PersistenceStatus.Persisted, second.Status);
        producer.CommitTransaction(TimeSpan.FromSeconds(20));

        var switched = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 5000, reason = "transaction ended" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        // Both records of the transaction are on source, none on target; the next transaction runs on target.
        Assert.Equal(["in-tx-1", "in-tx-2"], rig.ReadAll("source").Where(r => r.Key == "k").Select(r => r.Value).Order());
        Assert.Empty(rig.ReadAll("target"));
        // The same producer's next transaction runs on target, with no error reaching the application: the proxy
        // initialises the transactional id there and maps the producer id the client holds.
        producer.BeginTransaction();
        var third = await producer.ProduceAsync(new TopicPartition(SwitchingRig.Topic, 0), new Message<string, string> { Key = "k", Value = "after-switch" });
        Assert.Equal(PersistenceStatus.Persisted, third.Status);
        producer.CommitTransaction(TimeSpan.FromSeconds(20));
        Assert.Equal(["after-switch"], rig.ReadAll("target").Select(r => r.Value));
        Assert.DoesNotContain(rig.ReadAll("source"), r => r.Value == "after-switch");
        Assert.True(errors.IsEmpty, $"producer errors: {string.Join("; ", errors)}");
    }
}
