using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Switchback.Soak;

/// <summary>The proxy's Release build run as its own process, so that its memory and handles can be read from /proc.</summary>
public sealed partial class ProxyProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly Lock _logGate = new();
    private readonly TaskCompletionSource<(string Bootstrap, Uri Admin)> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ProxyProcess(Process process, string logPath)
    {
        _process = process;
        LogPath = logPath;
        _log = new StreamWriter(logPath) { AutoFlush = true };
    }

    public int Pid => _process.Id;
    public string BootstrapServers { get; private set; } = "";
    public Uri AdminUri { get; private set; } = new("http://127.0.0.1/");
    public string LogPath { get; }
    public bool HasExited => _process.HasExited;

    /// <summary>Writes the configuration, starts <c>dotnet switchback.dll run --config</c> and waits for its listening line.</summary>
    public static async Task<ProxyProcess> StartAsync(string proxyDll, string workDirectory, string sourceBootstrap, string targetBootstrap)
    {
        var configPath = Path.Combine(workDirectory, "switchback.json");
        await File.WriteAllTextAsync(configPath, Configuration(Path.Combine(workDirectory, "state"), sourceBootstrap, targetBootstrap));
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDirectory,
        };
        foreach (var arg in new[] { proxyDll, "run", "--config", configPath })
        {
            start.ArgumentList.Add(arg);
        }
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var proxy = new ProxyProcess(process, Path.Combine(workDirectory, "proxy.log"));
        process.OutputDataReceived += (_, e) => proxy.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => proxy.OnLine(e.Data);
        process.Exited += (_, _) => proxy._ready.TrySetException(new InvalidOperationException($"the proxy exited with code {process.ExitCode}; see {proxy.LogPath}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var (bootstrap, admin) = await proxy._ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
        proxy.BootstrapServers = bootstrap;
        proxy.AdminUri = admin;
        return proxy;
    }

    /// <summary>Reads VmRSS, VmHWM, the thread count and the number of open descriptors of the proxy.</summary>
    public ProcSample ReadProc()
    {
        long rss = -1, hwm = -1, threads = -1;
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = Kilobytes(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                hwm = Kilobytes(line);
            }
            else if (line.StartsWith("Threads:", StringComparison.Ordinal))
            {
                threads = long.Parse(line["Threads:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
        }
        var fds = Directory.GetFileSystemEntries($"/proc/{Pid}/fd");
        var sockets = 0;
        foreach (var fd in fds)
        {
            try
            {
                if (new FileInfo(fd).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true)
                {
                    sockets++;
                }
            }
            catch (IOException)
            {
                // Closed between listing and reading.
            }
        }
        return new ProcSample(rss, hwm, threads, fds.Length, sockets);
    }

    /// <summary>Log lines at warning level or above, counted by level and category, with the first distinct error lines.</summary>
    public ProxyLogSummary SummariseLog()
    {
        lock (_logGate)
        {
            _log.Flush();
        }
        using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var counts = new Dictionary<(string, string), int>();
        var examples = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string? pending = null;
        while (reader.ReadLine() is { } line)
        {
            if (pending is not null)
            {
                // The console logger writes an exception on the lines after the message.
                var text = line.StartsWith(' ') || !TimestampedLine().IsMatch(line) ? $"{pending} / {line.Trim()}" : pending;
                if (examples.Count < 8 && seen.Add(ConnectionId().Replace(text, "<id>")))
                {
                    examples.Add(text.Length > 400 ? text[..400] : text);
                }
                pending = null;
            }
            var match = ProblemLine().Match(line);
            if (match.Success)
            {
                var key = (match.Groups[1].Value, match.Groups[2].Value);
                counts[key] = counts.GetValueOrDefault(key) + 1;
                if (match.Groups[1].Value is "fail" or "crit")
                {
                    pending = line;
                }
            }
        }
        if (pending is not null && examples.Count < 8 && seen.Add(ConnectionId().Replace(pending, "<id>")))
        {
            examples.Add(pending);
        }
        return new ProxyLogSummary([.. counts.OrderByDescending(c => c.Value).Select(c => (c.Key.Item1, c.Key.Item2, c.Value))], examples);
    }

    /// <summary>Stops the proxy with SIGTERM (a graceful shutdown), then kills it if it has not exited in 15 s.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _ = Kill(_process.Id, SigTerm);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        _process.Dispose();
        lock (_logGate)
        {
            _log.Dispose();
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_logGate)
        {
            _log.WriteLine(line);
        }
        var match = ListeningLine().Match(line);
        if (match.Success)
        {
            _ready.TrySetResult((match.Groups[1].Value, new Uri(match.Groups[2].Value)));
        }
    }

    private static long Kilobytes(string line) =>
        long.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Replace("kB", "", StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture);

    private static string Configuration(string stateDirectory, string sourceBootstrap, string targetBootstrap) =>
        JsonSerializer.Serialize(new
        {
            Switchback = new
            {
                Listener = new { Bind = "127.0.0.1:0", AdvertisedHost = "127.0.0.1", BrokerPortStart = 0 },
                Admin = new { Bind = "127.0.0.1:0" },
                StateDirectory = stateDirectory,
                Clusters = new
                {
                    source = new { BootstrapServers = sourceBootstrap },
                    target = new { BootstrapServers = targetBootstrap },
                },
                Families = new object[]
                {
                    new { Name = "orders", Topics = new[] { "orders.*" }, Groups = new[] { "orders-*" }, Write = "source", Read = "source" },
                    new { Name = "payments", Topics = new[] { "payments.*" }, Groups = new[] { "payments-*" }, Write = "target", Read = "target" },
                },
                Default = new { Write = "source", Read = "source" },
            },
        }, new JsonSerializerOptions { WriteIndented = true });

    private const int SigTerm = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [GeneratedRegex(@"switchback listening on (\S+), admin (\S+)")]
    private static partial Regex ListeningLine();

    // The proxy's single-line console format: "HH:mm:ss.fff warn: Category[event] message".
    [GeneratedRegex(@"^\S+ (warn|fail|crit): ([^\[\s]+)")]
    private static partial Regex ProblemLine();

    [GeneratedRegex(@"^\d\d:\d\d:\d\d\.\d{3} ")]
    private static partial Regex TimestampedLine();

    [GeneratedRegex(@"\b0HN[0-9A-Z]{10}\b|^\S+ ")]
    private static partial Regex ConnectionId();
}

/// <summary>The proxy log's lines at warning level or above, counted by level and category, and example error lines.</summary>
public sealed record ProxyLogSummary(IReadOnlyList<(string Level, string Category, int Count)> Counts, IReadOnlyList<string> ErrorExamples);

/// <summary>One reading of the proxy's /proc entries (kB, counts).</summary>
public readonly record struct ProcSample(long RssKb, long HwmKb, long Threads, long OpenFds, long Sockets);
