using System.CommandLine;
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
    private static readonly string[] RootOnlyTokens = ["-h", "--help", "-?", "/?", "/h", "--version"];

    public static async Task<int> Main(string[] args)
    {
        SocketEventThreads.PreferInlineCompletions();
        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            var parsed = CreateCommandLine().Parse(WithDefaultCommand(args), new ParserConfiguration { ResponseFileTokenReplacer = null });
            if (parsed.Errors.Count > 0 && parsed.Action is not { ClearsParseErrors: true })
            {
                return Fail(ParseFailure(parsed), parsed.CommandResult.Command);
            }
            // The proxy stops on Ctrl+C through `stop` and on SIGTERM through its host, after draining; the
            // command line's own termination handling would cut that short.
            return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null }, stop.Token);
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
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>The <c>switchback</c> command tree: <c>run</c>, <c>demo</c> and the admin commands, each with help and validation.</summary>
    public static RootCommand CreateCommandLine()
    {
        var config = new Option<string>("--config", "-c") { HelpName = "FILE", Description = "The configuration file (JSON)." };
        var run = new Command("run", """
            Run the proxy (the default command). Every other argument is a configuration setting for
            Microsoft.Extensions.Configuration, e.g. --Switchback:Admin:Token=T or --Switchback:Listener:Bind 127.0.0.1:9092.
            """)
        { config };
        run.TreatUnmatchedTokensAsErrors = false;
        run.SetAction((result, cancellationToken) => RunAsync(result.GetValue(config), result.UnmatchedTokens, cancellationToken));

        var demo = new Command("demo", """
            Run the proxy in front of two embedded mock clusters, 'source' and 'target', with sample families.
            Other arguments are configuration settings, as for run.
            """);
        demo.TreatUnmatchedTokensAsErrors = false;
        demo.SetAction((result, cancellationToken) => DemoRunner.RunAsync([.. result.UnmatchedTokens], cancellationToken));

        var root = new RootCommand("Switchback, a Kafka-wire-protocol proxy that moves topic families between clusters.") { run, demo };
        foreach (var command in AdminCommands.Create(AdminCli.RunAsync))
        {
            root.Add(command);
        }
        return root;
    }

    /// <summary>
    /// No command means <c>run</c>: arguments that start with an option (a configuration setting, say) go to it whole,
    /// so a setting's value can never be taken for a command name.
    /// </summary>
    private static string[] WithDefaultCommand(string[] args) =>
        args.Length == 0 || (args[0].StartsWith('-') && !RootOnlyTokens.Contains(args[0])) ? ["run", .. args] : args;

    private static async Task<int> RunAsync(string? configFile, IReadOnlyList<string> settings, CancellationToken cancellationToken)
    {
        var builder = new ConfigurationBuilder();
        if (configFile is not null)
        {
            if (!File.Exists(configFile))
            {
                return Fail($"configuration file '{configFile}' not found");
            }
            builder.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }
        var configuration = builder.AddEnvironmentVariables().AddCommandLine([.. settings]).Build();
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

    /// <summary>The one reason to print when the command line is wrong: what is unknown, then what is missing, then the rest.</summary>
    private static string ParseFailure(ParseResult parsed)
    {
        var command = parsed.CommandResult.Command;
        if (parsed.UnmatchedTokens.Count > 0)
        {
            return command is RootCommand
                ? $"unknown command '{parsed.UnmatchedTokens[0]}' ({string.Join(", ", command.Subcommands.Select(c => c.Name))})"
                : $"unexpected argument '{parsed.UnmatchedTokens[0]}'";
        }
        if (command is RootCommand)
        {
            return parsed.Errors[0].Message;
        }
        var missing = command.Arguments.FirstOrDefault(a => a.Arity.MinimumNumberOfValues > 0 && parsed.GetResult(a) is not { Tokens.Count: > 0 });
        return missing is not null ? $"{command.Name} needs a {missing.Name}" : parsed.Errors[0].Message;
    }

    private static int Fail(string reason, Command? help = null)
    {
        var see = help switch
        {
            null => "",
            RootCommand => " (see 'switchback --help')",
            _ => $" (see 'switchback {help.Name} --help')",
        };
        Console.Error.WriteLine($"switchback: {reason}{see}");
        return 2;
    }
}
