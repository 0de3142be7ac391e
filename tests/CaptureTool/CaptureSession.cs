using Switchback.Proxy.Demo;

namespace Switchback.CaptureTool;

/// <summary>
/// A fresh 3-broker mock cluster with one recording relay per broker; each broker advertises its relay, so clients
/// that bootstrap from <see cref="BootstrapServers"/> never bypass the recording.
/// </summary>
internal sealed class CaptureSession : IAsyncDisposable
{
    private readonly List<RecordingRelay> _relays = [];
    private bool _disposed;

    private CaptureSession(string client)
    {
        Client = client;
        Cluster = MockKafkaCluster.Start(3);
        foreach (var brokerId in Cluster.BrokerIds)
        {
            var relay = new RecordingRelay(Cluster.GetBrokerListener(brokerId), Recorder);
            _relays.Add(relay);
            Cluster.SetBrokerAdvertisedAddress(brokerId, "127.0.0.1", relay.LocalEndPoint.Port);
        }
        BootstrapServers = string.Join(",", _relays.Select(r => $"127.0.0.1:{r.LocalEndPoint.Port}"));
    }

    public string Client { get; }

    public MockKafkaCluster Cluster { get; }

    public FrameRecorder Recorder { get; } = new();

    public string BootstrapServers { get; }

    public static CaptureSession Start(string client) => new(client);

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        // Stop the relays first so the clients' last frames are recorded before the brokers vanish.
        foreach (var relay in _relays)
        {
            await relay.DisposeAsync();
        }
        Cluster.Dispose();
    }
}
