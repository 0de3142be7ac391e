using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;
using Switchback.Proxy.Hosting;
using Xunit;

namespace Switchback.Proxy.Tests.Integration.Listening;

/// <summary>
/// Hostile frames on a raw TCP connection to the bootstrap port: the proxy closes that one connection, logs why,
/// and keeps serving the other clients.
/// </summary>
[Collection(ProxyCollection.Name)]
public sealed class MalformedFrameTests(ProxyFixture fixture) : IAsyncLifetime
{
    private const int MaxFrameBytes = 64 * 1024;

    private readonly CapturingLoggerProvider _logs = new();
    private ProxyHost _proxy = null!;

    public async Task InitializeAsync() =>
        _proxy = await fixture.StartProxyAsync(new Dictionary<string, string?> { ["Switchback:Limits:MaxFrameBytes"] = ExternalClients.Text(MaxFrameBytes) }, _logs);

    public async Task DisposeAsync() => await _proxy.DisposeAsync();

    public static TheoryData<string, byte[], string> HostileFrames => new()
    {
        { "negative size", SizePrefix(-1), "Invalid frame size -1" },
        { "oversized", [.. SizePrefix(MaxFrameBytes + 1), .. new byte[1024]], $"exceeds the limit of {MaxFrameBytes} bytes" },
        { "shorter than a request header", [.. SizePrefix(4), 0, 18, 0, 0], "shorter than a request header" },
        // A valid size followed by bytes that are no request: api key 0xDEAD does not exist.
        { "garbage after a valid size", [.. SizePrefix(16), 0xDE, 0xAD, 0xBE, 0xEF, 0xDE, 0xAD, 0xBE, 0xEF, 0xDE, 0xAD, 0xBE, 0xEF, 0xDE, 0xAD, 0xBE, 0xEF], "Unsupported API key" },
    };

    [Theory]
    [MemberData(nameof(HostileFrames))]
    public async Task HostileFrame_ClosesOnlyThatConnection_WithLoggedReason_WhileOtherClientsKeepWorking(string kind, byte[] bytes, string reason)
    {
        var topic = fixture.NewTopic("orders");
        using var producer = new ProducerBuilder<string, string>(fixture.ProducerConfig(_proxy.BootstrapServers)).Build();
        await fixture.ProduceAsync(producer, topic, 1, "before");

        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(IPEndPoint.Parse(_proxy.BootstrapServers));
            await socket.SendAsync(bytes);
            Assert.True(await IsClosedByPeerAsync(socket, TimeSpan.FromSeconds(10)), $"the proxy kept the connection open after a {kind} frame");
        }

        var closed = await WaitForAsync(() => _logs.Entries.FirstOrDefault(e => e.EventId == 1002 && e.Message.Contains(reason, StringComparison.Ordinal)));
        Assert.True(closed is not null, $"no 'connection closed' log naming '{reason}'; closes logged: " +
            string.Join(" | ", _logs.Entries.Where(e => e.EventId == 1002).Select(e => e.Message)));

        // The producer's connections, opened before, still work.
        await fixture.ProduceAsync(producer, topic, 5, "after");
        Assert.Equal(6, ProxyFixture.ReadDirectly(fixture.Source, topic).Count);
    }

    private static byte[] SizePrefix(int size)
    {
        var prefix = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(prefix, size);
        return prefix;
    }

    private static async Task<bool> IsClosedByPeerAsync(Socket socket, TimeSpan timeout)
    {
        var buffer = new byte[1024];
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                if (await socket.ReceiveAsync(buffer, SocketFlags.None, cancel.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true; // reset
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<T?> WaitForAsync<T>(Func<T?> probe) where T : class
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            if (probe() is { } found || DateTime.UtcNow > deadline)
            {
                return probe();
            }
            await Task.Delay(50);
        }
    }
}
