using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Admin;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Listening;

namespace Switchback.Proxy;

/// <summary>The <c>switchback</c> executable: <c>run</c>, <c>demo</c>, and the admin commands (see CONTRACT.md).</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        SocketEventThreads.PreferInlineCompletions();
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        var command = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "run";
        var rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
        try
        {
            return command switch
            {
                "run" => await RunAsync(rest, stop.Token),
                "demo" => await DemoRunner.RunAsync(rest, stop.Token),
                "routes" or "switch" or "rollback" or "close" or "fleet" or "clients" => await AdminCli.RunAsync(command, rest, stop.Token),
                "help" or "--help" or "-h" => Usage(0),
                _ => Fail($"unknown command '{command}' (run, demo, routes, switch, rollback, close, fleet)"),
            };
        }
        catch (ConfigException e)
        {
            return Fail(e.Message);
        }
        catch (AdminCliException e)
        {
            return Fail(e.Message);
        }
        catch (BrokerPortException e)
        {
            // Start-up could not bind a broker port: the message names the port and the setting to change.
            return Fail(e.Message);
        }
    }

    private static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        string? configFile = null;
        var remaining = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "--config" or "-c")
            {
                if (i + 1 >= args.Length)
                {
                    return Fail("--config needs a file path");
                }
                configFile = args[++i];
            }
            else
            {
                remaining.Add(args[i]);
            }
        }
        var builder = new ConfigurationBuilder();
        if (configFile is not null)
        {
            if (!File.Exists(configFile))
            {
                return Fail($"configuration file '{configFile}' not found");
            }
            builder.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }
        var configuration = builder.AddEnvironmentVariables().AddCommandLine([.. remaining]).Build();
        await using var host = ProxyHost.Create(configuration);
        await host.StartAsync(cancellationToken);
        Console.WriteLine($"switchback listening on {host.BootstrapServers}, admin {host.AdminUri}");
        try
        {
            await host.WaitForShutdownAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
        return 0;
    }

    private static int Usage(int code)
    {
        Console.WriteLine("""
            usage:
              switchback run --config FILE           run the proxy (default command)
              switchback demo                        proxy in front of two embedded mock clusters
              switchback routes [--admin URL] [--token T]
              switchback switch FAMILY [--write C] [--read C] [--reason TEXT] [--force] [--admin URL] [--token T]
              switchback rollback FAMILY [--reason TEXT] [--force] [--admin URL] [--token T]
              switchback close FAMILY [--reason TEXT] [--admin URL] [--token T]
              switchback fleet [--admin URL] [--token T]
            """);
        return code;
    }

    private static int Fail(string reason)
    {
        Console.Error.WriteLine($"switchback: {reason}");
        return 2;
    }
}
