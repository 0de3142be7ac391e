using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Switchback.Proxy.Routing;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Admin;

/// <summary>The admin HTTP API (see CONTRACT.md): families, health and readiness.</summary>
public static class AdminEndpoints
{
    public static void Map(WebApplication app)
    {
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", (ProxyState state) =>
        {
            var problems = state.Clusters.Where(c => c.View is null || c.LastError is not null)
                .Select(c => $"cluster '{c.Name}' unreachable: {c.LastError ?? "no metadata yet"}").ToList();
            return problems.Count == 0
                ? Results.Text("ready")
                : Results.Text(string.Join("\n", problems), statusCode: StatusCodes.Status503ServiceUnavailable);
        });

        var v1 = app.MapGroup("/v1");
        v1.MapGet("/families", (ProxyState state) => Results.Json(state.Routes.Current.Families.Select(f => Describe(state, f))));
        v1.MapGet("/families/{name}", (string name, ProxyState state) =>
            state.Routes.Current.Find(name) is { } family
                ? Results.Json(Describe(state, family))
                : Results.Json(new { error = $"Unknown family '{name}'." }, statusCode: StatusCodes.Status404NotFound));
    }

    private static object Describe(ProxyState state, FamilyRoute family)
    {
        var config = state.Config.Families.First(f => f.Name == family.Family);
        return new
        {
            name = family.Family,
            write = family.Route.Write,
            read = family.Route.Read,
            epoch = family.Epoch,
            state = "active",
            topics = config.Topics.Select(t => t.Text),
            groups = config.Groups.Select(g => g.Text),
            transactionalIds = config.TransactionalIds.Select(t => t.Text),
            updatedAt = family.UpdatedAt,
        };
    }
}
