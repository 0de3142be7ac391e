using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Switchback.Proxy.Admin;

/// <summary>A command-line failure with the one-line reason printed on stderr.</summary>
public sealed class AdminCliException(string message) : Exception(message);

/// <summary><c>switchback routes | status | switch | rollback | close | fleet | clients</c>: thin clients of the admin HTTP API.</summary>
public static class AdminCli
{
    /// <summary>Sends <paramref name="request"/> to the admin API and prints the answer; a failure throws <see cref="AdminCliException"/>.</summary>
    public static async Task<int> RunAsync(AdminRequest request, CancellationToken cancellationToken)
    {
        var (command, baseUri, token, family, write, read, reason, force, timeoutMs, dryRun) = request;
        using var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(120) };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("switchback-cli");
        if (!string.IsNullOrEmpty(token))
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        HttpResponseMessage response;
        try
        {
            switch (command)
            {
                case "routes":
                    response = await http.GetAsync("v1/families", cancellationToken);
                    break;
                case "fleet":
                    response = await http.GetAsync("v1/fleet", cancellationToken);
                    break;
                case "clients":
                    response = await http.GetAsync("v1/clients", cancellationToken);
                    break;
                case "status":
                    RequireFamily(family, command);
                    response = await http.GetAsync($"v1/families/{Uri.EscapeDataString(family!)}/scorecard?refresh=true", cancellationToken);
                    break;
                case "switch":
                    RequireFamily(family, command);
                    response = await http.PostAsJsonAsync($"v1/families/{Uri.EscapeDataString(family!)}/switch",
                        dryRun ? new { write, read, reason, force, timeoutMs, dryRun } : (object)new { write, read, reason, force, timeoutMs }, cancellationToken);
                    break;
                case "close":
                    RequireFamily(family, command);
                    response = await http.PostAsJsonAsync($"v1/families/{Uri.EscapeDataString(family!)}/close",
                        new { reason, timeoutMs }, cancellationToken);
                    break;
                default:
                    RequireFamily(family, command);
                    response = await http.PostAsJsonAsync($"v1/families/{Uri.EscapeDataString(family!)}/rollback",
                        new { reason, force, timeoutMs }, cancellationToken);
                    break;
            }
        }
        catch (HttpRequestException e)
        {
            throw new AdminCliException($"cannot reach the admin API at {baseUri}: {e.Message}");
        }
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            if (response.StatusCode == System.Net.HttpStatusCode.Conflict && FailedGates(body) is { } failed)
            {
                // The evidence goes to stdout, so stderr keeps its one-line reason.
                PrintFailedGates(failed);
            }
            throw new AdminCliException($"{(int)response.StatusCode} {response.ReasonPhrase}: {OneLine(body)}");
        }
        if (command == "routes")
        {
            PrintRoutes(body);
        }
        else if (command == "fleet")
        {
            PrintFleet(body);
        }
        else if (command == "clients")
        {
            PrintClients(body);
        }
        else if (command == "status")
        {
            PrintScorecard(body);
        }
        else
        {
            Console.WriteLine(JsonNode.Parse(body)?.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) ?? body);
        }
        return 0;
    }

    private static void RequireFamily(string? family, string command)
    {
        if (string.IsNullOrWhiteSpace(family))
        {
            throw new AdminCliException($"{command} needs a FAMILY");
        }
    }

    private static string OneLine(string body)
    {
        try
        {
            if (JsonNode.Parse(body) is JsonObject o && o["error"] is { } error)
            {
                return error.ToString();
            }
        }
        catch (JsonException)
        {
        }
        return body.ReplaceLineEndings(" ").Trim();
    }

    private static JsonArray? FailedGates(string body)
    {
        try
        {
            return JsonNode.Parse(body) is JsonObject o && o["failed"] is JsonArray { Count: > 0 } failed ? failed : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Each failed readiness gate with its summary, then its evidence as an indented table (bounded).</summary>
    private static void PrintFailedGates(JsonArray failed)
    {
        const int MaxEvidenceRows = 20;
        var gateWidth = Math.Max("GATE".Length, failed.Max(g => Text(g?["gate"] ?? g?["name"]).Length));
        Console.WriteLine($"{"GATE".PadRight(gateWidth)}  SUMMARY");
        foreach (var gate in failed)
        {
            Console.WriteLine($"{Text(gate?["gate"] ?? gate?["name"]).PadRight(gateWidth)}  {Text(gate?["summary"])}");
            var evidence = gate?["evidence"];
            var rows = evidence switch
            {
                null => [],
                JsonArray items => items.ToList(),
                _ => [evidence],
            };
            if (rows.Count == 0)
            {
                continue;
            }
            if (rows.All(r => r is JsonObject))
            {
                var objects = rows.Cast<JsonObject>().ToList();
                var columns = objects.SelectMany(o => o.Select(p => p.Key)).Distinct(StringComparer.Ordinal).ToList();
                var shown = objects.Take(MaxEvidenceRows).ToList();
                var widths = columns.Select(c => Math.Max(c.Length, shown.Max(o => Text(o[c]).Length))).ToList();
                var numeric = columns.Select(c => shown.All(o => o[c] is null || o[c]!.GetValueKind() == JsonValueKind.Number)).ToList();
                string Row(IEnumerable<string> cells) =>
                    "    " + string.Join("  ", cells.Select((cell, i) => numeric[i] ? cell.PadLeft(widths[i]) : cell.PadRight(widths[i]))).TrimEnd();
                Console.WriteLine(Row(columns));
                foreach (var o in shown)
                {
                    Console.WriteLine(Row(columns.Select(c => Text(o[c]))));
                }
            }
            else
            {
                foreach (var row in rows.Take(MaxEvidenceRows))
                {
                    Console.WriteLine($"    {Text(row)}");
                }
            }
            if (rows.Count > MaxEvidenceRows)
            {
                Console.WriteLine($"    ... and {rows.Count - MaxEvidenceRows} more");
            }
        }

        static string Text(JsonNode? node) => node switch
        {
            null => "-",
            JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
            _ => node.ToJsonString(),
        };
    }

    private static void PrintFleet(string body)
    {
        var fleet = JsonNode.Parse(body)!;
        Console.WriteLine($"mode {fleet["mode"]}, leader {fleet["leader"]}, generation {fleet["epoch"]}");
        Console.WriteLine($"{"INSTANCE",-24} {"ADVERTISED",-22} {"ROUTES",6} {"LAST SEEN",-28} HELD");
        foreach (var member in fleet["members"]!.AsArray())
        {
            var held = member!["heldFamilies"]?.AsArray().Select(f => f!.ToString()) ?? [];
            Console.WriteLine($"{member["id"],-24} {member["advertised"],-22} {member["routesEpoch"],6} {member["lastSeen"],-28} {string.Join(",", held)}");
        }
    }

    /// <summary>The scorecard as a table: one line per gate with its status and summary.</summary>
    private static void PrintScorecard(string body)
    {
        var card = JsonNode.Parse(body)!;
        static string Route(JsonNode? route) => route is null ? "-" : $"write={route["write"]} read={route["read"]}";
        Console.WriteLine($"family {card["family"]}: {Route(card["route"])}; takes over: {Route(card["takeover"])}; old cluster: {card["oldCluster"]}; computed {card["computedAt"]}");
        var gates = card["gates"]!.AsArray();
        var width = Math.Max("GATE".Length, gates.Max(g => g!["gate"]!.ToString().Length));
        Console.WriteLine($"{"GATE".PadRight(width)}  {"STATUS",-7}  SUMMARY");
        foreach (var gate in gates)
        {
            Console.WriteLine($"{gate!["gate"]!.ToString().PadRight(width)}  {gate["status"],-7}  {gate["summary"]}");
        }
    }

    private static void PrintRoutes(string body)
    {
        Console.WriteLine($"{"FAMILY",-20} {"WRITE",-12} {"READ",-12} {"EPOCH",6}  STATE");
        foreach (var family in JsonNode.Parse(body)!.AsArray())
        {
            Console.WriteLine($"{family!["name"],-20} {family["write"],-12} {family["read"],-12} {family["epoch"],6}  {family["state"]}");
        }
    }

    /// <summary>One line per connection: who, with what software, and where it produced (P), fetched (F) and committed (C).</summary>
    private static void PrintClients(string body)
    {
        Console.WriteLine($"{"CLIENT ID",-24} {"SOFTWARE",-22} {"ADDRESS",-22} {"CONNECTED",-20} {"CLOSED",-20} ROUTES");
        foreach (var client in JsonNode.Parse(body)!.AsArray())
        {
            var software = $"{client!["softwareName"]} {client["softwareVersion"]}".Trim();
            var routes = client["families"]!.AsArray().Select(f =>
            {
                static string Uses(JsonNode? clusters, string use) =>
                    string.Concat(clusters!.AsArray().Select(c => $" {use}:{c}"));
                return $"{f!["family"]}[{(Uses(f["producedTo"], "P") + Uses(f["fetchedFrom"], "F") + Uses(f["committedTo"], "C")).Trim()}]";
            });
            Console.WriteLine($"{client["clientId"],-24} {(software.Length == 0 ? "-" : software),-22} {client["address"],-22} {Time(client["connectedAt"]),-20} {Time(client["closedAt"]),-20} {string.Join(" ", routes)}");
        }

        static string Time(JsonNode? node) => node is null ? "-" : DateTimeOffset.Parse(node.ToString(), System.Globalization.CultureInfo.InvariantCulture).ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
    }
}
