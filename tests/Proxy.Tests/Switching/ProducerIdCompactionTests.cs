using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>What the producer-id state files keep when they are read back at start.</summary>
public sealed class ProducerIdCompactionTests
{
    private static readonly RouteTable Initial = RouteTable.FromConfig(ConfigValidator.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["Switchback:Clusters:source:BootstrapServers"] = "127.0.0.1:1",
        ["Switchback:Clusters:target:BootstrapServers"] = "127.0.0.1:2",
        ["Switchback:Families:0:Name"] = "orders",
        ["Switchback:Families:0:Topics:0"] = "orders.*",
        ["Switchback:Families:0:TransactionalIds:0"] = "orders-*",
        ["Switchback:Families:0:Write"] = "source",
        ["Switchback:Families:0:Read"] = "source",
    }).Build()));

    /// <summary>Orders' writes on target since write epoch 3 (a switch, a rollback, a switch again).</summary>
    private static readonly RouteTable OnTarget = Initial.With(new FamilyRoute("orders", new ClusterRoute("target", "source"), 3, DateTimeOffset.UtcNow,
        new RollbackWindow(new ClusterRoute("source", "source"), DateTimeOffset.UtcNow, 1), 3));

    private static ProducerSegmentEntry Segment(long clientId, int partition, string cluster = "target", long writeEpoch = 3, int baseSequence = 0, string topic = "orders.events") =>
        new(clientId, 0, topic, partition, "orders", cluster, writeEpoch, 5000 + clientId, 0, baseSequence);

    [Fact]
    public void ProducerSegments_KeepTheLastOfEachPartition_OnlyForTheCurrentWriteRoute()
    {
        var entries = new[]
        {
            Segment(1, 0, writeEpoch: 1, baseSequence: 10),  // first switch to target: superseded by epoch 3
            Segment(1, 0, cluster: "source", writeEpoch: 2), // the rollback: no longer the route
            Segment(1, 0, baseSequence: 40),
            Segment(1, 1, baseSequence: 7),
            Segment(2, 0, baseSequence: 3),
            Segment(2, 0, baseSequence: 5),                  // re-learnt after the in-memory map was cleared
            Segment(3, 0, topic: "misc.logs"),               // not the family's topic (any more): dropped
        };

        var kept = ProducerIdMapper.Compact(entries, OnTarget, maxProducers: 10);

        Assert.Equal([Segment(1, 0, baseSequence: 40), Segment(1, 1, baseSequence: 7), Segment(2, 0, baseSequence: 5)], kept);
        Assert.Empty(ProducerIdMapper.Compact(entries, Initial, maxProducers: 10));
    }

    [Fact]
    public void ProducerSegments_AreBoundedToTheMostRecentlyMappedProducers()
    {
        var entries = Enumerable.Range(0, 10).SelectMany(i => new[] { Segment(i, 0), Segment(i, 1) }).ToList();

        var kept = ProducerIdMapper.Compact(entries, OnTarget, maxProducers: 3);

        Assert.Equal(entries.Skip(14), kept);
    }

    [Fact]
    public void TransactionalIds_ReplayToTheSameOriginsMappingsAndSequenceBases()
    {
        var entries = new TransactionalIdEntry[]
        {
            new TransactionOriginEntry("orders-a", "source", 60_000),
            new TransactionOriginEntry("orders-b", "source", 60_000),
            new TransactionMappingEntry("orders-a", "target", 700, 0),        // a mapping of an earlier stint on target
            new TransactionSequenceBaseEntry("orders-a", 700, 0, "orders.events", 0, 12),
            new TransactionMappingEntry("orders-a", "source", 800, 1),        // the current stint: back on source
            new TransactionSequenceBaseEntry("orders-a", 800, 1, "orders.events", 0, 20),
            new TransactionSequenceBaseEntry("orders-a", 700, 0, "orders.events", 1, 99), // belongs to the old mapping
            new TransactionSequenceBaseEntry("orders-a", 800, 1, "orders.events", 2, 4),
            new TransactionMappingEntry("orders-b", "target", 900, 0),
            new TransactionOriginEntry("orders-b", "target", 30_000),         // b re-initialised on target: unmapped
        };

        var kept = TransactionalProducers.Compact(entries, maxTracked: 10, DateTimeOffset.UtcNow);

        Assert.Equal(new TransactionalIdEntry[]
        {
            new TransactionOriginEntry("orders-a", "source", 60_000),
            new TransactionMappingEntry("orders-a", "source", 800, 1),
            new TransactionSequenceBaseEntry("orders-a", 800, 1, "orders.events", 0, 20),
            new TransactionSequenceBaseEntry("orders-a", 800, 1, "orders.events", 2, 4),
            new TransactionOriginEntry("orders-b", "target", 30_000),
        }, kept);
    }

    [Fact]
    public void TransactionalIds_AreBoundedToTheMostRecentlyInitialised()
    {
        var entries = Enumerable.Range(0, 10).Select(i => (TransactionalIdEntry)new TransactionOriginEntry($"orders-{i}", "source", 60_000)).ToList();

        Assert.Equal(entries.Skip(7), TransactionalProducers.Compact(entries, maxTracked: 3, DateTimeOffset.UtcNow));
    }

    [Fact]
    public void OpenTransactions_AreKeptUntilEndedReinitialisedOrPastWhatTheBrokerWouldAbort()
    {
        var now = DateTimeOffset.UtcNow;
        long Ago(TimeSpan age) => (now - age).ToUnixTimeMilliseconds();
        var entries = new List<TransactionalIdEntry>
        {
            new TransactionBegunEntry("orders-open", Ago(TimeSpan.FromSeconds(30)), 60_000),
            new TransactionBegunEntry("orders-abandoned", Ago(TimeSpan.FromSeconds(75)), 60_000), // timeout + 10 s passed
            new TransactionBegunEntry("orders-in-grace", Ago(TimeSpan.FromSeconds(65)), 60_000), // the broker may not have aborted it yet
            new TransactionBegunEntry("orders-committed", Ago(TimeSpan.FromSeconds(5)), 60_000),
            new TransactionEndedEntry("orders-committed"),
            new TransactionBegunEntry("orders-restarted", Ago(TimeSpan.FromSeconds(5)), 60_000),
            new TransactionOriginEntry("orders-restarted", "source", 60_000),
            new TransactionBegunEntry("orders-unknown-timeout", Ago(TimeSpan.FromMinutes(14)), null),
        };

        var kept = TransactionalProducers.Compact(entries, maxTracked: 10, now);

        Assert.Equal(["orders-in-grace", "orders-open", "orders-unknown-timeout"],
            kept.OfType<TransactionBegunEntry>().Select(b => b.TransactionalId).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(kept, e => e is TransactionEndedEntry);
    }
}
