using System.Security.Cryptography;
using Switchback.Proxy.Tests.Integration;

namespace Switchback.Proxy.Tests.ClientMatrix;

/// <summary>
/// Installs the client-matrix clients that <see cref="ExternalClients"/> does not: confluent-kafka-python (apt), Sarama
/// (apt sources, built into a cache directory) and @confluentinc/kafka-javascript (npm, native build cached per
/// machine). A client that cannot be installed fails its test with the reason; none is silently skipped.
/// </summary>
public static class MatrixClientInstalls
{
    public const string KafkaJavascriptVersion = "1.10.1";

    private static readonly SemaphoreSlim s_install = new(1, 1);

    public static string ClientsDirectory => Path.Combine(AppContext.BaseDirectory, "ClientMatrix", "Clients");

    public static string Script(string name) => Path.Combine(ClientsDirectory, name);

    public static async Task EnsureConfluentKafkaPythonAsync()
    {
        await s_install.WaitAsync();
        try
        {
            if (!File.Exists(ExternalClients.SystemPython))
            {
                await AptInstallAsync("python3", "python3");
            }
            if (await CanImportAsync("confluent_kafka"))
            {
                return;
            }
            await AptInstallAsync("python3-confluent-kafka", "the confluent_kafka module");
            if (!await CanImportAsync("confluent_kafka"))
            {
                throw new InvalidOperationException($"python3-confluent-kafka is installed, but {ExternalClients.SystemPython} cannot import confluent_kafka.");
            }
        }
        finally
        {
            s_install.Release();
        }
    }

