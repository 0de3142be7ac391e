using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Switchback.Proxy.VirtualCluster;

/// <summary>
/// Client-visible topic ids. Each cluster gives a topic its own id; clients must see one id per topic whatever
/// cluster it is read from (a changed id looks like a re-created topic), so the proxy derives its own id from the
/// name: stable across switches, restarts and proxy instances. Upstream ids are mapped per cluster at the edges.
/// </summary>
public sealed class TopicIds
{
    private readonly ConcurrentDictionary<string, Guid> _byName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, string> _byId = new();

    public Guid IdOf(string topic)
    {
        if (_byName.TryGetValue(topic, out var id))
        {
            return id;
        }
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes("switchback-topic:" + topic), hash);
        hash[6] = (byte)((hash[6] & 0x0F) | 0x80); // version nibble 8 (custom), never the zero or sentinel ids
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        id = new Guid(hash[..16], bigEndian: true);
        _byName.TryAdd(topic, id);
        _byId.TryAdd(id, topic);
        return id;
    }

    /// <summary>Name of a topic whose proxy id was handed out (or can be derived from <paramref name="knownNames"/>).</summary>
    public string? NameOf(Guid id, IEnumerable<string>? knownNames = null)
    {
        if (_byId.TryGetValue(id, out var name))
        {
            return name;
        }
        if (knownNames is not null)
        {
            foreach (var candidate in knownNames)
            {
                if (IdOf(candidate) == id)
                {
                    return candidate;
                }
            }
        }
        return null;
    }
}
