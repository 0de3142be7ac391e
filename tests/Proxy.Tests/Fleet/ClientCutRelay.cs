using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Switchback.Proxy.Demo;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// A TCP relay in front of every broker of a mock cluster, which is told to advertise the relay's ports, so every
/// client reaches the brokers only through it. The mock advertises one address per broker to everyone, so the relay
/// tells clients apart by the client id of the first request on each connection: <see cref="Cut"/> closes a
/// client's connections and drops its new ones after their first request (never forwarded), as a network
/// partition between that client and the cluster would, while the other clients go on; <see cref="Heal"/> ends it.
/// </summary>
internal sealed class ClientCutRelay : IAsyncDisposable
{
    private const int MaxFirstFrameBytes = 1024 * 1024;

    private readonly List<TcpListener> _listeners = [];
    private readonly ConcurrentDictionary<Connection, string> _connections = new();
    private readonly ConcurrentDictionary<string, bool> _cut = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();

    public ClientCutRelay(MockKafkaCluster cluster)
    {
        var addresses = new List<string>();
        foreach (var brokerId in cluster.BrokerIds)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            _listeners.Add(listener);
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            cluster.SetBrokerAdvertisedAddress(brokerId, "127.0.0.1", port);
            addresses.Add($"127.0.0.1:{port}");
            _ = AcceptLoopAsync(listener, cluster.GetBrokerListener(brokerId));
        }
        BootstrapServers = string.Join(',', addresses);
    }

    /// <summary>The relay's addresses, one per broker, in broker id order.</summary>
    public string BootstrapServers { get; }

    /// <summary>Cuts <paramref name="clientId"/> off: its open connections close, new ones are dropped.</summary>
    public void Cut(string clientId)
    {
        _cut[clientId] = true;
        foreach (var (connection, owner) in _connections)
        {
            if (owner == clientId)
            {
                connection.Close();
            }
        }
    }

    /// <summary>Lets <paramref name="clientId"/> through again.</summary>
    public void Heal(string clientId) => _cut.TryRemove(clientId, out _);

    private async Task AcceptLoopAsync(TcpListener listener, IPEndPoint broker)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = RelayAsync(new Connection(client), broker);
        }
    }

    private async Task RelayAsync(Connection connection, IPEndPoint broker)
    {
        try
        {
            using var fromClient = new NetworkStream(connection.Client, ownsSocket: false);
            var size = new byte[4];
            await fromClient.ReadExactlyAsync(size, _stop.Token);
            var length = BinaryPrimitives.ReadInt32BigEndian(size);
            if (length is < 10 or > MaxFirstFrameBytes)
            {
                return;
            }
            var first = new byte[length];
            await fromClient.ReadExactlyAsync(first, _stop.Token);
            var clientId = ClientIdOf(first);
            _connections[connection] = clientId;
            if (_cut.ContainsKey(clientId))
            {
                return;
            }
            await connection.Upstream.ConnectAsync(broker, _stop.Token);
            using var toBroker = new NetworkStream(connection.Upstream, ownsSocket: false);
            await toBroker.WriteAsync(size, _stop.Token);
            await toBroker.WriteAsync(first, _stop.Token);
            var up = fromClient.CopyToAsync(toBroker, _stop.Token);
            var down = toBroker.CopyToAsync(fromClient, _stop.Token);
            await Task.WhenAny(up, down);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or EndOfStreamException or ObjectDisposedException)
        {
        }
        finally
        {
            _connections.TryRemove(connection, out _);
            connection.Close();
        }
    }

    // Request header v1/v2: api key (2), api version (2), correlation id (4), client id (int16-length string).
    private static string ClientIdOf(byte[] frame)
    {
        var length = BinaryPrimitives.ReadInt16BigEndian(frame.AsSpan(8));
        return length < 0 || 10 + length > frame.Length ? "" : Encoding.UTF8.GetString(frame, 10, length);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var listener in _listeners)
        {
            listener.Stop();
        }
        foreach (var connection in _connections.Keys)
        {
            connection.Close();
        }
        _stop.Dispose();
    }

    private sealed class Connection(Socket client)
    {
        public Socket Client { get; } = client;
        public Socket Upstream { get; } = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

        public void Close()
        {
            Client.Dispose();
            Upstream.Dispose();
        }
    }
}
