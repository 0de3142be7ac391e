using System.Text.Json;

namespace Switchback.Protocol.Tests.Captures;

/// <summary>Which way a captured frame travelled.</summary>
public enum CaptureDirection
{
    Request,
    Response,
}

/// <summary>
/// One frame captured between a real client and the librdkafka mock cluster: the frame body without its 4-byte
/// size prefix (so it starts with the request or response header). Responses carry the api key and version of the
/// request they answer; -1 when the request was not seen.
/// </summary>
public sealed record CapturedFrame(
    string Client,
    int Connection,
    CaptureDirection Direction,
    short ApiKey,
    short ApiVersion,
    int CorrelationId,
    byte[] Bytes)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{Client} conn {Connection} {Direction} apiKey {ApiKey} v{ApiVersion} corr {CorrelationId} ({Bytes.Length} bytes)";
}

/// <summary>Reads the JSON Lines capture files in the test output's Captures folder (see Captures/README.md).</summary>
public static class CaptureFile
{
    /// <summary>The clients a capture is committed for, one file each.</summary>
    public static IReadOnlyList<string> Clients { get; } = ["confluent", "kcat", "kafka-python", "kafkajs"];

    /// <summary>The folder the capture files are copied to next to the test assembly.</summary>
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "Captures");

    /// <summary>The path of <paramref name="client"/>'s capture file.</summary>
    public static string PathFor(string client) => Path.Combine(Directory, $"{client}.jsonl");

    /// <summary>Every frame of one client's capture, in capture order.</summary>
    public static IEnumerable<CapturedFrame> Load(string client)
    {
        var path = PathFor(client);
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0)
            {
                continue;
            }
            yield return Parse(line, $"{path}:{lineNumber}");
        }
    }

    /// <summary>Every frame of every client's capture.</summary>
    public static IEnumerable<CapturedFrame> LoadAll() => Clients.SelectMany(Load);

    /// <summary>Request/response pairs (response null when none was captured), for round-trip and golden tests.</summary>
    public static IEnumerable<(CapturedFrame Request, CapturedFrame? Response)> Exchanges(string client)
    {
        var frames = Load(client).ToList();
        var responses = frames
            .Where(f => f.Direction == CaptureDirection.Response)
            .GroupBy(f => (f.Connection, f.CorrelationId))
            .ToDictionary(g => g.Key, g => g.First());
        return frames
            .Where(f => f.Direction == CaptureDirection.Request)
            .Select(request => (request, responses.GetValueOrDefault((request.Connection, request.CorrelationId))));
    }

    private static CapturedFrame Parse(string line, string where)
    {
        try
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            var direction = root.GetProperty("dir").GetString() switch
            {
                "request" => CaptureDirection.Request,
                "response" => CaptureDirection.Response,
                var other => throw new InvalidDataException($"unknown dir '{other}'"),
            };
            return new CapturedFrame(
                root.GetProperty("client").GetString() ?? throw new InvalidDataException("client is null"),
                root.GetProperty("conn").GetInt32(),
                direction,
                root.GetProperty("apiKey").GetInt16(),
                root.GetProperty("apiVersion").GetInt16(),
                root.GetProperty("correlationId").GetInt32(),
                Convert.FromHexString(root.GetProperty("hex").GetString() ?? string.Empty));
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"{where}: malformed capture record: {ex.Message}", ex);
        }
    }
}
