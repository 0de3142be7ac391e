using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using static Switchback.Proxy.Tests.Switching.TransactionalWorkloadTests;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// A transactional producer of another client (a driver script in <c>Switching/Clients</c>) running as a child process
/// until its stop file appears. Its stdout lines are read as they come into a <see cref="TransactionLog"/>:
/// <c>C n v1,v2,...</c> committed, <c>A n ...</c> aborted, <c>E ...</c> an error that reached the application,
/// <c>T ...</c> an error the client reported and recovered from by itself.
/// </summary>
internal sealed class ForeignTransactionalProducer : IAsyncDisposable
{
    private const int StderrLinesKept = 200;

    private readonly Process _process;
    private readonly string _stopFile;
    private readonly ConcurrentQueue<string> _stderr = new();
    private readonly Task _stdoutRead;
    private readonly Task _stderrRead;

    private ForeignTransactionalProducer(Process process, string stopFile, TransactionLog log)
    {
        _process = process;
        _stopFile = stopFile;
        Log = log;
        _stdoutRead = ReadStdoutAsync();
        _stderrRead = ReadStderrAsync();
        Running = RunAsync();
    }

    public TransactionLog Log { get; }

    /// <summary>Completes when the process has exited and all it printed was read.</summary>
    public Task Running { get; }

    /// <summary>The last lines the process wrote to stderr (logs, a stack trace), for a failure message.</summary>
    public string StderrTail => string.Join('\n', _stderr);

    /// <summary>
    /// Starts <paramref name="fileName"/> with <paramref name="arguments"/> followed by the path of its stop file, which
    /// the script polls between transactions.
    /// </summary>
    public static ForeignTransactionalProducer Start(string fileName, IEnumerable<string> arguments, TransactionLog log,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var stopFile = Path.Combine(Path.GetTempPath(), $"switchback-foreign-txn-{Guid.NewGuid():N}.stop");
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.ArgumentList.Add(stopFile);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        process.StandardInput.Close();
        return new ForeignTransactionalProducer(process, stopFile, log);
    }

    /// <summary>
    /// Creates the stop file and waits for the process to finish its transaction and exit; returns its exit code. The
    /// wait allows for a commit that is itself retrying (the drivers give one 30 s).
    /// </summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        await File.WriteAllTextAsync(_stopFile, "");
        try
        {
            await Running.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            _process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{_process.StartInfo.FileName} did not stop within {timeout.TotalSeconds} s of its stop file; stderr:\n{StderrTail}");
        }
        return _process.ExitCode;
    }

    private async Task RunAsync()
    {
        await _process.WaitForExitAsync();
        await Task.WhenAll(_stdoutRead, _stderrRead);
    }

    private async Task ReadStdoutAsync()
    {
        while (await _process.StandardOutput.ReadLineAsync() is { } line)
        {
            Parse(line);
        }
    }

    private void Parse(string line)
    {
        var parts = line.Split(' ', 3);
        switch (parts[0])
        {
            case "C" or "A" when parts.Length == 3 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var number):
                (parts[0] == "C" ? Log.Committed : Log.Aborted).Enqueue(new Transaction(number, [.. parts[2].Split(',')]));
                break;
            case "E":
                Log.Errors.Enqueue(line.Length > 2 ? line[2..] : line);
                break;
            case "T":
                Log.Transient.Enqueue(line.Length > 2 ? line[2..] : line);
                break;
            default:
                Log.Errors.Enqueue($"unexpected output of the driver: {line}");
                break;
        }
    }

    private async Task ReadStderrAsync()
    {
        while (await _process.StandardError.ReadLineAsync() is { } line)
        {
            _stderr.Enqueue(line);
            while (_stderr.Count > StderrLinesKept)
            {
                _stderr.TryDequeue(out _);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        try
        {
            await Running.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            // Killed; its pipes close with it.
        }
        _process.Dispose();
        File.Delete(_stopFile);
    }
}
