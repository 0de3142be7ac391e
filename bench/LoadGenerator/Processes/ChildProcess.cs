using System.Diagnostics;

namespace Switchback.Bench.LoadGenerator;

/// <summary>A process this run started: its output goes to a log file, and disposing it ends that one process.</summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly object _logGate = new();
    private readonly Action<string>? _onOutput;

    private ChildProcess(Process process, StreamWriter log, Action<string>? onOutput)
    {
        _process = process;
        _log = log;
        _onOutput = onOutput;
    }

    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>The process's stdin, for processes that wait for a "stop" line.</summary>
    public StreamWriter Input => _process.StandardInput;

    public static ChildProcess Start(string fileName, IEnumerable<string> arguments, string logPath, Action<string>? onOutput = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        var log = new StreamWriter(logPath, append: false) { AutoFlush = true };
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(process, log, onOutput);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data, isError: false);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data, isError: true);
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {fileName}");
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    private void OnLine(string? line, bool isError)
    {
        if (line is null)
        {
            return;
        }
        lock (_logGate)
        {
            _log.WriteLine(isError ? "! " + line : line);
        }
        if (!isError)
        {
            _onOutput?.Invoke(line);
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                try
                {
                    _process.StandardInput.WriteLine("stop");
                    _process.StandardInput.Close();
                }
                catch (IOException)
                {
                }
                if (!_process.WaitForExit(TimeSpan.FromSeconds(5)))
                {
                    _process.Kill();
                    _process.WaitForExit(TimeSpan.FromSeconds(5));
                }
            }
        }
        finally
        {
            _process.Dispose();
            lock (_logGate)
            {
                _log.Dispose();
            }
        }
    }
}
