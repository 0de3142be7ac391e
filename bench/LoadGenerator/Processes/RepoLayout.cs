namespace Switchback.Bench.LoadGenerator;

/// <summary>Where the built proxy and upstream live, for the same configuration as this load generator.</summary>
public sealed record RepoLayout(string Root, string Configuration)
{
    public string ProxyDll => Path.Combine(Root, "src", "Proxy", "bin", Configuration, "net10.0", "switchback.dll");
    public string UpstreamDll => Path.Combine(Root, "bench", "Upstream", "bin", Configuration, "net10.0", "Switchback.Bench.Upstream.dll");

    public static RepoLayout Discover()
    {
        var baseDirectory = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
        // .../bench/LoadGenerator/bin/<Configuration>/net10.0
        var configuration = Path.GetFileName(Path.GetDirectoryName(baseDirectory)) ?? "Release";
        var directory = new DirectoryInfo(baseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Proxy.sln")))
        {
            directory = directory.Parent;
        }
        if (directory is null)
        {
            throw new InvalidOperationException($"no Proxy.sln above {baseDirectory}; run the load generator from the repository.");
        }
        var layout = new RepoLayout(directory.FullName, configuration);
        foreach (var path in new[] { layout.ProxyDll, layout.UpstreamDll })
        {
            if (!File.Exists(path))
            {
                throw new InvalidOperationException($"{path} is missing; build with `dotnet build -c {configuration} Proxy.sln` first.");
            }
        }
        return layout;
    }
}
