using System.CommandLine;

namespace Switchback.Proxy.Admin;

/// <summary>What an admin command was asked to do, once its command line is parsed and validated.</summary>
public sealed record AdminRequest(string Command, Uri Admin, string? Token, string? Family = null, string? Write = null,
    string? Read = null, string? Reason = null, bool Force = false, int? TimeoutMs = null, bool DryRun = false);

/// <summary>The command-line shape of <c>routes | status | switch | rollback | close | fleet | clients</c>; <see cref="AdminCli"/> does the HTTP.</summary>
public static class AdminCommands
{
    public const string DefaultAdminUrl = "http://127.0.0.1:9190";

    /// <summary>The admin commands, each running <paramref name="run"/> with its validated request.</summary>
    public static IEnumerable<Command> Create(Func<AdminRequest, CancellationToken, Task<int>> run)
    {
        yield return Listing("routes", "List the families and their routes (write, read, epoch, state).", run);
        yield return Status(run);

        var write = new Option<string>("--write") { HelpName = "CLUSTER", Description = "The cluster that receives the family's records." };
        var read = new Option<string>("--read") { HelpName = "CLUSTER", Description = "The cluster the family's consumers fetch from and commit to." };
        var switchFamily = Family("switch");
        var switchForce = Force("Switch even when a readiness gate fails.");
        var dryRun = new Option<bool>("--dry-run")
        {
            Description = "Rehearse: check the gates, hold and drain the family, measure the pause, then release it to its unchanged route.",
        };
        var switchCommand = FamilyCommand("switch", "Switch a family's routes; refused with the failed readiness gates and their evidence unless --force.",
            switchFamily, [write, read, dryRun], switchForce, run,
            (result, request) => request with { Write = result.GetValue(write), Read = result.GetValue(read), DryRun = result.GetValue(dryRun) });
        switchCommand.Validators.Add(result =>
        {
            if (result.GetResult(write) is null && result.GetResult(read) is null)
            {
                result.AddError("switch needs --write and/or --read");
            }
        });
        yield return switchCommand;

        yield return FamilyCommand("rollback", "Return a family to the routes in force when its rollback window opened.",
            Family("rollback"), [], Force("Roll back even when the rollback window is closed."), run, (_, request) => request);
        yield return FamilyCommand("close", "Close a family's rollback window (the switch is then final).",
            Family("close"), [], force: null, run, (_, request) => request);

        yield return Listing("fleet", "List the fleet's members: instance, advertised address, routes epoch, last seen, held families.", run);
        yield return Listing("clients", "List the client inventory: client id, software, address, and per family where it produced, fetched and committed.", run);
    }

    /// <summary><c>status FAMILY</c>: the family's scorecard, computed when asked.</summary>
    private static Command Status(Func<AdminRequest, CancellationToken, Task<int>> run)
    {
        var family = Family("status");
        var (admin, token) = Connection();
        var command = new Command("status", "Show a family's scorecard: the five readiness gates (green, red, unknown) with their summaries.") { family, admin, token };
        command.SetAction((result, cancellationToken) =>
            run(new AdminRequest("status", AdminUrl(result, admin), Token(result, token), Family: result.GetValue(family)), cancellationToken));
        return command;
    }

    private static Command Listing(string name, string description, Func<AdminRequest, CancellationToken, Task<int>> run)
    {
        var (admin, token) = Connection();
        var command = new Command(name, description) { admin, token };
        command.SetAction((result, cancellationToken) => run(new AdminRequest(name, AdminUrl(result, admin), Token(result, token)), cancellationToken));
        return command;
    }

    private static Command FamilyCommand(string name, string description, Argument<string> family, Option[] routes, Option<bool>? force,
        Func<AdminRequest, CancellationToken, Task<int>> run, Func<ParseResult, AdminRequest, AdminRequest> complete)
    {
        var reason = new Option<string>("--reason") { HelpName = "TEXT", Description = "Why; recorded in the audit log." };
        var timeoutMs = new Option<int?>("--timeout-ms")
        {
            HelpName = "N",
            Description = "How long the proxy may take, in milliseconds.",
            CustomParser = result =>
            {
                if (int.TryParse(result.Tokens[0].Value, out var value) && value > 0)
                {
                    return value;
                }
                result.AddError("--timeout-ms needs a positive number");
                return null;
            },
        };
        var (admin, token) = Connection();
        var command = new Command(name, description) { family };
        foreach (var option in routes)
        {
            command.Add(option);
        }
        command.Add(reason);
        if (force is not null)
        {
            command.Add(force);
        }
        command.Add(timeoutMs);
        command.Add(admin);
        command.Add(token);
        command.SetAction((result, cancellationToken) => run(complete(result, new AdminRequest(name, AdminUrl(result, admin), Token(result, token),
            Family: result.GetValue(family), Reason: result.GetValue(reason), Force: force is not null && result.GetValue(force),
            TimeoutMs: result.GetValue(timeoutMs))), cancellationToken));
        return command;
    }

    private static Argument<string> Family(string command)
    {
        var family = new Argument<string>("FAMILY") { Description = "The family's name, as in Switchback:Families." };
        family.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && string.IsNullOrWhiteSpace(result.Tokens[0].Value))
            {
                result.AddError($"{command} needs a FAMILY");
            }
        });
        return family;
    }

    private static Option<bool> Force(string description) => new("--force") { Description = description };

    /// <summary><c>--admin</c> and <c>--token</c>, one pair per command (an option belongs to one parent).</summary>
    private static (Option<string> Admin, Option<string> Token) Connection()
    {
        // No default values shown in help: the token's would print the secret from the environment.
        var admin = new Option<string>("--admin") { HelpName = "URL", Description = $"The admin API (default: SWITCHBACK_ADMIN, else {DefaultAdminUrl})." };
        admin.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && ParseAdminUrl(result.Tokens[0].Value) is null)
            {
                result.AddError(NotAnAdminUrl(result.Tokens[0].Value));
            }
        });
        var token = new Option<string>("--token") { HelpName = "T", Description = "Bearer token for the admin API (default: SWITCHBACK_TOKEN)." };
        return (admin, token);
    }

    private static Uri AdminUrl(ParseResult result, Option<string> admin)
    {
        var text = result.GetValue(admin) ?? Environment.GetEnvironmentVariable("SWITCHBACK_ADMIN") ?? DefaultAdminUrl;
        return ParseAdminUrl(text) ?? throw new AdminCliException(NotAnAdminUrl(text));
    }

    private static string? Token(ParseResult result, Option<string> token) =>
        result.GetValue(token) ?? Environment.GetEnvironmentVariable("SWITCHBACK_TOKEN");

    private static Uri? ParseAdminUrl(string text) =>
        Uri.TryCreate(text.TrimEnd('/') + "/", UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) ? uri : null;

    private static string NotAnAdminUrl(string text) => $"'{text}' is not an admin URL (e.g. {DefaultAdminUrl})";
}
