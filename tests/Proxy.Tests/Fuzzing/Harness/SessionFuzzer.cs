using System.Collections.Concurrent;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Listening;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Tests.Fuzzing.Harness;

/// <summary>
/// Runs fuzz cases through the real connection handler: a <see cref="ClientSession"/> over in-memory pipes, sharing
/// a running proxy's <see cref="ProxyState"/> (and so its upstream clusters) with the proxy's real clients.
/// A case is a finding when the session lets an exception escape, logs an unexpected failure, or has not ended
/// within <see cref="CloseBound"/> of the client going away.
/// </summary>
public sealed class SessionFuzzer(ProxyState state)
{
    /// <summary>How long a client waits for answers after sending before it goes away.</summary>
    public TimeSpan AnswerWindow { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long the session may take to end once the client has gone away.</summary>
    public TimeSpan CloseBound { get; init; } = TimeSpan.FromSeconds(5);

    public sealed record CaseResult(long Seed, string Description, string? Finding, string? CloseReason, long ResponseBytes, TimeSpan Elapsed);

    public async Task<CaseResult> RunAsync(FrameMutator.FuzzCase fuzzCase)
    {
        var started = DateTime.UtcNow;
        var logger = new SessionLogger();
        var toProxy = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        var fromProxy = new Pipe(new PipeOptions(pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024, useSynchronizationContext: false));
        var connection = new DefaultConnectionContext(
            $"fuzz-{fuzzCase.Seed}",
            new DuplexPipe(toProxy.Reader, fromProxy.Writer),
            new DuplexPipe(fromProxy.Reader, toProxy.Writer));
        var session = new ClientSession(connection, state, logger);
        var run = Task.Run(session.RunAsync);
        var drain = DrainAsync(fromProxy.Reader);
        string? finding = null;
        try
        {
            foreach (var chunk in fuzzCase.Chunks)
            {
                if (run.IsCompleted)
                {
                    break;
                }
                await toProxy.Writer.WriteAsync(chunk).ConfigureAwait(false);
            }
            await toProxy.Writer.CompleteAsync().ConfigureAwait(false);

            // A client that is done sending waits a little for its answers, then goes away (closes the socket).
            await Task.WhenAny(run, Task.Delay(AnswerWindow)).ConfigureAwait(false);
            if (!run.IsCompleted)
            {
                connection.Abort(new ConnectionAbortedException("client went away"));
            }
            if (await Task.WhenAny(run, Task.Delay(CloseBound)).ConfigureAwait(false) != run)
            {
                finding = $"session still running {CloseBound.TotalSeconds:0.#} s after the client went away";
            }
            else
            {
                await run.ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            finding = $"exception escaped the session: {e}";
        }
        if (finding is null && logger.Unexpected is { } unexpected)
        {
            finding = $"unexpected failure logged: {unexpected}";
        }
        await fromProxy.Writer.CompleteAsync().ConfigureAwait(false);
        var responseBytes = await drain.ConfigureAwait(false);
        return new CaseResult(fuzzCase.Seed, fuzzCase.Description, finding, logger.CloseReason, responseBytes, DateTime.UtcNow - started);
    }

    private static async Task<long> DrainAsync(PipeReader reader)
    {
        long total = 0;
        while (true)
        {
            var result = await reader.ReadAsync().ConfigureAwait(false);
            total += result.Buffer.Length;
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                await reader.CompleteAsync().ConfigureAwait(false);
                return total;
            }
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }

    /// <summary>Records why the session closed and whether it logged an unexpected failure (event 1003).</summary>
    private sealed class SessionLogger : ILogger
    {
        private readonly ConcurrentQueue<string> _unexpected = new();

        public string? CloseReason { get; private set; }
        public string? Unexpected => _unexpected.TryPeek(out var first) ? first : null;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 1002)
            {
                CloseReason = formatter(state, exception);
            }
            else if (logLevel >= LogLevel.Error)
            {
                _unexpected.Enqueue($"{formatter(state, exception)} {exception}");
            }
        }
    }
}
