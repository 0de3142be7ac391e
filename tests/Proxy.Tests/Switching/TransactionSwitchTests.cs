using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Tests.Integration;
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

    [Fact]
    public async Task Switch_AfterAProducerAbandonedItsTransaction_WaitsOnlyUntilTheBrokerWouldHaveAbortedIt()
    {
        // A producer that dies mid-transaction never sends EndTxn; the broker aborts the transaction once its timeout
        // has passed. Driven at the wire level so the producer is sure to leave without a word (librdkafka may abort
        // on close).
        await using var rig = await SwitchingRig.StartAsync(partitions: 2);
        var transactionalId = $"orders-tx-{Guid.NewGuid():N}";
        await using (var stream = await ConnectAsync(rig))
        {
            await BeginTransactionAsync(stream, transactionalId, transactionTimeoutMs: 1000);
        }

        var refused = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 700, reason = "transaction still open" });
        Assert.True(refused.Status == HttpStatusCode.ServiceUnavailable, refused.ToString());
        Assert.Contains("open transactions: 1", refused.Body.GetProperty("error").GetString(), StringComparison.Ordinal);

        // Its timeout (1 s) and the broker's abort check (10 s) later, the transaction cannot commit any more.
        var switched = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 30_000, reason = "transaction abandoned" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
    }

    [Fact]
    public async Task Switch_AfterAnOpenTransactionsIdIsInitialisedAgain_DoesNotWaitForIt()
    {
        // A producer restarted with the same transactional id initialises it again, which makes the broker abort the
        // transaction its previous incarnation left open.
        await using var rig = await SwitchingRig.StartAsync(partitions: 2);
        var transactionalId = $"orders-tx-{Guid.NewGuid():N}";
        await using var stream = await ConnectAsync(rig);
        await BeginTransactionAsync(stream, transactionalId, transactionTimeoutMs: 60_000);
        var refused = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 700, reason = "transaction open" });
        Assert.True(refused.Status == HttpStatusCode.ServiceUnavailable, refused.ToString());

        var again = await WireExchange.ExchangeAsync<InitProducerIdResponse>(stream, ApiKey.InitProducerId, 1,
            new InitProducerIdRequest { TransactionalId = transactionalId, TransactionTimeoutMs = 60_000 }, "restarted-producer", TimeSpan.FromSeconds(20));
        Assert.Equal(0, again.ErrorCode);

        var switched = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 5000, reason = "transaction aborted by re-initialisation" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
    }

    [Fact]
    public async Task Switch_AfterARestart_StillWaitsForATransactionBegunBeforeIt_UntilItEnds()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 2);
        var transactionalId = $"orders-tx-{Guid.NewGuid():N}";
        InitProducerIdResponse init;
        await using (var stream = await ConnectAsync(rig))
        {
            init = await BeginTransactionAsync(stream, transactionalId, transactionTimeoutMs: 60_000);
        }

        await rig.RestartAsync();

        var refused = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 700, reason = "transaction from before the restart" });
        Assert.True(refused.Status == HttpStatusCode.ServiceUnavailable, refused.ToString());
        Assert.Contains("open transactions: 1", refused.Body.GetProperty("error").GetString(), StringComparison.Ordinal);
        // The producer comes back through the restarted proxy and commits where the transaction began.
        await using var again = await ConnectAsync(rig);
        var ended = await WireExchange.ExchangeAsync<EndTxnResponse>(again, ApiKey.EndTxn, 1, new EndTxnRequest
        {
            TransactionalId = transactionalId,
            ProducerId = init.ProducerId,
            ProducerEpoch = init.ProducerEpoch,
            Committed = true,
        }, "returning-producer", TimeSpan.FromSeconds(20));
        Assert.Equal(0, ended.ErrorCode);

        var switched = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 5000, reason = "transaction ended" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
        // A second restart does not bring the ended transaction back.
        await rig.RestartAsync();
        var back = await rig.RollbackAsync(new { timeoutMs = 700, reason = "nothing open" });
        Assert.True(back.Status == HttpStatusCode.OK, back.ToString());
    }

    [Fact]
    public async Task Transaction_NamingFamiliesWrittenToDifferentClusters_IsRefusedRetriably_AndOpensNothing()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 2);
        const string other = "misc.logs"; // no family: the default route, writes on source
        rig.Source.CreateTopic(other, 1);
        var switched = await rig.SwitchAsync(new { write = "target", force = true, reason = "orders writes on target" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        var transactionalId = $"app-{Guid.NewGuid():N}";
        await using var stream = await ConnectAsync(rig);
        var timeout = TimeSpan.FromSeconds(20);
        var init = await WireExchange.ExchangeAsync<InitProducerIdResponse>(stream, ApiKey.InitProducerId, 1,
            new InitProducerIdRequest { TransactionalId = transactionalId, TransactionTimeoutMs = 60_000 }, "mixed", timeout);
        Assert.Equal(0, init.ErrorCode);
        var added = await WireExchange.ExchangeAsync<AddPartitionsToTxnResponse>(stream, ApiKey.AddPartitionsToTxn, 1, new AddPartitionsToTxnRequest
        {
            V3AndBelowTransactionalId = transactionalId,
            V3AndBelowProducerId = init.ProducerId,
            V3AndBelowProducerEpoch = init.ProducerEpoch,
            V3AndBelowTopics = [new() { Name = SwitchingRig.Topic, Partitions = [0] }, new() { Name = other, Partitions = [0] }],
        }, "mixed", timeout);

        // Kafka's all-or-nothing shape: the part on the other cluster is refused with an error clients retry, the
        // rest is not attempted.
        var errors = added.ResultsByTopicV3AndBelow.ToDictionary(t => t.Name, t => Assert.Single(t.ResultsByPartition).PartitionErrorCode);
        Assert.Equal((short)Protocol.ErrorCode.OperationNotAttempted, errors[SwitchingRig.Topic]);
        Assert.Equal((short)Protocol.ErrorCode.ConcurrentTransactions, errors[other]);
        // Nothing began: a switch does not wait for it.
        var back = await rig.RollbackAsync(new { timeoutMs = 2000, reason = "nothing open" });
        Assert.True(back.Status == HttpStatusCode.OK, back.ToString());
    }

    [Fact]
    public async Task TransactionalOffsets_OfAGroupReadFromAnotherClusterThanTheRecordsAreWritten_AreRefusedRetriably()
    {
        // Reads switched, writes not: a consume-transform-produce transaction would commit its records on source and
        // its offsets on target, which no cluster can make atomic.
        await using var rig = await SwitchingRig.StartAsync(partitions: 2);
        var switched = await rig.SwitchAsync(new { read = "target", force = true, reason = "orders reads on target" });
        Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());

        var transactionalId = $"orders-tx-{Guid.NewGuid():N}";
        await using var stream = await ConnectAsync(rig);
        var init = await BeginTransactionAsync(stream, transactionalId, transactionTimeoutMs: 60_000);
        var offsets = await WireExchange.ExchangeAsync<AddOffsetsToTxnResponse>(stream, ApiKey.AddOffsetsToTxn, 1, new AddOffsetsToTxnRequest
        {
            TransactionalId = transactionalId,
            ProducerId = init.ProducerId,
            ProducerEpoch = init.ProducerEpoch,
            GroupId = $"orders-pipeline-{Guid.NewGuid():N}",
        }, "mixed", TimeSpan.FromSeconds(20));
        Assert.Equal((short)Protocol.ErrorCode.ConcurrentTransactions, offsets.ErrorCode);
    }

    private static async Task<Stream> ConnectAsync(SwitchingRig rig)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        var endpoint = rig.BootstrapServers.Split(',')[0].Split(':');
        await socket.ConnectAsync(endpoint[0], int.Parse(endpoint[1], System.Globalization.CultureInfo.InvariantCulture));
        return new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>InitProducerId, then AddPartitionsToTxn for one partition: the transaction is open on the write cluster.</summary>
    private static async Task<InitProducerIdResponse> BeginTransactionAsync(Stream stream, string transactionalId, int transactionTimeoutMs)
    {
        var timeout = TimeSpan.FromSeconds(20);
        var init = await WireExchange.ExchangeAsync<InitProducerIdResponse>(stream, ApiKey.InitProducerId, 1,
            new InitProducerIdRequest { TransactionalId = transactionalId, TransactionTimeoutMs = transactionTimeoutMs }, "abandoning-producer", timeout);
        Assert.Equal(0, init.ErrorCode);
        var added = await WireExchange.ExchangeAsync<AddPartitionsToTxnResponse>(stream, ApiKey.AddPartitionsToTxn, 1, new AddPartitionsToTxnRequest
        {
            V3AndBelowTransactionalId = transactionalId,
            V3AndBelowProducerId = init.ProducerId,
            V3AndBelowProducerEpoch = init.ProducerEpoch,
            V3AndBelowTopics = [new() { Name = SwitchingRig.Topic, Partitions = [0] }],
        }, "abandoning-producer", timeout);
        Assert.All(added.ResultsByTopicV3AndBelow.SelectMany(t => t.ResultsByPartition), p => Assert.Equal(0, p.PartitionErrorCode));
        return init;
    }
}
