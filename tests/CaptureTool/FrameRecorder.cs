using System.Buffers.Binary;
using System.Collections.Concurrent;

namespace Switchback.CaptureTool;

/// <summary>Whether a frame went from client to broker or back.</summary>
internal enum FrameDirection
{
    Request,
    Response,
}

/// <summary>One captured frame body (without its 4-byte size prefix) and the request it belongs to.</summary>
internal sealed record CapturedFrame(
    long Sequence,
    int Connection,
    FrameDirection Direction,
    short ApiKey,
    short ApiVersion,
    int CorrelationId,
    byte[] Body);

/// <summary>Collects the frames of every relayed connection of one capture run, in arrival order.</summary>
internal sealed class FrameRecorder
{
    private readonly ConcurrentQueue<CapturedFrame> _frames = new();
    private long _sequence;
    private int _connections;

    public int NextConnectionId() => Interlocked.Increment(ref _connections);

    public IReadOnlyList<CapturedFrame> Frames => [.. _frames.OrderBy(f => f.Sequence)];

    /// <summary>Per-connection state pairing responses with requests by correlation id.</summary>
    public ConnectionRecorder ForConnection() => new(this, NextConnectionId());

    private void Add(int connection, FrameDirection direction, short apiKey, short apiVersion, int correlationId, byte[] body) =>
        _frames.Enqueue(new CapturedFrame(
            Interlocked.Increment(ref _sequence), connection, direction, apiKey, apiVersion, correlationId, body));

    internal sealed class ConnectionRecorder(FrameRecorder owner, int connection)
    {
        private readonly ConcurrentDictionary<int, (short ApiKey, short ApiVersion)> _inFlight = new();

        public int Connection { get; } = connection;

        public void Request(byte[] body)
        {
            if (body.Length < 8)
            {
                owner.Add(Connection, FrameDirection.Request, -1, -1, -1, body);
                return;
            }
            var apiKey = BinaryPrimitives.ReadInt16BigEndian(body);
            var apiVersion = BinaryPrimitives.ReadInt16BigEndian(body.AsSpan(2));
            var correlationId = BinaryPrimitives.ReadInt32BigEndian(body.AsSpan(4));
            _inFlight[correlationId] = (apiKey, apiVersion);
            owner.Add(Connection, FrameDirection.Request, apiKey, apiVersion, correlationId, body);
        }

        public void Response(byte[] body)
        {
            if (body.Length < 4)
            {
                owner.Add(Connection, FrameDirection.Response, -1, -1, -1, body);
                return;
            }
            var correlationId = BinaryPrimitives.ReadInt32BigEndian(body);
            var (apiKey, apiVersion) = _inFlight.TryRemove(correlationId, out var request) ? request : ((short)-1, (short)-1);
            owner.Add(Connection, FrameDirection.Response, apiKey, apiVersion, correlationId, body);
        }
    }
}
