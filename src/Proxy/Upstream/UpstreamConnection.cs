using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Proxy.Security;

namespace Switchback.Proxy.Upstream;

/// <summary>
/// A pipelined connection to one upstream broker. Requests are written in call order with correlation ids the
/// proxy assigns; Kafka answers in order on a connection, so responses are matched to a FIFO of pending requests.
/// One logical writer at a time (the owning client session dispatches sequentially).
/// </summary>
public sealed partial class UpstreamConnection : IAsyncDisposable
{
    private const int MaxResponseFrameBytes = 256 * 1024 * 1024;

    private readonly Socket _socket;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly Queue<PendingResponse> _pending = new();
    private readonly Lock _pendingLock = new();
    private readonly ILogger _logger;
    private readonly Task _readLoop;
    private int _nextCorrelationId;
    private Exception? _failure;

    private UpstreamConnection(Socket socket, Stream stream, string description, ILogger logger)
    {
        _socket = socket;
        Description = description;
        _logger = logger;
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024));
        _writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024));
        _readLoop = Task.Run(ReadLoopAsync);
    }

    public string Description { get; }

    /// <summary>False once the connection failed or was closed; the pool then opens a new one.</summary>
    public bool IsHealthy => Volatile.Read(ref _failure) is null;

    public static async ValueTask<UpstreamConnection> ConnectAsync(DnsEndPoint endPoint, string description, TimeSpan timeout, ILogger logger, CancellationToken cancellationToken,
        UpstreamSecurity? security = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(endPoint.Host, endPoint.Port, timeoutSource.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            throw new UpstreamUnavailableException($"Cannot connect to {description} ({endPoint.Host}:{endPoint.Port}): {e.Message}", e);
        }
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        if (security is { Tls: not null } or { Sasl: not null })
        {
            // TLS and SASL complete before the connection carries requests, within the same connect timeout.
            try
            {
                stream = await UpstreamHandshake.SecureAsync(stream, endPoint, security, description, timeoutSource.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException e)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                throw new UpstreamUnavailableException($"TLS/SASL handshake with {description} timed out.", e);
            }
        }
        return new UpstreamConnection(socket, stream, description, logger);
    }

    /// <summary>
    /// Sends one request frame (header and body, without the size prefix; its correlation id is replaced on the
    /// wire). Returns the pending response, or null when the request expects none (Produce with acks=0).
    /// </summary>
    public async ValueTask<PendingResponse?> SendAsync(ReadOnlyMemory<byte> frame, bool expectResponse, CancellationToken cancellationToken = default)
    {
        PendingResponse? pending = null;
        lock (_pendingLock)
        {
            if (_failure is { } failure)
            {
                throw new UpstreamUnavailableException($"Connection to {Description} failed: {failure.Message}", failure);
            }
            var correlationId = _nextCorrelationId++;
            var span = _writer.GetSpan(frame.Length + 4);
            BinaryPrimitives.WriteInt32BigEndian(span, frame.Length);
            frame.Span.CopyTo(span[4..]);
            BinaryPrimitives.WriteInt32BigEndian(span[8..], correlationId);
            _writer.Advance(frame.Length + 4);
            if (expectResponse)
            {
                pending = new PendingResponse(correlationId);
                _pending.Enqueue(pending);
            }
        }
        FlushResult result;
        try
        {
            result = await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            Fail(e);
            throw new UpstreamUnavailableException($"Write to {Description} failed: {e.Message}", e);
        }
        if (result.IsCompleted)
        {
            Fail(new IOException("upstream closed"));
            throw new UpstreamUnavailableException($"Connection to {Description} closed.");
        }
        return pending;
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                while (FrameReader.TryReadFrame(ref buffer, MaxResponseFrameBytes, out var frameBytes))
                {
                    var frame = PooledFrame.CopyOf(frameBytes);
                    var correlationId = BinaryPrimitives.ReadInt32BigEndian(frame.Span);
                    PendingResponse? pending;
                    lock (_pendingLock)
                    {
                        _pending.TryDequeue(out pending);
                    }
                    if (pending is null || pending.CorrelationId != correlationId)
                    {
                        frame.Dispose();
                        throw new KafkaProtocolException(
                            $"Response correlation id {correlationId} does not match the oldest request ({pending?.CorrelationId.ToString() ?? "none pending"}).");
                    }
                    pending.Complete(frame);
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    throw new IOException("upstream closed the connection");
                }
            }
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    private void Fail(Exception reason)
    {
        PendingResponse[] failed;
        lock (_pendingLock)
        {
            if (_failure is not null)
            {
                return;
            }
            _failure = reason;
            failed = _pending.ToArray();
            _pending.Clear();
        }
        if (reason is not ObjectDisposedException)
        {
            LogClosed(_logger, Description, reason.Message);
        }
        var error = new UpstreamUnavailableException($"Connection to {Description} lost: {reason.Message}", reason);
        foreach (var pending in failed)
        {
            pending.Fail(error);
        }
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception)
        {
            // Already closed.
        }
    }

    public async ValueTask DisposeAsync()
    {
        Fail(new ObjectDisposedException(Description));
        _socket.Dispose();
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The read loop records its own failure.
        }
        await _reader.CompleteAsync().ConfigureAwait(false);
        await _writer.CompleteAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Upstream connection to {Upstream} closed: {Reason}")]
    private static partial void LogClosed(ILogger logger, string upstream, string reason);
}

/// <summary>A request sent upstream whose response has not arrived yet.</summary>
public sealed class PendingResponse(int correlationId)
{
    // Continuations run on the upstream read loop's thread: the client's answer is written right there, without a
    // hop to another worker (nothing waiting on a response blocks; see SocketEventThreads).
    private readonly TaskCompletionSource<PooledFrame> _completion = new();
    private int _abandoned;

    public int CorrelationId { get; } = correlationId;

    /// <summary>Completes when the broker has answered or the connection has failed, whoever waits or gives up.</summary>
    public Task Settled => _completion.Task;

    /// <summary>Waits for the response; on timeout the response, if it ever arrives, is discarded.</summary>
    public async Task<PooledFrame> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await _completion.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Abandon();
            throw new UpstreamUnavailableException($"No response within {timeout.TotalMilliseconds:0} ms.");
        }
        catch (OperationCanceledException)
        {
            Abandon();
            throw;
        }
    }

    private void Abandon()
    {
        Volatile.Write(ref _abandoned, 1);
        if (_completion.Task.IsCompletedSuccessfully)
        {
            _completion.Task.Result.Dispose();
        }
    }

    internal void Complete(PooledFrame frame)
    {
        if (!_completion.TrySetResult(frame) || Volatile.Read(ref _abandoned) == 1)
        {
            frame.Dispose();
        }
    }

    internal void Fail(Exception error) => _completion.TrySetException(error);
}
