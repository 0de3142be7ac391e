using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Switchback.Proxy.Tests.Integration;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// A proxy instance run as a child process (<c>dotnet switchback.dll run</c>, settings as <c>--key=value</c>
/// arguments) on fixed ports, so a test knows its addresses and can end it as a crash would: <see cref="Kill"/>
/// sends SIGKILL, and the instance leaves no LeaveGroup, no flush and no closing handshake behind.
/// </summary>
internal sealed class ProxyProcess : IAsyncDisposable
{
    private const int MaxBrokers = 8;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private ProxyProcess(Process process, int bootstrapPort, int adminPort)
    {
        _process = process;
        BootstrapPort = bootstrapPort;
        BrokerPortStart = bootstrapPort + 1;
        AdminUri = new Uri($"http://127.0.0.1:{adminPort}/");
    }

    public int BootstrapPort { get; }

    /// <summary>The first virtual broker's port; broker <c>i</c> of a cluster listens on the i-th port from here.</summary>
    public int BrokerPortStart { get; }

    public string BootstrapServers => $"127.0.0.1:{BootstrapPort}";

    public Uri AdminUri { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>True for the ports it listens on for Kafka clients: bootstrap and virtual brokers.</summary>
    public bool Owns(int port) => port >= BootstrapPort && port <= BootstrapPort + MaxBrokers;

    /// <summary>GET on its admin API; the answer's JSON body (it must answer 200).</summary>
    public async Task<JsonElement> GetAsync(string path)
    {
        using var response = await _http.GetAsync(new Uri(AdminUri, path));
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"GET {path} answered {(int)response.StatusCode}: {body}");
        }
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>What the process wrote to stdout and stderr so far (its log), for a failing test's output.</summary>
    public IEnumerable<string> Output => _output;

    /// <summary>
    /// Starts <c>switchback run</c> with <paramref name="settings"/> and fixed ports (bootstrap, then the broker range,
    /// then admin), and waits until it serves: its admin API answers (it binds only once it has joined the fleet and
    /// read the control log) with the instance unfenced, and <c>/readyz</c> says ready.
    /// </summary>
    public static async Task<ProxyProcess> StartAsync(IReadOnlyDictionary<string, string?> settings, TimeSpan timeout)
    {
        var bootstrap = FreePorts.Range(MaxBrokers + 2);
        var arguments = new Dictionary<string, string?>(settings, StringComparer.Ordinal)
        {
            ["Switchback:Listener:Bind"] = $"127.0.0.1:{bootstrap}",
            ["Switchback:Listener:BrokerPortStart"] = $"{bootstrap + 1}",
            ["Switchback:Listener:MaxBrokers"] = $"{MaxBrokers}",
            ["Switchback:Admin:Bind"] = $"127.0.0.1:{bootstrap + MaxBrokers + 1}",
        };
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "switchback.dll"));
        start.ArgumentList.Add("run");
        foreach (var (key, value) in arguments)
        {
            start.ArgumentList.Add($"--{key}={value}");
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start switchback run.");
        var proxy = new ProxyProcess(process, bootstrap, bootstrap + MaxBrokers + 1);
        // Both pipes are drained all along: a full pipe would block the child's logging.
        process.OutputDataReceived += (_, e) => proxy.Collect(e.Data);
        process.ErrorDataReceived += (_, e) => proxy.Collect(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await proxy.WaitUntilServingAsync(timeout);
        }
        catch
        {
            await proxy.DisposeAsync();
            throw;
        }
        return proxy;
    }

    private void Collect(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }

    private async Task WaitUntilServingAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var last = "nothing yet";
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"switchback run exited with {_process.ExitCode} before serving:\n{string.Join('\n', _output)}");
            }
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"switchback run did not serve within {timeout.TotalSeconds:0} s (last: {last}):\n{string.Join('\n', _output)}");
            }
            try
            {
                using var fleet = await _http.GetAsync(new Uri(AdminUri, "v1/fleet"));
                var body = await fleet.Content.ReadAsStringAsync();
                using var ready = await _http.GetAsync(new Uri(AdminUri, "readyz"));
                last = $"fleet {(int)fleet.StatusCode} {body}; readyz {(int)ready.StatusCode}";
                if (fleet.StatusCode == HttpStatusCode.OK && !JsonDocument.Parse(body).RootElement.GetProperty("fenced").GetBoolean()
                    && ready.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException e)
            {
                last = e.Message; // not listening yet
            }
            catch (TaskCanceledException e)
            {
                last = e.Message;
            }
            await Task.Delay(100);
        }
    }

    /// <summary>Ends the process with SIGKILL (<c>kill -9</c>) and waits until it is gone.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
        finally
        {
            _process.Dispose();
            _http.Dispose();
        }
    }
}
