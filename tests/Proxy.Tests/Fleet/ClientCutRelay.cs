using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Tests.Fronts;

namespace Switchback.Proxy.Tests.Fleet;

/// <summary>
/// A TCP relay in front of every broker of a mock cluster, which is told to advertise the relay's ports, so every
/// client reaches the brokers only through it. The mock advertises one address per broker to everyone, so the relay
/// tells clients apart by the client id of the first request on each connection: <see cref="Cut"/> closes a
/// client's connections and drops its new ones after their first request (never forwarded), as a network
/// partition between that client and the cluster would, while the other clients go on; <see cref="Heal"/> ends it.
/// </summary>
internal sealed class ClientCutRelay(MockKafkaCluster cluster) : KafkaFront(cluster)
{
    private const int MaxFirstFrameBytes = 1024 * 1024;

    private readonly ConcurrentDictionary<Connection, string> _connections = new();
    private readonly ConcurrentDictionary<string, bool> _cut = new(StringComparer.Ordinal);

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

    /// <summary>Reads the first request for the client id, then copies bytes both ways until either side ends.</summary>
    protected override async Task RelayAsync(Connection connection)
    {
        try
        {
            using var fromClient = new NetworkStream(connection.Client, ownsSocket: false);
            var size = new byte[4];
            await fromClient.ReadExactlyAsync(size, Stopping);
            var length = BinaryPrimitives.ReadInt32BigEndian(size);
            if (length is < 10 or > MaxFirstFrameBytes)
            {
                return;
            }
            var first = new byte[length];
            await fromClient.ReadExactlyAsync(first, Stopping);
            var clientId = ClientIdOf(first);
            _connections[connection] = clientId;
            if (_cut.ContainsKey(clientId))
            {
                return;
            }
            connection.Upstream.NoDelay = true;
            await connection.Upstream.ConnectAsync(connection.UpstreamEndPoint, Stopping);
            using var toBroker = new NetworkStream(connection.Upstream, ownsSocket: false);
            await toBroker.WriteAsync(size, Stopping);
            await toBroker.WriteAsync(first, Stopping);
            var up = fromClient.CopyToAsync(toBroker, Stopping);
            var down = toBroker.CopyToAsync(fromClient, Stopping);
            await Task.WhenAny(up, down);
        }
        finally
        {
            _connections.TryRemove(connection, out _);
        }
    }

    // Request header v1/v2: api key (2), api version (2), correlation id (4), client id (int16-length string).
    private static string ClientIdOf(byte[] frame)
    {
        var length = BinaryPrimitives.ReadInt16BigEndian(frame.AsSpan(8));
        return length < 0 || 10 + length > frame.Length ? "" : Encoding.UTF8.GetString(frame, 10, length);
    }
}
