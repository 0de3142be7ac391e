using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Hosting;

namespace Switchback.Proxy.Demo;

/// <summary>
/// <c>switchback demo</c>: two in-process mock clusters (<c>source</c> and <c>target</c>, three brokers each) with
/// sample topics, and the proxy in front of them with two families. Nothing else needs to be installed. The orders
/// family is replicated from source to target while it writes to source (<see cref="DemoReplication"/>), and copied
/// back while its rollback window is open, so its switch and rollback can be tried unforced, with nothing left behind.
/// </summary>
public static class DemoRunner
{
    public static readonly (string Topic, int Partitions)[] SampleTopics =
    [
        ("orders.events", 6), ("orders.audit", 3), ("payments.events", 6), ("misc.logs", 3),
    ];

    public static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        using var source = MockKafkaCluster.Start(3);
        using var target = MockKafkaCluster.Start(3);
        foreach (var (topic, partitions) in SampleTopics)
        {
            source.CreateTopic(topic, partitions);
            target.CreateTopic(topic, partitions);
        }
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(DemoSettings(source.BootstrapServers, target.BootstrapServers))
            .AddInMemoryCollection(RollbackWindowSettings)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        await using var host = ProxyHost.Create(configuration);
        await host.StartAsync(cancellationToken).ConfigureAwait(false);
        await using var replication = new DemoReplication(host.State, "orders", [.. SampleTopics.Where(t => t.Topic.StartsWith("orders.", StringComparison.Ordinal))]);
        var admin = host.AdminUri.ToString().TrimEnd('/');
        Console.WriteLine($"""

            Switchback demo is running.
              bootstrap.servers   {host.BootstrapServers}
              admin API           {admin}
              clusters            source = {source.BootstrapServers}
                                  target = {target.BootstrapServers}
              families            orders   (topics orders.*, groups orders-*)     write=source read=source
                                  payments (topics payments.*, groups payments-*) write=target read=target
              other topics        follow the default route (source)
              replication         orders is copied from source to target while it writes to source,
                                  and back while its rollback window is open
              console             {admin}/

            Try:
              switchback routes --admin {admin}
              kcat -b {host.BootstrapServers} -L
              echo hello | kcat -b {host.BootstrapServers} -P -t orders.events
              kcat -b {host.BootstrapServers} -C -t orders.events -e
              switchback status orders --admin {admin}
              switchback switch orders --write target --read target --dry-run --admin {admin}
              switchback switch orders --write target --read target --admin {admin}
              switchback rollback orders --admin {admin}

            Ctrl+C stops it.
            """);
        try
        {
            await host.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        return 0;
    }

    /// <summary>The orders family's rollback window as the walk-through uses it: copied back, owned, with abort criteria.</summary>
    private static readonly Dictionary<string, string?> RollbackWindowSettings = new()
    {
        ["Switchback:Families:0:MirrorBack"] = "true",
        ["Switchback:Families:0:Owner"] = "the demo's operator",
        ["Switchback:Families:0:AbortWhen:ProduceErrorRatePercent"] = "5",
        ["Switchback:Families:0:AbortWhen:ForSeconds"] = "30",
    };

    public static Dictionary<string, string?> DemoSettings(string sourceBootstrap, string targetBootstrap) => new()
    {
        ["Switchback:Listener:Bind"] = "127.0.0.1:9092",
        ["Switchback:Listener:AdvertisedHost"] = "127.0.0.1",
        ["Switchback:Admin:Bind"] = "127.0.0.1:9190",
        ["Switchback:StateDirectory"] = Path.Combine(Path.GetTempPath(), $"switchback-demo-{Environment.ProcessId}"),
        ["Switchback:Clusters:source:BootstrapServers"] = sourceBootstrap,
        ["Switchback:Clusters:target:BootstrapServers"] = targetBootstrap,
        ["Switchback:Families:0:Name"] = "orders",
        ["Switchback:Families:0:Topics:0"] = "orders.*",
        ["Switchback:Families:0:Groups:0"] = "orders-*",
        ["Switchback:Families:0:TransactionalIds:0"] = "orders-*",
        ["Switchback:Families:0:Write"] = "source",
        ["Switchback:Families:0:Read"] = "source",
        ["Switchback:Families:1:Name"] = "payments",
        ["Switchback:Families:1:Topics:0"] = "payments.*",
        ["Switchback:Families:1:Groups:0"] = "payments-*",
        ["Switchback:Families:1:TransactionalIds:0"] = "payments-*",
        ["Switchback:Families:1:Write"] = "target",
        ["Switchback:Families:1:Read"] = "target",
        ["Switchback:Default:Write"] = "source",
        ["Switchback:Default:Read"] = "source",
    };
}
