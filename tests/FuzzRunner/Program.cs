using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Tests.Fuzzing.Harness;

SocketEventThreads.PreferInlineCompletions(); // the proxy's threading, as `switchback run` has it

// Long run of the session fuzzer against a proxy in front of two in-process mock clusters.
//   dotnet run -c Release --project tests/FuzzRunner -- --iterations 1000000 [--start-seed N] [--parallelism P]
//   dotnet run -c Release --project tests/FuzzRunner -- --seed N        (replays one case and prints what it sent)
//   ... --show-close "unreachable"   (prints the seeds of cases whose close reason contains the text)
// Exit code 1 when any case was a finding; every finding is printed with the seed that reproduces it.

var options = ParseArguments(args);
const int MaxFrameBytes = 1024 * 1024;
const long MemoryGrowthBound = 256L * 1024 * 1024;

using var source = MockKafkaCluster.Start(3);
using var target = MockKafkaCluster.Start(3);
var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-fuzz-{Guid.NewGuid():N}");
var settings = DemoRunner.DemoSettings(source.BootstrapServers, target.BootstrapServers);
settings["Switchback:Listener:Bind"] = "127.0.0.1:0";
settings["Switchback:Admin:Bind"] = "127.0.0.1:0";
settings["Switchback:StateDirectory"] = stateDirectory;
settings["Switchback:Limits:MaxFrameBytes"] = MaxFrameBytes.ToString(CultureInfo.InvariantCulture);
settings["Switchback:Limits:UpstreamRequestTimeoutMs"] = "3000";
settings["Switchback:Limits:UpstreamConnectTimeoutMs"] = "1000";
var host = ProxyHost.Create(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), logging => logging.ClearProviders());
await host.StartAsync();
var exitCode = 0;
try
{
    var conversations = CaptureConversations.Load();
    var fuzzer = new SessionFuzzer(host.State) { AnswerWindow = TimeSpan.FromMilliseconds(500), CloseBound = TimeSpan.FromSeconds(10) };
    if (options.ReplaySeed is { } replay)
    {
        var fuzzCase = FrameMutator.Build(replay, conversations, MaxFrameBytes);
        Console.WriteLine($"seed {replay}: {fuzzCase.Description}");
        Console.WriteLine(Convert.ToHexString([.. fuzzCase.Chunks.SelectMany(c => c)]));
        var result = await fuzzer.RunAsync(fuzzCase);
        Console.WriteLine($"closed: {result.CloseReason}; {result.ResponseBytes} response bytes in {result.Elapsed.TotalMilliseconds:0} ms");
        Console.WriteLine(result.Finding is null ? "no finding" : $"FINDING: {result.Finding}");
        return result.Finding is null ? 0 : 1;
    }

    var findings = 0;
    var served = 0L;
    var closeReasons = new Dictionary<string, long>(StringComparer.Ordinal);
    var clock = Stopwatch.StartNew();
    var lastReport = TimeSpan.Zero;
    var memoryBaseline = GC.GetTotalMemory(forceFullCollection: true);
    var connectionsBaseline = host.State.Metrics.OpenConnections;
    for (long done = 0; done < options.Iterations;)
    {
        var batch = (int)Math.Min(options.Parallelism, options.Iterations - done);
        var first = options.StartSeed + done;
        var results = await Task.WhenAll(Enumerable.Range(0, batch)
            .Select(i => fuzzer.RunAsync(FrameMutator.Build(first + i, conversations, MaxFrameBytes))));
        done += batch;
        foreach (var result in results)
        {
            served += result.ResponseBytes > 0 ? 1 : 0;
            if (options.ShowCloseReason is { } wanted && result.CloseReason?.Contains(wanted, StringComparison.Ordinal) == true)
            {
                Console.WriteLine($"seed {result.Seed} [{result.Description}]: {result.CloseReason}");
            }
            var reason = CloseReasonKind(result.CloseReason);
            closeReasons[reason] = closeReasons.GetValueOrDefault(reason) + 1;
        }
        foreach (var result in results.Where(r => r.Finding is not null))
        {
            findings++;
            Console.WriteLine($"FINDING seed {result.Seed} [{result.Description}]: {result.Finding}");
        }
        if (clock.Elapsed - lastReport > TimeSpan.FromSeconds(10) || done == options.Iterations)
        {
            lastReport = clock.Elapsed;
            var memory = GC.GetTotalMemory(forceFullCollection: true);
            var growth = memory - memoryBaseline;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{done} cases ({done / clock.Elapsed.TotalSeconds:0}/s), {findings} findings, managed memory {memory / 1024 / 1024} MiB (+{growth / 1024 / 1024}), open connections {host.State.Metrics.OpenConnections - connectionsBaseline}"));
            if (growth > MemoryGrowthBound)
            {
                findings++;
                Console.WriteLine($"FINDING managed memory grew by {growth / 1024 / 1024} MiB after seeds {options.StartSeed}..{options.StartSeed + done - 1}");
                memoryBaseline = memory;
            }
        }
    }
    Console.WriteLine($"done: {options.Iterations} cases from seed {options.StartSeed}, {findings} findings, {served} got answers, {clock.Elapsed.TotalSeconds:0} s");
    foreach (var (reason, count) in closeReasons.OrderByDescending(r => r.Value))
    {
        Console.WriteLine($"  {count,9} closed: {reason}");
    }
    exitCode = findings == 0 ? 0 : 1;
}
finally
{
    await host.DisposeAsync();
    if (Directory.Exists(stateDirectory))
    {
        Directory.Delete(stateDirectory, recursive: true);
    }
}
return exitCode;

// Close reasons grouped by their wording, without the numbers that vary per case.
static string CloseReasonKind(string? logged)
{
    var reason = logged is null ? "(not logged)" : logged[(logged.IndexOf(": ", StringComparison.Ordinal) + 2)..];
    var cut = reason.IndexOfAny(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '(']);
    return cut > 0 ? reason[..cut].TrimEnd() : reason;
}

static RunOptions ParseArguments(string[] args)
{
    var options = new RunOptions();
    for (var i = 0; i < args.Length; i++)
    {
        var value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value.");
        options = args[i] switch
        {
            "--iterations" => options with { Iterations = long.Parse(value, CultureInfo.InvariantCulture) },
            "--start-seed" => options with { StartSeed = long.Parse(value, CultureInfo.InvariantCulture) },
            "--seed" => options with { ReplaySeed = long.Parse(value, CultureInfo.InvariantCulture) },
            "--parallelism" => options with { Parallelism = int.Parse(value, CultureInfo.InvariantCulture) },
            "--show-close" => options with { ShowCloseReason = value },
            _ => throw new ArgumentException($"Unknown argument {args[i]}; use --iterations, --start-seed, --seed, --parallelism or --show-close."),
        };
        i++;
    }
    return options;
}

internal sealed record RunOptions(long Iterations = 10_000, long StartSeed = 1, long? ReplaySeed = null, int Parallelism = 32, string? ShowCloseReason = null);
