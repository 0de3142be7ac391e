using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Listening;

/// <summary>What a client did with a family on a cluster, for the client inventory.</summary>
public enum ClientUse
{
    Produce,
    Fetch,
    Commit,
}

/// <summary>One (family, cluster, use) a connection was routed to.</summary>
public readonly record struct ClientRouteUse(string Family, string Cluster, ClientUse Use);

/// <summary>
/// Who is on one client connection and where its requests went, for <c>GET /v1/clients</c>: the client id of its
/// requests, the software it names in ApiVersions (v3+, KIP-511), and each family and cluster it produced to,
/// fetched from and committed to. Noting a use already seen costs a scan of a few entries and no lock; a connection
/// keeps at most <see cref="MaxUses"/> of them, so memory stays bounded with many connections.
/// </summary>
public sealed class ClientActivity(string address)
{
    internal const int MaxUses = 64;

    private readonly Lock _gate = new();
    private ClientRouteUse[] _uses = [];

    public string Address { get; } = address;
    public DateTimeOffset ConnectedAt { get; } = DateTimeOffset.UtcNow;
    public string? ClientId { get; private set; }
    public string? SoftwareName { get; private set; }
    public string? SoftwareVersion { get; private set; }
    public IReadOnlyList<ClientRouteUse> Uses => Volatile.Read(ref _uses);

    /// <summary>The client id of a request header (clients send the same one on every request of a connection).</summary>
    public void NoteClientId(string? clientId)
    {
        if (clientId is not null && !ReferenceEquals(clientId, ClientId))
        {
            ClientId = clientId;
        }
    }

    /// <summary>An ApiVersions request: v3+ names the client software (KIP-511). A malformed one is left to its handler.</summary>
    public void NoteApiVersions(ReadOnlyMemory<byte> frame, short version)
    {
        try
        {
            var bodyOffset = FrameCodec.RequestBodyOffset(frame, ApiKey.ApiVersions, version, out var header);
            NoteClientId(header.ClientId);
            if (version >= 3)
            {
                var request = FrameCodec.DecodeBody<ApiVersionsRequest>(frame[bodyOffset..], version);
                SoftwareName = string.IsNullOrEmpty(request.ClientSoftwareName) ? SoftwareName : Bounded(request.ClientSoftwareName);
                SoftwareVersion = string.IsNullOrEmpty(request.ClientSoftwareVersion) ? SoftwareVersion : Bounded(request.ClientSoftwareVersion);
            }
        }
        catch (KafkaProtocolException)
        {
            // Answered by the ApiVersions handler (a broker replies to versions it does not know); nothing to note.
        }
    }

    /// <summary>The connection's requests were routed to <paramref name="cluster"/> for <paramref name="family"/>.</summary>
    public void Used(string family, string cluster, ClientUse use)
    {
        var uses = Volatile.Read(ref _uses);
        if (Contains(uses, family, cluster, use) || uses.Length >= MaxUses)
        {
            return;
        }
        lock (_gate)
        {
            if (!Contains(_uses, family, cluster, use) && _uses.Length < MaxUses)
            {
                Volatile.Write(ref _uses, [.. _uses, new ClientRouteUse(family, cluster, use)]);
            }
        }
    }

    private static bool Contains(ClientRouteUse[] uses, string family, string cluster, ClientUse use)
    {
        foreach (var entry in uses)
        {
            if (entry.Use == use && entry.Family == family && entry.Cluster == cluster)
            {
                return true;
            }
        }
        return false;
    }

    // Names a client chose: kept short, whatever it sends.
    private static string Bounded(string text) => text.Length <= 128 ? text : text[..128];
}

/// <summary>One connection as the client inventory shows it.</summary>
public sealed record ClientSnapshot(string ConnectionId, string Principal, string? ClientId, string? SoftwareName, string? SoftwareVersion,
    string Address, DateTimeOffset ConnectedAt, DateTimeOffset LastActiveAt, DateTimeOffset? ClosedAt, IReadOnlyList<ClientRouteUse> Uses);
