using System.Net;
using System.Net.Sockets;

namespace Switchback.Proxy.Tests.Integration;

/// <summary>Ports for a proxy that must bind the same ones again after a restart.</summary>
public static class FreePorts
{
    /// <summary>A port with <paramref name="count"/> free ports from it upwards.</summary>
    public static int Range(int count)
    {
        var random = new Random();
        for (var attempt = 0; attempt < 100; attempt++)
        {
            // Below the kernel's ephemeral range (32768+), so no outgoing connection takes one meanwhile.
            var start = random.Next(20_000, 32_000);
            var sockets = new List<Socket>();
            try
            {
                for (var p = start; p < start + count; p++)
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    sockets.Add(socket);
                    socket.Bind(new IPEndPoint(IPAddress.Loopback, p));
                }
                return start;
            }
            catch (SocketException)
            {
            }
            finally
            {
                sockets.ForEach(s => s.Dispose());
            }
        }
        throw new InvalidOperationException("No free port range found.");
    }
}