    /// <summary>
    /// Builds the Sarama driver once per machine and driver source (the cache key is a hash of the source), against
    /// the Debian-packaged Sarama 1.22 in GOPATH mode. First run: about 10 s of compiling plus the apt install.
    /// </summary>
    public static async Task<string> EnsureSaramaDriverAsync()
    {
        await s_install.WaitAsync();
        try
        {
            if (!File.Exists("/usr/share/gocode/src/github.com/Shopify/sarama/sarama.go") || FindOnPath("go") is null)
            {
                await AptInstallAsync("golang-go golang-github-shopify-sarama-dev", "Go and the Sarama sources");
            }
            var go = FindOnPath("go") ?? throw new InvalidOperationException("apt-get installed golang-go, but no go is on PATH.");
            var source = Script("sarama_matrix.go");
            var hash = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(source)))[..16];
            var directory = Path.Combine(Path.GetTempPath(), $"switchback-clientmatrix-sarama-{hash}");
            var binary = Path.Combine(directory, "sarama_matrix");
            if (File.Exists(binary))
            {
                return binary;
            }
            Directory.CreateDirectory(directory);
            var building = Path.Combine(directory, $"sarama_matrix.{Guid.NewGuid():N}.tmp");
            var build = await ExternalClients.RunAsync(go, ["build", "-o", building, source],
                environment: new Dictionary<string, string>
                {
                    ["GO111MODULE"] = "off",
                    ["GOPATH"] = $"{Path.Combine(directory, "gopath")}:/usr/share/gocode",
                    ["GOCACHE"] = Path.Combine(directory, "gocache"),
                    ["GOFLAGS"] = "",
                },
                timeout: TimeSpan.FromMinutes(5));
            if (build.ExitCode != 0 || !File.Exists(building))
            {
                throw new InvalidOperationException($"go build of {source} against /usr/share/gocode (Sarama) failed: {build}");
            }
            File.Move(building, binary, overwrite: true);
            return binary;
        }
        finally
        {
            s_install.Release();
        }
    }

    /// <summary>
    /// Installs @confluentinc/kafka-javascript once per machine into a cache directory under the temp directory, keyed
    /// by version; returns the node_modules path for NODE_PATH. The first run compiles the native addon against the
    /// system librdkafka build dependencies: about 2.5 minutes on 2 cores, plus the apt install; later runs reuse it.
    /// </summary>
    public static async Task<string> EnsureKafkaJavascriptAsync()
    {
        await s_install.WaitAsync();
        try
        {
            var directory = Path.Combine(Path.GetTempPath(), $"switchback-clientmatrix-kafka-javascript-{KafkaJavascriptVersion}");
            var nodeModules = Path.Combine(directory, "node_modules");
            var addon = Path.Combine(nodeModules, "@confluentinc", "kafka-javascript", "build", "Release", "confluent-kafka-javascript.node");
            if (File.Exists(addon))
            {
                return nodeModules;
            }
            if (FindOnPath("node") is null || FindOnPath("npm") is null)
            {
                await AptInstallAsync("nodejs npm", "Node.js and npm");
            }
            await AptInstallAsync("build-essential python3 libcurl4-openssl-dev libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev",
                "the build dependencies of @confluentinc/kafka-javascript", onlyIfMissing: true);
            // Built in a staging directory and renamed into place, so a concurrent run on the same machine never sees a
            // half-built cache; the addon finds its librdkafka through RUNPATH $ORIGIN/../deps, so it survives the move.
            var staging = $"{directory}.building-{Guid.NewGuid():N}";
            Directory.CreateDirectory(staging);
            try
            {
                var install = await ExternalClients.RunAsync("npm",
                    ["install", "--prefix", staging, "--no-save", "--no-audit", "--no-fund", $"@confluentinc/kafka-javascript@{KafkaJavascriptVersion}"],
                    environment: new Dictionary<string, string> { ["CKJS_LINKING"] = "dynamic" },
                    timeout: TimeSpan.FromMinutes(10));
                var stagedAddon = Path.Combine(staging, Path.GetRelativePath(directory, addon));
                if (install.ExitCode != 0 || !File.Exists(stagedAddon))
                {
                    throw new InvalidOperationException(
                        $"CKJS_LINKING=dynamic npm install @confluentinc/kafka-javascript@{KafkaJavascriptVersion} into {staging} did not build {stagedAddon}: {install}");
                }
                if (!File.Exists(addon))
                {
                    if (Directory.Exists(directory))
                    {
                        // Left by an interrupted older install.
                        Directory.Delete(directory, recursive: true);
                    }
                    Directory.Move(staging, directory);
                }
            }
            catch (IOException) when (File.Exists(addon))
            {
                // Another run finished first; use its build.
            }
            finally
            {
                if (Directory.Exists(staging))
                {
                    Directory.Delete(staging, recursive: true);
                }
            }
            return nodeModules;
        }
        finally
        {
            s_install.Release();
        }
    }

    private static async Task<bool> CanImportAsync(string module) =>
        (await ExternalClients.RunAsync(ExternalClients.SystemPython, ["-c", $"import {module}"], timeout: TimeSpan.FromSeconds(30))).ExitCode == 0;

    private static async Task AptInstallAsync(string packages, string what, bool onlyIfMissing = false)
    {
        var names = packages.Split(' ');
        if (onlyIfMissing)
        {
            var query = await ExternalClients.RunAsync("dpkg-query", ["-W", "-f", "${db:Status-Abbrev}\n", .. names], timeout: TimeSpan.FromSeconds(30));
            if (query.ExitCode == 0 && query.Output.Split('\n').All(l => l.StartsWith("ii", StringComparison.Ordinal)))
            {
                return;
            }
        }
        if (!string.Equals(Environment.UserName, "root", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{what} is missing and this test is not running as root, so it cannot `apt-get install -y {packages}`. Install it and rerun.");
        }
        if (FindOnPath("apt-get") is null)
        {
            throw new InvalidOperationException($"{what} is missing and there is no apt-get to install {packages} with.");
        }
        // Other test classes may be installing too: wait for the dpkg lock rather than failing on it.
        List<string> arguments = ["-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", .. names];
        var environment = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
        var install = await ExternalClients.RunAsync("apt-get", arguments, environment: environment, timeout: TimeSpan.FromMinutes(10));
        if (install.ExitCode != 0)
        {
            // Package lists may be missing or stale: refresh them once and retry.
            await ExternalClients.RunAsync("apt-get", ["-o", "DPkg::Lock::Timeout=300", "update"], environment: environment, timeout: TimeSpan.FromMinutes(5));
            install = await ExternalClients.RunAsync("apt-get", arguments, environment: environment, timeout: TimeSpan.FromMinutes(10));
        }
        if (install.ExitCode != 0)
        {
            throw new InvalidOperationException($"apt-get install -y {packages} failed (exit {install.ExitCode}): {install.Errors}");
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);
}
