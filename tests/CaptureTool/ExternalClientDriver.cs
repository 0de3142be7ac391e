using System.Diagnostics;

namespace Switchback.CaptureTool;

/// <summary>Drives the non-.NET clients (kcat, kafka-python, kafkajs) as child processes.</summary>
internal static class ExternalClientDriver
{
    private const int MessageCount = 5;
    private const string KafkajsVersion = "2.2.4";

    private static string ClientsDirectory => Path.Combine(AppContext.BaseDirectory, "clients");

    public static async Task RunKcatAsync(CaptureSession session, Action<string> log)
    {
        var topic = NewName("kcat");
        session.Cluster.CreateTopic(topic, partitions: 3, replicationFactor: 3);
        var brokers = session.BootstrapServers;

        await RunAsync(log, "kcat", ["-b", brokers, "-L", "-t", topic]);
        var input = string.Concat(Enumerable.Range(0, MessageCount).Select(i => $"k{i}:kcat value {i}\n"));
        await RunAsync(log, "kcat", ["-b", brokers, "-P", "-t", topic, "-K:", "-X", "acks=all", "-X", "client.id=capture-kcat"], input);
        await RunAsync(log, "kcat", ["-b", brokers, "-P", "-t", topic, "-K:", "-z", "snappy", "-X", "client.id=capture-kcat"], input);
        await RunAsync(log, "kcat",
            ["-b", brokers, "-G", NewName("kcat-group"), "-X", "auto.offset.reset=earliest", "-X", "client.id=capture-kcat",
             "-X", "fetch.wait.max.ms=100", "-c", (2 * MessageCount).ToString(System.Globalization.CultureInfo.InvariantCulture), "-f", "%k=%s\n", topic]);
        await RunAsync(log, "kcat", ["-b", brokers, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-X", "client.id=capture-kcat"]);
    }

    public static Task RunKafkaPythonAsync(CaptureSession session, Action<string> log)
    {
        var topic = NewName("kpy");
        session.Cluster.CreateTopic(topic, partitions: 3, replicationFactor: 3);
        return RunAsync(log, "/usr/bin/python3",
            [Path.Combine(ClientsDirectory, "kafka_python_client.py"), session.BootstrapServers, topic, NewName("kpy-group"), Count()]);
    }

    public static async Task RunKafkajsAsync(CaptureSession session, Action<string> log)
    {
        var nodeModules = await EnsureKafkajsAsync(log);
        var topic = NewName("kjs");
        session.Cluster.CreateTopic(topic, partitions: 3, replicationFactor: 3);
        await RunAsync(log, "node",
            [Path.Combine(ClientsDirectory, "kafkajs_client.js"), session.BootstrapServers, topic, NewName("kjs-group"), Count()],
            environment: new Dictionary<string, string> { ["NODE_PATH"] = nodeModules });
    }

    // kafkajs is installed outside the repository, once per machine.
    private static async Task<string> EnsureKafkajsAsync(Action<string> log)
    {
        var directory = Environment.GetEnvironmentVariable("CAPTURE_KAFKAJS_DIR")
            ?? Path.Combine(Path.GetTempPath(), $"switchback-capture-kafkajs-{KafkajsVersion}");
        var nodeModules = Path.Combine(directory, "node_modules");
        if (!File.Exists(Path.Combine(nodeModules, "kafkajs", "package.json")))
        {
            Directory.CreateDirectory(directory);
            await RunAsync(log, "npm", ["install", "--prefix", directory, "--no-save", "--no-audit", "--no-fund", $"kafkajs@{KafkajsVersion}"]);
        }
        return nodeModules;
    }

    private static async Task RunAsync(
        Action<string> log, string fileName, string[] arguments, string? stdin = null, Dictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = stdin is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (name, value) in environment ?? [])
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', arguments)} did not finish in 90 s.");
        }
        var output = (await stdout).Trim();
        var errors = (await stderr).Trim();
        log($"{Path.GetFileName(fileName)} {arguments.FirstOrDefault()} -> exit {process.ExitCode}" +
            (output.Length > 0 ? $"\n    {output.Replace("\n", "\n    ", StringComparison.Ordinal)}" : ""));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{fileName} exited with {process.ExitCode}: {errors}");
        }
    }

    private static string Count() => MessageCount.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string NewName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];
}
