using System.Collections.Concurrent;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.Routing;

/// <summary>
/// One family's route at one point in time. <see cref="Epoch"/> increases with every switch and rollback (not with a
/// window's close); <see cref="Window"/> is the family's rollback window, null while none has opened.
/// </summary>
public sealed record FamilyRoute(
    string Family,
    ClusterRoute Route,
    long Epoch,
    DateTimeOffset UpdatedAt,
    RollbackWindow? Window,
    long WriteEpoch = 0)
{
    // WriteEpoch: the epoch at which the write cluster last changed; producer-id mappings are scoped by it.
    public const string DefaultFamilyName = "(default)";
    public bool IsDefault => Family == DefaultFamilyName;
}

/// <summary>
/// Maps topic, group and transactional-id names to families. Patterns never change at run time, so the
/// answer for a name is cached once for the life of the process (bounded, so a client cannot grow it forever).
/// </summary>
public sealed class FamilyMatcher
{
    private const int MaxCachedNames = 100_000;
    private readonly IReadOnlyList<FamilyConfig> _families;
    private readonly ConcurrentDictionary<string, int> _topics = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _groups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _transactionalIds = new(StringComparer.Ordinal);

    public FamilyMatcher(IReadOnlyList<FamilyConfig> families) => _families = families;

    /// <summary>Index of the first family whose topic patterns match, or -1 for the default route.</summary>
    public int MatchTopic(string topic) => Match(_topics, topic, static f => f.Topics);

    /// <summary>As <see cref="MatchTopic(string)"/>, without a string for a name already seen.</summary>
    public int MatchTopic(ReadOnlySpan<char> topic) =>
        _topics.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(topic, out var index) ? index : MatchTopic(topic.ToString());
    public int MatchGroup(string group) => Match(_groups, group, static f => f.Groups);
    public int MatchTransactionalId(string id) => Match(_transactionalIds, id, static f => f.TransactionalIds);

    private int Match(ConcurrentDictionary<string, int> cache, string name, Func<FamilyConfig, IReadOnlyList<NamePattern>> patterns)
    {
        if (cache.TryGetValue(name, out var index))
        {
            return index;
        }
        index = -1;
        for (var i = 0; i < _families.Count && index < 0; i++)
        {
            foreach (var pattern in patterns(_families[i]))
            {
                if (pattern.IsMatch(name))
                {
                    index = i;
                    break;
                }
            }
        }
        if (cache.Count < MaxCachedNames)
        {
            cache.TryAdd(name, index);
        }
        return index;
    }
}

/// <summary>
/// An immutable snapshot of every family's route. Readers take one snapshot per request; a switch builds a new
/// table and swaps it in atomically (<see cref="RouteTableHolder"/>), so no request ever sees half an update.
/// </summary>
public sealed class RouteTable
{
    private readonly FamilyMatcher _matcher;

    public RouteTable(FamilyMatcher matcher, IReadOnlyList<FamilyRoute> families, FamilyRoute defaultRoute)
    {
        _matcher = matcher;
        Families = families;
        Default = defaultRoute;
    }

    public IReadOnlyList<FamilyRoute> Families { get; }
    public FamilyRoute Default { get; }

    public FamilyRoute ForTopic(string topic) => At(_matcher.MatchTopic(topic));
    public FamilyRoute ForTopic(ReadOnlySpan<char> topic) => At(_matcher.MatchTopic(topic));
    public FamilyRoute ForGroup(string group) => At(_matcher.MatchGroup(group));
    public FamilyRoute ForTransactionalId(string id) => At(_matcher.MatchTransactionalId(id));

    public FamilyRoute? Find(string family)
    {
        foreach (var route in Families)
        {
            if (route.Family == family)
            {
                return route;
            }
        }
        return null;
    }

    private FamilyRoute At(int index) => index < 0 ? Default : Families[index];

    /// <summary>A copy of this table with one family's route replaced.</summary>
    public RouteTable With(FamilyRoute replacement)
    {
        var families = new FamilyRoute[Families.Count];
        for (var i = 0; i < families.Length; i++)
        {
            families[i] = Families[i].Family == replacement.Family ? replacement : Families[i];
        }
        return new RouteTable(_matcher, families, Default);
    }

    public static RouteTable FromConfig(ProxyConfig config)
    {
        var now = DateTimeOffset.UtcNow;
        var families = new FamilyRoute[config.Families.Count];
        for (var i = 0; i < families.Length; i++)
        {
            families[i] = new FamilyRoute(config.Families[i].Name, config.Families[i].InitialRoute, 0, now, null);
        }
        return new RouteTable(new FamilyMatcher(config.Families), families,
            new FamilyRoute(FamilyRoute.DefaultFamilyName, config.DefaultRoute, 0, now, null));
    }
}

/// <summary>Holds the current <see cref="RouteTable"/>; swaps are atomic and observers are told after each.</summary>
public sealed class RouteTableHolder(RouteTable initial)
{
    private RouteTable _current = initial;

    public RouteTable Current => Volatile.Read(ref _current);

    public event Action<RouteTable>? Changed;

    public void Swap(RouteTable next)
    {
        Interlocked.Exchange(ref _current, next);
        Changed?.Invoke(next);
    }
}
