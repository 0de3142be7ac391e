using System.Diagnostics;
using System.Globalization;

namespace Switchback.Proxy.Tests.Integration;

/// <summary>
/// Runs clients nobody on this team wrote (kcat, kafka-python, kafkajs) as child processes, installing them first
/// when they are missing. A client that cannot be installed fails the test with the reason: these tests prove
/// compatibility, so they must not pass by not running.
/// </summary>
public static class ExternalClients
{
    public const string KafkajsVersion = "2.2.4";
    public const string SystemPython = "/usr/bin/python3";

    private static readonly SemaphoreSlim s_install = new(1, 1);

    public static string ClientsDirectory => Path.Combine(AppContext.BaseDirectory, "Integration", "Clients");

    public static async Task<string> EnsureKcatAsync()
    {
        await s_install.WaitAsync();
        try
        {
            if (FindOnPath("kcat") is { } found)
            {
                return found;
            }
            await AptInstallAsync("kcat", "kcat");
            return FindOnPath("kcat") ?? throw new InvalidOperationException("apt-get installed kcat, but no kcat is on PATH.");
        }
        finally
        {
            s_install.Release();
        }
    }

    public static async Task EnsureKafkaPythonAsync()
    {
        await s_install.WaitAsync();
        try
        {
            if (!File.Exists(SystemPython))
            {
                await AptInstallAsync("python3", "python3");
            }
            if ((await RunAsync(SystemPython, ["-c", "import kafka"], timeout: TimeSpan.FromSeconds(30))).ExitCode == 0)
            {
                return;
            }
            await AptInstallAsync("python3-kafka", "the kafka-python module");
            var check = await RunAsync(SystemPython, ["-c", "import kafka"], timeout: TimeSpan.FromSeconds(30));
            if (check.ExitCode != 0)
            {
                throw new InvalidOperationException($"python3-kafka is installed, but {SystemPython} cannot import kafka: {check.Errors}");
            }
        }
        finally
        {
            s_install.Release();
        }
    }

    /// <summary>Installs kafkajs once per machine under the temp directory; returns the node_modules path for NODE_PATH.</summary>
    public static async Task<string> EnsureKafkajsAsync()
    {
        await s_install.WaitAsync();
        try
        {
            if (FindOnPath("node") is null || FindOnPath("npm") is null)
            {
                await AptInstallAsync("nodejs npm", "Node.js and npm");
            }
            var directory = Path.Combine(Path.GetTempPath(), $"switchback-itest-kafkajs-{KafkajsVersion}");
            var nodeModules = Path.Combine(directory, "node_modules");
            if (!File.Exists(Path.Combine(nodeModules, "kafkajs", "package.json")))
            {
                Directory.CreateDirectory(directory);
                var install = await RunAsync("npm", ["install", "--prefix", directory, "--no-save", "--no-audit", "--no-fund", $"kafkajs@{KafkajsVersion}"],
                    timeout: TimeSpan.FromMinutes(3));
                if (install.ExitCode != 0 || !File.Exists(Path.Combine(nodeModules, "kafkajs", "package.json")))
                {
                    throw new InvalidOperationException($"npm install kafkajs@{KafkajsVersion} into {directory} failed (exit {install.ExitCode}): {install.Errors}");
                }
            }
            return nodeModules;
        }
        finally
        {
            s_install.Release();
        }
    }

    /// <summary>Runs a process to completion (killing it after <paramref name="timeout"/>) and returns what it printed.</summary>
    public static async Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> arguments, string? stdin = null,
        IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
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
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }
        process.StandardInput.Close();
        var limit = timeout ?? TimeSpan.FromSeconds(90);
        using var cancel = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', start.ArgumentList)} did not finish in {limit.TotalSeconds} s; " +
                $"stderr so far: {(stderr.IsCompleted ? await stderr : "(open)")}");
        }
        return new ProcessResult(process.ExitCode, (await stdout).Trim(), (await stderr).Trim());
    }

    private static async Task AptInstallAsync(string packages, string what)
    {
        if (!string.Equals(Environment.UserName, "root", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{what} is missing and this test is not running as root, so it cannot `apt-get install -y {packages}`. Install it and rerun.");
        }
        if (FindOnPath("apt-get") is null)
        {
            throw new InvalidOperationException($"{what} is missing and there is no apt-get to install {packages} with.");
        }
        var arguments = new List<string> { "install", "-y", "--no-install-recommends" };
        arguments.AddRange(packages.Split(' '));
        var environment = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
        var install = await RunAsync("apt-get", arguments, environment: environment, timeout: TimeSpan.FromMinutes(5));
        if (install.ExitCode != 0)
        {
            // Package lists may be missing or stale: refresh them once and retry.
            await RunAsync("apt-get", ["update"], environment: environment, timeout: TimeSpan.FromMinutes(5));
            install = await RunAsync("apt-get", arguments, environment: environment, timeout: TimeSpan.FromMinutes(5));
        }
        if (install.ExitCode != 0)
        {
            throw new InvalidOperationException($"apt-get install -y {packages} failed (exit {install.ExitCode}): {install.Errors}");
        }
    }

    private static string? FindOnPath(string name)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    public static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What a finished child process printed.</summary>
public sealed record ProcessResult(int ExitCode, string Output, string Errors)
{
    public override string ToString() => $"exit {ExitCode}\nstdout: {Output}\nstderr: {Errors}";
}
