using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Switchback.Bench.LoadGenerator.Workloads;

/// <summary>What opening many idle connections cost the process behind the address.</summary>
public sealed record ConnectionScaleResult(
    int Requested,
    int Opened,
    int Failed,
    double OpenSeconds,
    double? BaselineRssMb,
    double? LoadedRssMb,
    double? SettledRssMb,
    double? PeakRssMb,
    double? CpuSeconds)
{
    public double? KilobytesPerConnection =>
        SettledRssMb is { } settled && BaselineRssMb is { } baseline && Opened > 0 ? (settled - baseline) * 1024 / Opened : null;
}

/// <summary>
/// Opens N TCP connections, sends one ApiVersions v0 request on each and reads its answer (so the server has set
/// up a real session, not just accepted a socket), then leaves them idle and reads the server's resident memory.
/// </summary>
public static class ConnectionScaleWorkload
{
    private const short ApiVersionsKey = 18;
    private static readonly byte[] s_clientId = Encoding.ASCII.GetBytes("loadgen-idle");

    public static async Task<ConnectionScaleResult> RunAsync(
        IPEndPoint endpoint, int count, int? serverPid, TimeSpan settle, int parallelism = 64)
    {
        var baseline = serverPid is { } pid0 ? ProcessSampler.TryReadRssMb(pid0) : null;
        var cpuBefore = serverPid is { } pid1 ? ProcessSampler.TryReadCpuSeconds(pid1) : null;
        if (serverPid is { } pid2)
        {
            ProcessSampler.TryResetPeakRss(pid2);
        }
        var sockets = new Socket?[count];
        var failed = 0;
        var next = -1;
        var start = Stopwatch.GetTimestamp();
        var workers = Enumerable.Range(0, parallelism).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                try
                {
                    sockets[i] = await OpenAsync(endpoint, i).ConfigureAwait(false);
                }
                catch (Exception e) when (e is SocketException or IOException or TimeoutException or OperationCanceledException)
                {
                    if (Interlocked.Increment(ref failed) <= 3)
                    {
                        Console.Error.WriteLine($"connection {i}: {e.GetType().Name}: {e.Message}");
                    }
                }
            }
        }).ToArray();
        await Task.WhenAll(workers).ConfigureAwait(false);
        var openSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        try
        {
            var loaded = serverPid is { } pid3 ? ProcessSampler.TryReadRssMb(pid3) : null;
            await Task.Delay(settle).ConfigureAwait(false);
            var opened = sockets.Count(s => s is not null);
            double? settled = null;
            double? peak = null;
            double? cpu = null;
            if (serverPid is { } pid4)
            {
                settled = ProcessSampler.TryReadRssMb(pid4);
                peak = ProcessSampler.TryReadPeakRssMb(pid4);
                cpu = ProcessSampler.TryReadCpuSeconds(pid4) - cpuBefore;
            }
            return new ConnectionScaleResult(count, opened, failed, openSeconds, baseline, loaded, settled, peak, cpu);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket?.Dispose();
            }
        }
    }

    private static async Task<Socket> OpenAsync(IPEndPoint endpoint, int correlationId)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
            var request = ApiVersionsV0(correlationId);
            await socket.SendAsync(request, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            var sizeBytes = new byte[4];
            await ReceiveExactlyAsync(socket, sizeBytes, timeout.Token).ConfigureAwait(false);
            var size = BinaryPrimitives.ReadInt32BigEndian(sizeBytes);
            if (size < 4 || size > 1 << 20)
            {
                throw new IOException($"ApiVersions response of {size} bytes");
            }
            var body = new byte[size];
            await ReceiveExactlyAsync(socket, body, timeout.Token).ConfigureAwait(false);
            if (BinaryPrimitives.ReadInt32BigEndian(body) != correlationId)
            {
                throw new IOException("ApiVersions response with the wrong correlation id");
            }
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException("connection closed before the ApiVersions response was complete");
            }
            buffer = buffer[read..];
        }
    }

    /// <summary>Request header v1 (api key, version, correlation id, client id) and the empty v0 body.</summary>
    private static byte[] ApiVersionsV0(int correlationId)
    {
        var frame = new byte[4 + 2 + 2 + 4 + 2 + s_clientId.Length];
        var span = frame.AsSpan();
        BinaryPrimitives.WriteInt32BigEndian(span, frame.Length - 4);
        BinaryPrimitives.WriteInt16BigEndian(span[4..], ApiVersionsKey);
        BinaryPrimitives.WriteInt16BigEndian(span[6..], 0);
        BinaryPrimitives.WriteInt32BigEndian(span[8..], correlationId);
        BinaryPrimitives.WriteInt16BigEndian(span[12..], (short)s_clientId.Length);
        s_clientId.CopyTo(span[14..]);
        return frame;
    }
}
