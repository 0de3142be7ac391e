using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Switchback.CaptureTool;

/// <summary>
/// A TCP relay in front of one mock broker that forwards Kafka frames unchanged and records each one.
/// </summary>
internal sealed class RecordingRelay : IAsyncDisposable
{
    private const int MaxFrameSize = 64 * 1024 * 1024;

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _upstream;
    private readonly FrameRecorder _recorder;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _connections = [];
    private readonly Task _acceptLoop;

    public RecordingRelay(IPEndPoint upstream, FrameRecorder recorder)
    {
        _upstream = upstream;
        _recorder = recorder;
        _listener.Start();
        _acceptLoop = AcceptLoopAsync();
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            lock (_connections)
            {
                _connections.Add(RelayAsync(client));
            }
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using var _ = client;
        using var upstream = new TcpClient { NoDelay = true };
        client.NoDelay = true;
        try
        {
            await upstream.ConnectAsync(_upstream, _stopping.Token);
        }
        catch (Exception)
        {
            // Broker down: the client sees the connection close, as it would without the relay.
            return;
        }

        var connection = _recorder.ForConnection();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        var toBroker = PumpAsync(client.GetStream(), upstream.GetStream(), connection.Request, linked.Token);
        var toClient = PumpAsync(upstream.GetStream(), client.GetStream(), connection.Response, linked.Token);
        await Task.WhenAny(toBroker, toClient);
        // One side closed: close both, as a plain TCP relay would.
        await linked.CancelAsync();
        client.Close();
        upstream.Close();
        await Task.WhenAll(toBroker, toClient).ContinueWith(static _ => { }, TaskScheduler.Default);
    }

    private static async Task PumpAsync(NetworkStream from, NetworkStream to, Action<byte[]> record, CancellationToken cancellationToken)
    {
        var sizePrefix = new byte[4];
        while (true)
        {
            try
            {
                await from.ReadExactlyAsync(sizePrefix, cancellationToken);
            }
            catch (EndOfStreamException)
            {
                return;
            }
            var size = BinaryPrimitives.ReadInt32BigEndian(sizePrefix);
            if (size is < 0 or > MaxFrameSize)
            {
                throw new InvalidDataException($"Frame size {size} out of range.");
            }
            var body = new byte[size];
            await from.ReadExactlyAsync(body, cancellationToken);
            // Record before forwarding so a request is always known before its response arrives.
            record(body);
            await to.WriteAsync(sizePrefix, cancellationToken);
            await to.WriteAsync(body, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        Task[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }
        await Task.WhenAll(connections).ContinueWith(static _ => { }, TaskScheduler.Default);
        _stopping.Dispose();
    }
}
