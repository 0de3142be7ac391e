using System.Text.Json;

namespace Switchback.CaptureTool;

/// <summary>
/// Writes a capture as JSON Lines, keeping a bounded, varied sample of request/response exchanges per api key and
/// version so the files stay small.
/// </summary>
internal static class CaptureWriter
{
    /// <summary>Exchanges kept per (api key, api version); more only when their sizes differ from those kept.</summary>
    private const int MaxExchangesPerVersion = 6;

    private const int MaxDistinctExchangesPerVersion = 12;

    public static (int Written, int Captured, long Bytes) Write(string path, string client, IReadOnlyList<CapturedFrame> frames)
    {
        var kept = SelectExchanges(frames);
        using var stream = File.Create(path);
        var options = new JsonWriterOptions { Indented = false };
        var newline = "\n"u8.ToArray();
        var written = 0;
        foreach (var frame in frames.Where(kept.Contains))
        {
            using (var json = new Utf8JsonWriter(stream, options))
            {
                json.WriteStartObject();
                json.WriteString("client", client);
                json.WriteNumber("conn", frame.Connection);
                json.WriteString("dir", frame.Direction == FrameDirection.Request ? "request" : "response");
                json.WriteNumber("apiKey", frame.ApiKey);
                json.WriteNumber("apiVersion", frame.ApiVersion);
                json.WriteNumber("correlationId", frame.CorrelationId);
                json.WriteString("hex", Convert.ToHexStringLower(frame.Body));
                json.WriteEndObject();
            }
            stream.Write(newline);
            written++;
        }
        return (written, frames.Count, stream.Length);
    }

    private static HashSet<CapturedFrame> SelectExchanges(IReadOnlyList<CapturedFrame> frames)
    {
        // An exchange is a request and its response (if any) on one connection.
        var exchanges = frames
            .GroupBy(f => (f.Connection, f.CorrelationId, f.ApiKey))
            .Select(g => g.OrderBy(f => f.Sequence).ToList())
            .OrderBy(e => e[0].Sequence);

        var kept = new HashSet<CapturedFrame>(ReferenceEqualityComparer.Instance);
        var perVersion = new Dictionary<(short, short), List<(int, int)>>();
        foreach (var exchange in exchanges)
        {
            var key = (exchange[0].ApiKey, exchange[0].ApiVersion);
            var shape = (Length(exchange, FrameDirection.Request), Length(exchange, FrameDirection.Response));
            if (!perVersion.TryGetValue(key, out var shapes))
            {
                perVersion[key] = shapes = [];
            }
            var keep = shapes.Count < MaxExchangesPerVersion
                || (shapes.Count < MaxDistinctExchangesPerVersion && !shapes.Contains(shape));
            if (keep)
            {
                shapes.Add(shape);
                kept.UnionWith(exchange);
            }
        }
        return kept;
    }

    private static int Length(List<CapturedFrame> exchange, FrameDirection direction) =>
        exchange.FirstOrDefault(f => f.Direction == direction)?.Body.Length ?? -1;
}
