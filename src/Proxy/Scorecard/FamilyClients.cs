using Switchback.Proxy.Listening;

namespace Switchback.Proxy.Scorecard;

/// <summary>
/// Counts clients, not connections, from the client inventory: a client opens one connection per broker it uses,
/// so connections with the same client id from the same host count once.
/// </summary>
public static class FamilyClients
{
    /// <summary>The open connections that used <paramref name="family"/> (any use).</summary>
    public static List<ClientSnapshot> Using(IEnumerable<ClientSnapshot> inventory, string family) =>
        [.. inventory.Where(c => c.ClosedAt is null && c.Uses.Any(u => u.Family == family))];

    /// <summary>How many distinct clients (client id and host) used <paramref name="family"/> that way.</summary>
    public static int Count(IEnumerable<ClientSnapshot> connections, string family, ClientUse use) =>
        connections.Where(c => c.Uses.Any(u => u.Family == family && u.Use == use)).Select(Key).Distinct(StringComparer.Ordinal).Count();

    private static string Key(ClientSnapshot c)
    {
        var colon = c.Address.LastIndexOf(':');
        return $"{c.ClientId}@{(colon > 0 ? c.Address[..colon] : c.Address)}";
    }
}
