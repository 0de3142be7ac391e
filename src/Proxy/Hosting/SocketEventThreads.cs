namespace Switchback.Proxy.Hosting;

/// <summary>
/// Request handling runs on the sockets' event threads. By default .NET hands every socket completion from its
/// epoll thread to a thread-pool worker, and Kestrel hops once more to run the application: each relayed request
/// then wakes three to four threads, and on the end-to-end bench those wake-ups (futex, context switch) were half
/// of the proxy's CPU. With inline completions a request is read, routed and sent upstream, and its answer relayed
/// back, on the event thread that saw the bytes arrive; the runtime then runs one event thread per core.
/// The rule that comes with it: nothing on the request path may block a thread (disk writes go through the
/// thread pool, see <c>SwitchCoordinator</c>).
/// </summary>
public static class SocketEventThreads
{
    /// <summary>The runtime's switch, read once when the process opens its first socket.</summary>
    public const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Turns inline socket completions on for this process unless the environment already decides (set the
    /// variable to 0 to opt out). Call before anything opens a socket.
    /// </summary>
    public static void PreferInlineCompletions()
    {
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
        }
    }
}
