namespace Switchback.Proxy.Tests.Switching;

/// <summary>Runs the <c>switchback</c> admin commands in-process and captures stderr (one command at a time: the console is shared).</summary>
internal static class AdminCliRunner
{
    private static readonly SemaphoreSlim ConsoleLock = new(1, 1);

    public static async Task<(int Code, string Stderr)> RunAsync(string[] args)
    {
        await ConsoleLock.WaitAsync();
        var original = Console.Error;
        using var captured = new StringWriter();
        try
        {
            Console.SetError(captured);
            var code = await Program.Main(args);
            return (code, captured.ToString());
        }
        finally
        {
            Console.SetError(original);
            ConsoleLock.Release();
        }
    }

    /// <summary>As <see cref="RunAsync"/>, with what the command printed on stdout too.</summary>
    public static async Task<(int Code, string Output, string Stderr)> RunWithOutputAsync(string[] args)
    {
        await ConsoleLock.WaitAsync();
        var (originalOut, originalError) = (Console.Out, Console.Error);
        using var output = new StringWriter();
        using var error = new StringWriter();
        try
        {
            Console.SetOut(output);
            Console.SetError(error);
            var code = await Program.Main(args);
            return (code, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(originalOut);
            Console.SetError(originalError);
            ConsoleLock.Release();
        }
    }
}
