using System.Reflection;
using System.Runtime.InteropServices;

namespace Switchback.Proxy.Demo;

/// <summary>
/// Loads librdkafka once per process for both our own P/Invoke declarations and Confluent.Kafka's clients.
/// </summary>
/// <remarks>
/// The generic <c>librdkafka.so</c> in librdkafka.redist links against <c>libsasl2.so.3</c>, which Debian 12 does
/// not ship, and <c>Confluent.Kafka.Library.Load(path)</c> P/Invokes <c>libdl</c>, which Debian 12 only has as
/// <c>libdl.so.2</c>. Confluent.Kafka 2.x on Linux binds its delegates by trying <c>[DllImport("librdkafka")]</c>,
/// then <c>"centos8-librdkafka"</c>, then <c>"alpine-librdkafka"</c>, keeping the first that loads. We load the
/// self-contained CentOS 8 build explicitly and install a DllImport resolver on both assemblies that maps every
/// librdkafka name to that one handle, so every caller shares a single copy of the library, whatever the
/// runtime's own probing would have picked.
/// </remarks>
internal static class LibrdkafkaLoader
{
    /// <summary>The library name our own <c>[LibraryImport]</c> declarations use.</summary>
    internal const string LibraryName = "librdkafka";

    private const string EnvironmentOverride = "SWITCHBACK_LIBRDKAFKA_PATH";

    private static readonly string[] s_candidateFileNames =
    [
        "centos8-librdkafka.so",
        "librdkafka.so",
        "alpine-librdkafka.so",
    ];

    private static readonly object s_gate = new();
    private static IntPtr s_handle;
    private static string? s_loadedPath;

    /// <summary>The file librdkafka was loaded from, or null before <see cref="EnsureLoaded"/>.</summary>
    internal static string? LoadedPath
    {
        get
        {
            lock (s_gate)
            {
                return s_loadedPath;
            }
        }
    }

    /// <summary>Loads librdkafka and installs the resolvers; later calls return the same handle.</summary>
    /// <exception cref="DllNotFoundException">No candidate file could be loaded.</exception>
    internal static IntPtr EnsureLoaded()
    {
        lock (s_gate)
        {
            if (s_handle != IntPtr.Zero)
            {
                return s_handle;
            }

            var (handle, path) = LoadNative();
            // Publish the handle before the resolvers can be asked for it.
            s_loadedPath = path;
            s_handle = handle;
            InstallResolver(typeof(LibrdkafkaLoader).Assembly);
            InstallResolver(typeof(Confluent.Kafka.Library).Assembly);
            return handle;
        }
    }

    private static (IntPtr Handle, string Path) LoadNative()
    {
        var failures = new List<string>();
        foreach (var path in CandidatePaths())
        {
            if (!File.Exists(path))
            {
                continue;
            }
            try
            {
                return (NativeLibrary.Load(path), path);
            }
            catch (DllNotFoundException ex)
            {
                // Typically a missing dependency (libsasl2.so.3 for the generic build): try the next one.
                failures.Add($"{path}: {ex.Message}");
            }
        }

        var tried = failures.Count == 0 ? "no candidate file exists" : string.Join("; ", failures);
        throw new DllNotFoundException(
            $"Could not load librdkafka from {AppContext.BaseDirectory} ({tried}). " +
            $"Set {EnvironmentOverride} to the path of a loadable librdkafka shared library.");
    }

    private static IEnumerable<string> CandidatePaths()
    {
        var overridePath = Environment.GetEnvironmentVariable(EnvironmentOverride);
        if (!string.IsNullOrEmpty(overridePath))
        {
            yield return overridePath;
        }

        var rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var nativeDirectory = Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "native");
        foreach (var fileName in s_candidateFileNames)
        {
            yield return Path.Combine(nativeDirectory, fileName);
        }
        // A RID-specific publish flattens native assets next to the executable.
        foreach (var fileName in s_candidateFileNames)
        {
            yield return Path.Combine(AppContext.BaseDirectory, fileName);
        }
    }

    private static void InstallResolver(Assembly assembly)
    {
        try
        {
            NativeLibrary.SetDllImportResolver(assembly, Resolve);
        }
        catch (InvalidOperationException)
        {
            // Another component already owns this assembly's resolver; it then decides how librdkafka loads.
        }
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        IsLibrdkafkaName(libraryName) ? s_handle : IntPtr.Zero;

    private static bool IsLibrdkafkaName(string libraryName)
    {
        var name = Path.GetFileName(libraryName);
        if (name.EndsWith(".so", StringComparison.Ordinal))
        {
            name = name[..^3];
        }
        return name is LibraryName or "centos8-librdkafka" or "alpine-librdkafka";
    }
}
