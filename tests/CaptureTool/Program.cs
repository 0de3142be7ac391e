using Switchback.CaptureTool;

// Captures real Kafka frames from four client implementations, each talking to a fresh librdkafka mock cluster
// through recording relays. Usage: dotnet run --project tests/CaptureTool -- <out dir> [client ...]
var outDirectory = args.Length > 0 ? args[0] : Path.Combine("tests", "Protocol.Tests", "Captures");
var selected = args.Skip(1).ToHashSet(StringComparer.OrdinalIgnoreCase);

var drivers = new (string Client, Func<CaptureSession, Action<string>, Task> Run)[]
{
    ("confluent", ConfluentDriver.RunAsync),
    ("kcat", ExternalClientDriver.RunKcatAsync),
    ("kafka-python", ExternalClientDriver.RunKafkaPythonAsync),
    ("kafkajs", ExternalClientDriver.RunKafkajsAsync),
};

Directory.CreateDirectory(outDirectory);
var failures = 0;
foreach (var (client, run) in drivers.Where(d => selected.Count == 0 || selected.Contains(d.Client)))
{
    void Log(string line) => Console.WriteLine($"[{client}] {line}");
    IReadOnlyList<CapturedFrame> frames;
    await using (var session = CaptureSession.Start(client))
    {
        try
        {
            await run(session, Log);
        }
        catch (Exception ex)
        {
            failures++;
            Log($"FAILED: {ex.Message}");
        }
        // Let the brokers' last responses reach the relays before they close.
        await Task.Delay(300);
        await session.DisposeAsync();
        frames = session.Recorder.Frames;
    }

    var path = Path.Combine(outDirectory, $"{client}.jsonl");
    var (written, captured, bytes) = CaptureWriter.Write(path, client, frames);
    Log($"{path}: {written} of {captured} frames, {bytes / 1024.0:F1} KiB");
    var versions = frames
        .Where(f => f.Direction == FrameDirection.Request)
        .GroupBy(f => f.ApiKey)
        .OrderBy(g => g.Key)
        .Select(g => $"{g.Key}:v{string.Join("/", g.Select(f => f.ApiVersion).Distinct().Order())}");
    Log($"requests (apiKey:versions): {string.Join(" ", versions)}");
}

return failures == 0 ? 0 : 1;
