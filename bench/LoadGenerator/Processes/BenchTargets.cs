using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Switchback.Bench.LoadGenerator;

/// <summary>One mock cluster as the upstream process described it.</summary>
public sealed record UpstreamCluster(string BootstrapServers, Dictionary<string, string> Listeners);

/// <summary>The upstream process's ready line.</summary>
public sealed record UpstreamReady(int ProcessId, List<UpstreamCluster> Clusters);

/// <summary>Starts the processes a suite compares: mock upstreams, the Switchback proxy, and HAProxy.</summary>
public static class BenchTargets
{
    public static (ChildProcess Process, UpstreamCluster Cluster) StartUpstream(
        RepoLayout layout, IEnumerable<string> arguments, string logPath, TimeSpan timeout)
    {
        var ready = new TaskCompletionSource<UpstreamReady>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = ChildProcess.Start("dotnet", [layout.UpstreamDll, .. arguments], logPath, line =>
        {
            if (line.StartsWith('{'))
            {
                ready.TrySetResult(JsonSerializer.Deserialize<UpstreamReady>(line)!);
            }
        });
        if (!ready.Task.Wait(timeout))
        {
            process.Dispose();
            throw new TimeoutException($"upstream did not report ready within {timeout.TotalSeconds:0} s (see {logPath})");
        }
        return (process, ready.Task.Result.Clusters.Single());
    }

    /// <summary>Starts <c>switchback run</c> with one cluster and the default route on it, plus one family.</summary>
    public static (ChildProcess Process, string BootstrapServers) StartProxy(
        RepoLayout layout, UpstreamCluster upstream, string workDirectory, TimeSpan timeout)
    {
        var listenPort = FreePort();
        var config = new Dictionary<string, object>
        {
            ["Switchback"] = new Dictionary<string, object>
            {
                ["Listener"] = new Dictionary<string, object>
                {
                    ["Bind"] = $"127.0.0.1:{listenPort}",
                    ["AdvertisedHost"] = "127.0.0.1",
                    ["BrokerPortStart"] = 0,
                },
                ["Admin"] = new Dictionary<string, object> { ["Bind"] = $"127.0.0.1:{FreePort()}" },
                ["StateDirectory"] = Path.Combine(workDirectory, "switchback-state"),
                ["Clusters"] = new Dictionary<string, object>
                {
                    ["bench"] = new Dictionary<string, object> { ["BootstrapServers"] = upstream.BootstrapServers },
                },
                // Route the bench topics through a family, as a real deployment would, not only the default route.
                ["Families"] = new object[]
                {
                    new Dictionary<string, object>
                    {
                        ["Name"] = "bench",
                        ["Topics"] = new[] { "bench.*" },
                        ["Groups"] = new[] { "bench-*" },
                        ["Write"] = "bench",
                        ["Read"] = "bench",
                    },
                },
                ["Default"] = new Dictionary<string, object> { ["Write"] = "bench", ["Read"] = "bench" },
            },
        };
        var configPath = Path.Combine(workDirectory, "switchback.json");
        File.WriteAllText(configPath, JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));

        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        const string Marker = "switchback listening on ";
        var logPath = Path.Combine(workDirectory, "switchback.log");
        var process = ChildProcess.Start("dotnet", [layout.ProxyDll, "run", "--config", configPath], logPath, line =>
        {
            var at = line.IndexOf(Marker, StringComparison.Ordinal);
            if (at >= 0)
            {
                var rest = line[(at + Marker.Length)..];
                ready.TrySetResult(rest[..rest.IndexOf(',', StringComparison.Ordinal)].Trim());
            }
        });
        if (!ready.Task.Wait(timeout))
        {
            process.Dispose();
            throw new TimeoutException($"switchback did not start within {timeout.TotalSeconds:0} s (see {logPath})");
        }
        return (process, ready.Task.Result);
    }

    /// <summary>
    /// Starts HAProxy in TCP mode: one frontend per broker (the ports the HAProxy upstream advertises) and a
    /// bootstrap frontend that spreads over all brokers.
    /// </summary>
    public static ChildProcess StartHaproxy(
        UpstreamCluster upstream, int bootstrapPort, IReadOnlyList<int> brokerPorts, string workDirectory, TimeSpan timeout)
    {
        var brokers = upstream.Listeners.OrderBy(kv => int.Parse(kv.Key, CultureInfo.InvariantCulture)).Select(kv => kv.Value).ToList();
        var config = new StringBuilder();
        config.AppendLine(CultureInfo.InvariantCulture, $"""
            global
                nbthread {Environment.ProcessorCount}
            defaults
                mode tcp
                timeout connect 5s
                timeout client 10m
                timeout server 10m
            frontend bootstrap
                bind 127.0.0.1:{bootstrapPort}
                default_backend all_brokers
            backend all_brokers
                balance roundrobin
            """);
        for (var i = 0; i < brokers.Count; i++)
        {
            config.AppendLine(CultureInfo.InvariantCulture, $"    server b{i + 1} {brokers[i]}");
        }
        for (var i = 0; i < brokers.Count; i++)
        {
            config.AppendLine(CultureInfo.InvariantCulture, $"""
                frontend broker{i + 1}
                    bind 127.0.0.1:{brokerPorts[i]}
                    default_backend broker{i + 1}
                backend broker{i + 1}
                    server b{i + 1} {brokers[i]}
                """);
        }
        var configPath = Path.Combine(workDirectory, "haproxy.cfg");
        File.WriteAllText(configPath, config.ToString());
        var process = ChildProcess.Start("haproxy", ["-db", "-f", configPath], Path.Combine(workDirectory, "haproxy.log"));
        WaitForPort(bootstrapPort, timeout, process);
        return process;
    }

    public static void WaitForPort(int port, TimeSpan timeout, ChildProcess owner)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (owner.HasExited)
            {
                throw new InvalidOperationException($"process {owner.Id} exited before listening on {port}");
            }
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(100);
            }
        }
        throw new TimeoutException($"nothing listens on 127.0.0.1:{port} after {timeout.TotalSeconds:0} s");
    }

    /// <summary>A port the kernel considers free now (a small race with other processes is accepted for a bench).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
