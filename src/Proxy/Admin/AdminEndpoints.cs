using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Prometheus;
using Switchback.Proxy.Fleet;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Scorecard;
using Switchback.Proxy.Switching;
using Switchback.Proxy.VirtualCluster;
using Switchback.Proxy.Window;

namespace Switchback.Proxy.Admin;

/// <summary>The admin HTTP API (see CONTRACT.md): families, switch, rollback, rollback windows, metrics, health and readiness.</summary>
public static class AdminEndpoints
{
    private static readonly TimeSpan DefaultSwitchTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan MaxSwitchTimeout = TimeSpan.FromMinutes(10);

    public static void Map(WebApplication app)
    {
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", (ProxyState state, BrokerListeners listeners) =>
        {
            var problems = state.Clusters.Where(c => c.View is null || c.LastError is not null)
                .Select(c => $"cluster '{c.Name}' unreachable: {c.LastError ?? "no metadata yet"}").ToList();
            // A broker without a port is missing from what clients see, and its partitions have no leader for them.
            problems.AddRange(listeners.UnboundBrokers().Select(problem => $"broker left out of answers to clients: {problem}"));
            return problems.Count == 0
                ? Results.Text("ready")
                : Results.Text(string.Join("\n", problems), statusCode: StatusCodes.Status503ServiceUnavailable);
        });
        app.MapMetrics("/metrics", app.Services.GetRequiredService<CollectorRegistry>());
        ConsoleAssets.Map(app);

        var v1 = app.MapGroup("/v1").AddEndpointFilter(RequireToken);
        v1.MapGet("/families", (ProxyState state) => Results.Json(state.Routes.Current.Families.Select(f => Describe(state, f))));
        v1.MapGet("/families/{name}", (string name, ProxyState state) =>
            state.Routes.Current.Find(name) is { } family ? Results.Json(Describe(state, family)) : UnknownFamily(name));
        v1.MapPost("/families/{name}/switch", SwitchAsync);
        v1.MapPost("/families/{name}/rollback", RollbackAsync);
        v1.MapGet("/families/{name}/window", (string name, ProxyState state, IServiceProvider services) =>
            state.Routes.Current.Find(name) is { } family
                ? Results.Json(WindowView.Describe(family, MirrorFiguresOf(services.GetService<MirrorSupervisor>(), name)))
                : UnknownFamily(name));
        v1.MapPost("/families/{name}/close", CloseAsync);
        v1.MapGet("/families/{name}/scorecard", ScorecardAsync);
        v1.MapGet("/fleet", (ProxyState state, IServiceProvider services) => Results.Json(DescribeFleet(state, services.GetService<FleetCoordinator>())));
        v1.MapGet("/clients", (ProxyState state, IServiceProvider services) => Results.Json(DescribeClients(state, services.GetService<FleetCoordinator>())));
        v1.MapGet("/audit", (string? family, string? limit, AuditLog audit) => ReadAudit(audit, family, limit));
    }

    private const int DefaultAuditLimit = 100;
    private const int MaxAuditLimit = 1000;

    /// <summary>
    /// This instance's audit log, newest first, optionally for one family. A family no longer configured still has
    /// its history, so an unknown name answers an empty list rather than 404.
    /// </summary>
    private static IResult ReadAudit(AuditLog audit, string? family, string? limitText)
    {
        var limit = DefaultAuditLimit;
        if (limitText is not null && (!int.TryParse(limitText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit)
            || limit < 1 || limit > MaxAuditLimit))
        {
            return BadRequest($"'limit' must be a whole number between 1 and {MaxAuditLimit}.");
        }
        // Entries are appended as their switches end; ordering by time keeps two that ended together in time order.
        var entries = audit.ReadAll().Reverse()
            .Where(e => family is null || string.Equals(e.Family, family, StringComparison.Ordinal))
            .OrderByDescending(e => e.Time)
            .Take(limit);
        return Results.Json(entries);
    }

    /// <summary>The window's mirror figures for the window view, or null while no mirror runs for the family here.</summary>
    private static WindowFigures? MirrorFiguresOf(MirrorSupervisor? mirrors, string family) =>
        mirrors?.Figures(family) is { } figures
            ? new WindowFigures($"{figures.State.ToString().ToLowerInvariant()}: {figures.From} to {figures.To}", figures.Totals.Copied,
                figures.Totals.LagRecords, figures.Totals.MaxLagMs, figures.Totals.StrayWrites)
            : null;

    /// <summary>The client inventory of this instance: open connections, then recently closed ones.</summary>
    private static object DescribeClients(ProxyState state, FleetCoordinator? fleet)
    {
        var instance = fleet?.InstanceId ?? $"{Environment.MachineName}:{state.Config.ListenerEndPoint.Port}";
        return state.Sessions.Inventory().Select(c => new
        {
            connection = c.ConnectionId,
            principal = c.Principal,
            clientId = c.ClientId,
            softwareName = c.SoftwareName,
            softwareVersion = c.SoftwareVersion,
            address = c.Address,
            instance,
            families = c.Uses.GroupBy(u => u.Family, StringComparer.Ordinal).Select(f => new
            {
                family = f.Key,
                producedTo = Clusters(f, ClientUse.Produce),
                fetchedFrom = Clusters(f, ClientUse.Fetch),
                committedTo = Clusters(f, ClientUse.Commit),
            }),
            connectedAt = c.ConnectedAt,
            lastActiveAt = c.LastActiveAt,
            closedAt = c.ClosedAt,
        });

        static string[] Clusters(IEnumerable<ClientRouteUse> uses, ClientUse use) =>
            [.. uses.Where(u => u.Use == use).Select(u => u.Cluster).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
    }

    /// <summary>The fleet's members as this instance sees them (the group's view and each member's last status record); itself alone without fleet mode.</summary>
    private static object DescribeFleet(ProxyState state, FleetCoordinator? fleet)
    {
        var advertised = $"{state.Config.AdvertisedHost}:{state.AdvertisedPort}";
        var routesEpoch = state.Routes.Current.Families.Sum(f => f.Epoch);
        if (fleet is null)
        {
            return new
            {
                mode = "single",
                leader = "self",
                epoch = 0,
                members = new[] { new { id = "self", advertised, routesEpoch, lastSeen = DateTimeOffset.UtcNow, self = true, live = true, heldFamilies = Array.Empty<string>() } },
            };
        }
        var live = fleet.Liveness.LiveInstances;
        var ids = live.Concat(fleet.Statuses.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        return new
        {
            mode = "fleet",
            leader = fleet.Liveness.LeaderInstance,
            epoch = fleet.Liveness.Generation,
            self = fleet.InstanceId,
            fenced = fleet.IsFenced,
            members = ids.Select(id =>
            {
                fleet.Statuses.TryGetValue(id, out var status);
                return new
                {
                    id,
                    advertised = status?.Advertised,
                    version = status?.Version,
                    routesEpoch = status?.RoutesEpoch,
                    lastSeen = status?.At,
                    self = id == fleet.InstanceId,
                    live = live.Contains(id),
                    heldFamilies = status?.HeldFamilies ?? [],
                };
            }),
        };
    }

    private static async Task<IResult> SwitchAsync(string name, HttpContext http, ProxyState state, SwitchCoordinator coordinator)
    {
        if (state.Routes.Current.Find(name) is null)
        {
            return UnknownFamily(name);
        }
        var (body, error) = await ReadBodyAsync(http, ["write", "read", "reason", "force", "timeoutMs", "dryRun"]).ConfigureAwait(false);
        if (error is not null)
        {
            return BadRequest(error);
        }
        if (!TryString(body, "write", out var write, out error) || !TryString(body, "read", out var read, out error)
            || !TryString(body, "reason", out var reason, out error) || !TryBool(body, "force", out var force, out error)
            || !TryBool(body, "dryRun", out var dryRun, out error) || !TryTimeout(body, out var timeout, out error))
        {
            return BadRequest(error!);
        }
        if (write is null && read is null)
        {
            return BadRequest("Give 'write' and/or 'read': the cluster(s) the family should move to.");
        }
        var outcome = await coordinator.SwitchAsync(new SwitchRequest(name, write, read, reason, force, timeout, Caller(http), dryRun)).ConfigureAwait(false);
        return Results.Json(outcome.Body, statusCode: outcome.Status);
    }

    /// <summary>The family's five gates: the last background computation, or computed now with <c>?refresh=true</c> (or when none exists yet).</summary>
    private static async Task<IResult> ScorecardAsync(string name, HttpContext http, ProxyState state, ScorecardService scorecards)
    {
        if (state.Routes.Current.Find(name) is null)
        {
            return UnknownFamily(name);
        }
        var refreshText = http.Request.Query["refresh"].ToString();
        if (!(refreshText.Length == 0 || bool.TryParse(refreshText, out _)))
        {
            return BadRequest("'refresh' must be true or false.");
        }
        var refresh = refreshText.Length > 0 && bool.Parse(refreshText);
        var card = (refresh ? null : scorecards.Latest(name)) ?? await scorecards.RefreshAsync(name).ConfigureAwait(false);
        return card is null ? UnknownFamily(name) : Results.Json(card);
    }

    private static async Task<IResult> RollbackAsync(string name, HttpContext http, ProxyState state, SwitchCoordinator coordinator)
    {
        if (state.Routes.Current.Find(name) is null)
        {
            return UnknownFamily(name);
        }
        var (body, error) = await ReadBodyAsync(http, ["reason", "force", "timeoutMs"]).ConfigureAwait(false);
        if (error is not null)
        {
            return BadRequest(error);
        }
        if (!TryString(body, "reason", out var reason, out error) || !TryBool(body, "force", out var force, out error)
            || !TryTimeout(body, out var timeout, out error))
        {
            return BadRequest(error!);
        }
        var outcome = await coordinator.RollbackAsync(name, reason, Caller(http), timeout, force).ConfigureAwait(false);
        return Results.Json(outcome.Body, statusCode: outcome.Status);
    }

    private static async Task<IResult> CloseAsync(string name, HttpContext http, ProxyState state, SwitchCoordinator coordinator)
    {
        if (state.Routes.Current.Find(name) is null)
        {
            return UnknownFamily(name);
        }
        var (body, error) = await ReadBodyAsync(http, ["reason", "timeoutMs"]).ConfigureAwait(false);
        if (error is not null)
        {
            return BadRequest(error);
        }
        if (!TryString(body, "reason", out var reason, out error) || !TryTimeout(body, out var timeout, out error))
        {
            return BadRequest(error!);
        }
        var outcome = await coordinator.CloseAsync(name, reason, Caller(http), timeout).ConfigureAwait(false);
        return Results.Json(outcome.Body, statusCode: outcome.Status);
    }

    /// <summary>
    /// With <c>Admin.Token</c> set, every call needs a bearer token: <c>Admin.Token</c> may do anything,
    /// <c>Admin.ReadToken</c> only read (GET); a read-only token on anything else is 403.
    /// </summary>
    private static async ValueTask<object?> RequireToken(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var config = context.HttpContext.RequestServices.GetRequiredService<ProxyState>().Config;
        if (config.AdminToken is { } token)
        {
            var http = context.HttpContext;
            var header = http.Request.Headers.Authorization.ToString();
            var presented = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..].Trim() : null;
            var role = presented is null ? null
                : Matches(presented, token) ? AdminRole
                : config.AdminReadToken is { } readToken && Matches(presented, readToken) ? ReadRole
                : null;
            if (role is null)
            {
                return Results.Json(new { error = presented is null ? "Missing bearer token." : "Invalid bearer token." },
                    statusCode: StatusCodes.Status401Unauthorized);
            }
            if (role == ReadRole && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method))
            {
                return Results.Json(new { error = "The read-only token (Admin.ReadToken) may not switch, roll back or close; use Admin.Token." },
                    statusCode: StatusCodes.Status403Forbidden);
            }
            http.Items[RoleItem] = role;
        }
        return await next(context).ConfigureAwait(false);
    }

    private const string RoleItem = "switchback.admin-role";
    private const string AdminRole = "admin token";
    private const string ReadRole = "read-only token";

    private static bool Matches(string presented, string token) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(token));

    private static async Task<(JsonElement? Body, string? Error)> ReadBodyAsync(HttpContext http, string[] allowed)
    {
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync(http.RequestAborted).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(text))
        {
            return (null, null);
        }
        JsonElement body;
        try
        {
            using var document = JsonDocument.Parse(text);
            body = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            return (null, $"Malformed JSON body: {e.Message}");
        }
        if (body.ValueKind != JsonValueKind.Object)
        {
            return (null, "The body must be a JSON object.");
        }
        foreach (var property in body.EnumerateObject())
        {
            if (!allowed.Contains(property.Name))
            {
                return (null, $"Unknown field '{property.Name}' (allowed: {string.Join(", ", allowed)}).");
            }
        }
        return (body, null);
    }

    private static bool TryString(JsonElement? body, string name, out string? value, out string? error)
    {
        value = null;
        error = null;
        if (body is not { } b || !b.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        if (element.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(element.GetString()))
        {
            error = $"'{name}' must be a non-empty string.";
            return false;
        }
        value = element.GetString();
        return true;
    }

    private static bool TryBool(JsonElement? body, string name, out bool value, out string? error)
    {
        value = false;
        error = null;
        if (body is not { } b || !b.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        if (element.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            error = $"'{name}' must be true or false.";
            return false;
        }
        value = element.GetBoolean();
        return true;
    }

    private static bool TryTimeout(JsonElement? body, out TimeSpan timeout, out string? error)
    {
        timeout = DefaultSwitchTimeout;
        error = null;
        if (body is not { } b || !b.TryGetProperty("timeoutMs", out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out var ms) || ms <= 0 || ms > MaxSwitchTimeout.TotalMilliseconds)
        {
            error = $"'timeoutMs' must be a whole number of milliseconds between 1 and {MaxSwitchTimeout.TotalMilliseconds:0}.";
            return false;
        }
        timeout = TimeSpan.FromMilliseconds(ms);
        return true;
    }

    private static string Caller(HttpContext http)
    {
        var agent = http.Request.Headers.UserAgent.ToString();
        // Which token acted, when tokens are configured: the audit's record of decision authority.
        var role = http.Items.TryGetValue(RoleItem, out var value) && value is string name ? $" with the {name}" : "";
        return $"{http.Connection.RemoteIpAddress}{(agent.Length > 0 ? $" ({agent})" : "")}{role}";
    }

    private static IResult BadRequest(string error) => Results.Json(new { error }, statusCode: StatusCodes.Status400BadRequest);

    private static IResult UnknownFamily(string name) =>
        Results.Json(new { error = $"Unknown family '{name}'." }, statusCode: StatusCodes.Status404NotFound);

    private static object Describe(ProxyState state, FamilyRoute family)
    {
        var config = state.Config.Families.First(f => f.Name == family.Family);
        var traffic = state.Traffic.For(family.Family);
        return new
        {
            name = family.Family,
            write = family.Route.Write,
            read = family.Route.Read,
            epoch = family.Epoch,
            state = traffic.Writes.IsHeld || traffic.Commits.IsHeld ? "switching" : "active",
            // Deprecated (use window.from): where a rollback returns to, as before rollback windows.
            previous = WindowView.Route(family.Window?.Origin),
            window = WindowView.Summary(family),
            topics = config.Topics.Select(t => t.Text),
            groups = config.Groups.Select(g => g.Text),
            transactionalIds = config.TransactionalIds.Select(t => t.Text),
            updatedAt = family.UpdatedAt,
        };
    }
}
