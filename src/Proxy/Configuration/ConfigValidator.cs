using System.Globalization;
using System.Net;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Switchback.Proxy.Routing;
using Switchback.Proxy.Security;

namespace Switchback.Proxy.Configuration;

/// <summary>A configuration problem, named by its key (e.g. <c>Switchback:Families:0:Write</c>).</summary>
public sealed class ConfigException(string key, string problem) : Exception($"Invalid configuration '{key}': {problem}")
{
    public string Key { get; } = key;
}

/// <summary>Binds the <c>Switchback</c> section strictly (unknown keys are errors) and validates it into a <see cref="ProxyConfig"/>.</summary>
public static class ConfigValidator
{
    public const string SectionName = "Switchback";

    public static ProxyConfig Load(IConfiguration configuration)
    {
        var section = configuration.GetSection(SectionName);
        if (!section.Exists())
        {
            throw new ConfigException(SectionName, "section is missing.");
        }
        RejectUnknownKeys(section, typeof(SwitchbackOptions));
        var options = new SwitchbackOptions();
        try
        {
            section.Bind(options, o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw UnconvertibleValue(e) ?? new ConfigException(SectionName, e.InnerException?.Message ?? e.Message);
        }
        return Validate(options);
    }

    public static ProxyConfig Validate(SwitchbackOptions options)
    {
        const string root = SectionName;
        var listener = ParseEndPoint($"{root}:Listener:Bind", options.Listener.Bind);
        if (string.IsNullOrWhiteSpace(options.Listener.AdvertisedHost))
        {
            throw new ConfigException($"{root}:Listener:AdvertisedHost", "must name the host clients use to reach the proxy.");
        }
        var admin = ParseEndPoint($"{root}:Admin:Bind", options.Admin.Bind);
        if (options.Admin.Token is { Length: 0 })
        {
            throw new ConfigException($"{root}:Admin:Token", "must not be empty (omit it to disable authentication).");
        }
        if (options.Admin.ReadToken is { } readToken)
        {
            if (readToken.Length == 0)
            {
                throw new ConfigException($"{root}:Admin:ReadToken", "must not be empty (omit it to have no read-only token).");
            }
            if (options.Admin.Token is null)
            {
                throw new ConfigException($"{root}:Admin:ReadToken", "needs Admin:Token as well: without it anyone could switch, and a read-only token would protect nothing.");
            }
            if (readToken == options.Admin.Token)
            {
                throw new ConfigException($"{root}:Admin:ReadToken", "must differ from Admin:Token.");
            }
        }
        if (string.IsNullOrWhiteSpace(options.StateDirectory))
        {
            throw new ConfigException($"{root}:StateDirectory", "must be a directory path.");
        }

        if (options.Clusters.Count == 0)
        {
            throw new ConfigException($"{root}:Clusters", "at least one cluster is required.");
        }
        var clusters = new List<ClusterConfig>();
        foreach (var (name, cluster) in options.Clusters.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            var key = $"{root}:Clusters:{name}:BootstrapServers";
            if (string.IsNullOrWhiteSpace(cluster.BootstrapServers))
            {
                throw new ConfigException(key, "is required (host:port[,host:port...]).");
            }
            var servers = cluster.BootstrapServers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => ParseHostPort(key, s)).ToList();
            clusters.Add(new ClusterConfig(name, clusters.Count, servers, SecurityConfigLoader.Upstream($"{root}:Clusters:{name}", cluster)));
        }
        var clusterNames = clusters.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);

        var defaultRoute = ParseRoute($"{root}:Default", options.Default.Write, options.Default.Read, clusterNames,
            fallback: clusters[0].Name);

        var families = new List<FamilyConfig>();
        var familyNames = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Families.Count; i++)
        {
            var family = options.Families[i];
            var key = $"{root}:Families:{i}";
            if (string.IsNullOrWhiteSpace(family.Name))
            {
                throw new ConfigException($"{key}:Name", "is required.");
            }
            if (family.Name == FamilyRoute.DefaultFamilyName || !familyNames.Add(family.Name))
            {
                throw new ConfigException($"{key}:Name", $"'{family.Name}' is reserved or used by another family.");
            }
            if (family.Topics.Count + family.Groups.Count + family.TransactionalIds.Count == 0)
            {
                throw new ConfigException(key, "a family needs at least one topic, group or transactional-id pattern.");
            }
            families.Add(new FamilyConfig(
                family.Name,
                Patterns($"{key}:Topics", family.Topics),
                Patterns($"{key}:Groups", family.Groups),
                Patterns($"{key}:TransactionalIds", family.TransactionalIds),
                ParseRoute(key, family.Write, family.Read, clusterNames, fallback: null),
                SecurityConfigLoader.AllowedPrincipals($"{key}:AllowedPrincipals", family.AllowedPrincipals),
                family.MirrorBack,
                ParseAbortWhen($"{key}:AbortWhen", family.AbortWhen),
                ValidateOwner($"{key}:Owner", family.Owner),
                ValidateGates($"{key}:Gates", family.Gates),
                OffsetTranslationParser.Parse($"{key}:OffsetTranslation", family.OffsetTranslation, family.Read, clusters.Select(c => c.Name).ToList())));
        }

        var limits = options.Limits;
        Positive($"{root}:Limits:MaxFrameBytes", limits.MaxFrameBytes);
        Positive($"{root}:Limits:MaxInFlightPerConnection", limits.MaxInFlightPerConnection);
        Positive($"{root}:Limits:UpstreamRequestTimeoutMs", limits.UpstreamRequestTimeoutMs);
        Positive($"{root}:Limits:UpstreamConnectTimeoutMs", limits.UpstreamConnectTimeoutMs);
        Positive($"{root}:Limits:MetadataRefreshIntervalMs", limits.MetadataRefreshIntervalMs);
        Positive($"{root}:Limits:MaxConnections", limits.MaxConnections);
        Positive($"{root}:Limits:IdleTimeoutMs", limits.IdleTimeoutMs);

        var brokerPortStart = options.Listener.BrokerPortStart ?? (listener.Port == 0 ? 0 : listener.Port + 1);
        if (brokerPortStart < 0 || brokerPortStart + options.Listener.MaxBrokers > 65536)
        {
            throw new ConfigException($"{root}:Listener:BrokerPortStart", $"{brokerPortStart} leaves no room for {options.Listener.MaxBrokers} broker ports.");
        }
        Positive($"{root}:Listener:MaxBrokers", options.Listener.MaxBrokers);
        var listenerTls = SecurityConfigLoader.ServerTls($"{root}:Listener:Tls", options.Listener.Tls, allowClientCa: true);
        var listenerSasl = SecurityConfigLoader.ServerSasl($"{root}:Listener:Sasl", options.Listener.Sasl);
        var adminTls = SecurityConfigLoader.ServerTls($"{root}:Admin:Tls", options.Admin.Tls, allowClientCa: false);
        if (options.Scorecard.IntervalSeconds is < 1 or > 3600)
        {
            throw new ConfigException($"{root}:Scorecard:IntervalSeconds", $"must be between 1 and 3600 (was {options.Scorecard.IntervalSeconds}).");
        }
        var fleet = options.Fleet is { } fleetOptions ? ValidateFleet($"{root}:Fleet", fleetOptions, clusterNames, listener) : null;

        return new ProxyConfig(
            listener,
            new ListenerConfig(brokerPortStart, options.Listener.MaxBrokers, BrokerPortStartDefaulted: options.Listener.BrokerPortStart is null),
            options.Listener.AdvertisedHost,
            listener.Port,
            admin,
            options.Admin.Token,
            options.StateDirectory,
            clusters,
            families,
            defaultRoute,
            new LimitsConfig(
                limits.MaxFrameBytes,
                limits.MaxInFlightPerConnection,
                TimeSpan.FromMilliseconds(limits.UpstreamRequestTimeoutMs),
                TimeSpan.FromMilliseconds(limits.UpstreamConnectTimeoutMs),
                TimeSpan.FromMilliseconds(limits.MetadataRefreshIntervalMs),
                limits.MaxConnections,
                TimeSpan.FromMilliseconds(limits.IdleTimeoutMs)),
            string.IsNullOrWhiteSpace(options.ClusterId) ? "switchback" : options.ClusterId,
            listenerTls is null && listenerSasl is null ? null : new ListenerSecurity(listenerTls, listenerSasl),
            adminTls,
            fleet,
            options.Admin.ReadToken,
            TimeSpan.FromSeconds(options.Scorecard.IntervalSeconds));
    }

    private static string? ValidateOwner(string key, string? owner)
    {
        if (owner is not null && string.IsNullOrWhiteSpace(owner))
        {
            throw new ConfigException(key, "must name who decides (a person or team), or be omitted.");
        }
        return owner?.Trim();
    }

    private static LagLimits? ValidateGates(string key, FamilyGatesOptions? gates)
    {
        if (gates is null || (gates.MaxLagRecords is null && gates.MaxLagMs is null))
        {
            return null;
        }
        if (gates.MaxLagRecords is < 0)
        {
            throw new ConfigException($"{key}:MaxLagRecords", $"must be 0 or more records (was {gates.MaxLagRecords}).");
        }
        if (gates.MaxLagMs is < 0)
        {
            throw new ConfigException($"{key}:MaxLagMs", $"must be 0 or more milliseconds (was {gates.MaxLagMs}).");
        }
        // A time limit alone bounds the lag by age only; a records limit alone, or both, bound it by records too.
        return new LagLimits(gates.MaxLagRecords, gates.MaxLagMs);
    }

    private static FleetConfig ValidateFleet(string key, FleetOptions fleet, HashSet<string> clusters, IPEndPoint listener)
    {
        if (string.IsNullOrWhiteSpace(fleet.Cluster) || !clusters.Contains(fleet.Cluster))
        {
            throw new ConfigException($"{key}:Cluster", $"must name a configured cluster to host the control topic (configured: {string.Join(", ", clusters.Order(StringComparer.Ordinal))}).");
        }
        if (string.IsNullOrWhiteSpace(fleet.Topic) || fleet.Topic.Length > 200 || fleet.Topic.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
        {
            throw new ConfigException($"{key}:Topic", $"'{fleet.Topic}' is not a valid topic name (letters, digits, '.', '_', '-').");
        }
        if (fleet.SessionTimeoutMs is < 1000 or > 300_000)
        {
            throw new ConfigException($"{key}:SessionTimeoutMs", $"must be between 1000 and 300000 (was {fleet.SessionTimeoutMs}).");
        }
        if (fleet.ReadWaitMs is < 1 or > 5000)
        {
            throw new ConfigException($"{key}:ReadWaitMs", $"must be between 1 and 5000 (was {fleet.ReadWaitMs}).");
        }
        if (fleet.InstanceId is { } id && string.IsNullOrWhiteSpace(id))
        {
            throw new ConfigException($"{key}:InstanceId", "must not be empty (omit it for host name and listener port).");
        }
        var instanceId = fleet.InstanceId ?? $"{Environment.MachineName}:{listener.Port}";
        return new FleetConfig(fleet.Cluster, fleet.Topic, instanceId, TimeSpan.FromMilliseconds(fleet.SessionTimeoutMs),
            TimeSpan.FromMilliseconds(fleet.ReadWaitMs));
    }

    /// <summary>A value of the wrong type, as the binder reports it, turned into an error that names its key and what it needs.</summary>
    private static ConfigException? UnconvertibleValue(Exception e)
    {
        var match = System.Text.RegularExpressions.Match.Empty;
        // Nested values are reported by an inner exception.
        for (var current = e; current is not null && !match.Success; current = current.InnerException)
        {
            match = System.Text.RegularExpressions.Regex.Match(current.Message, "value '(?<value>.*)' at '(?<key>[^']+)' to type '(?<type>[^']+)'");
        }
        if (!match.Success)
        {
            return null;
        }
        var type = match.Groups["type"].Value;
        var needed = type.Contains("Int32", StringComparison.Ordinal) || type.Contains("Int64", StringComparison.Ordinal) ? "a whole number"
            : type.Contains("Boolean", StringComparison.Ordinal) ? "true or false"
            : type;
        return new ConfigException(match.Groups["key"].Value, $"'{match.Groups["value"].Value}' is not {needed}.");
    }

    private static void Positive(string key, int value)
    {
        if (value <= 0)
        {
            throw new ConfigException(key, $"must be positive (was {value}).");
        }
    }

    private static List<NamePattern> Patterns(string key, List<string> patterns)
    {
        var result = new List<NamePattern>();
        for (var i = 0; i < patterns.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(patterns[i]))
            {
                throw new ConfigException($"{key}:{i}", "pattern must not be empty.");
            }
            result.Add(new NamePattern(patterns[i]));
        }
        return result;
    }

    private static AbortCriteria? ParseAbortWhen(string key, AbortWhenOptions? options)
    {
        if (options is null)
        {
            return null;
        }
        if (options.ProduceErrorRatePercent is null && options.ProduceLatencyP99Ms is null && options.StrayWrites is null)
        {
            throw new ConfigException(key, "names no criterion: set ProduceErrorRatePercent, ProduceLatencyP99Ms and/or StrayWrites (or remove AbortWhen).");
        }
        if (options.ProduceErrorRatePercent is { } rate && (double.IsNaN(rate) || rate <= 0 || rate > 100))
        {
            throw new ConfigException($"{key}:ProduceErrorRatePercent", $"must be a percentage above 0 and at most 100, not {rate}.");
        }
        if (options.ProduceLatencyP99Ms is { } latency && (double.IsNaN(latency) || latency <= 0))
        {
            throw new ConfigException($"{key}:ProduceLatencyP99Ms", $"must be a positive number of milliseconds, not {latency}.");
        }
        if (options.StrayWrites is { } stray && stray < 1)
        {
            throw new ConfigException($"{key}:StrayWrites", $"must be at least 1 (records written to the old cluster around the proxy), not {stray}.");
        }
        if (options.ForSeconds is not { } seconds)
        {
            throw new ConfigException($"{key}:ForSeconds", "is required: how long a criterion must hold before the family rolls back.");
        }
        if (seconds < 1 || seconds > 3600)
        {
            throw new ConfigException($"{key}:ForSeconds", $"must be from 1 to 3600, not {seconds}.");
        }
        return new AbortCriteria(options.ProduceErrorRatePercent, options.ProduceLatencyP99Ms, options.StrayWrites, TimeSpan.FromSeconds(seconds));
    }

    private static ClusterRoute ParseRoute(string key, string? write, string? read, HashSet<string> clusters, string? fallback)
    {
        write ??= fallback;
        read ??= fallback;
        if (write is null)
        {
            throw new ConfigException($"{key}:Write", "is required.");
        }
        if (read is null)
        {
            throw new ConfigException($"{key}:Read", "is required.");
        }
        if (!clusters.Contains(write))
        {
            throw new ConfigException($"{key}:Write", $"unknown cluster '{write}' (known: {string.Join(", ", clusters)}).");
        }
        if (!clusters.Contains(read))
        {
            throw new ConfigException($"{key}:Read", $"unknown cluster '{read}' (known: {string.Join(", ", clusters)}).");
        }
        return new ClusterRoute(write, read);
    }

    internal static IPEndPoint ParseEndPoint(string key, string? value)
    {
        if (string.IsNullOrWhiteSpace(value) || !IPEndPoint.TryParse(value, out var endPoint) || !value.Contains(':'))
        {
            throw new ConfigException(key, $"'{value}' is not an address:port (e.g. 127.0.0.1:9092).");
        }
        return endPoint;
    }

    private static DnsEndPoint ParseHostPort(string key, string value)
    {
        var colon = value.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is <= 0 or > 65535)
        {
            throw new ConfigException(key, $"'{value}' is not host:port.");
        }
        return new DnsEndPoint(value[..colon].Trim('[', ']'), port);
    }

    /// <summary>Walks the configuration tree against the option types so a misspelt key stops start-up, naming it.</summary>
    private static void RejectUnknownKeys(IConfigurationSection section, Type type)
    {
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            var valueType = type.GetGenericArguments()[1];
            foreach (var child in section.GetChildren())
            {
                RejectUnknownKeys(child, valueType);
            }
            return;
        }
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
        {
            var elementType = type.GetGenericArguments()[0];
            foreach (var child in section.GetChildren())
            {
                if (!int.TryParse(child.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    throw new ConfigException(child.Path, "expected a list.");
                }
                RejectUnknownKeys(child, elementType);
            }
            return;
        }
        if (type == typeof(string) || (Nullable.GetUnderlyingType(type) ?? type).IsPrimitive)
        {
            if (section.GetChildren().Any())
            {
                throw new ConfigException(section.Path, "expected a single value, found an object.");
            }
            return;
        }
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance);
        foreach (var child in section.GetChildren())
        {
            var property = properties.FirstOrDefault(p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                throw new ConfigException(child.Path,
                    $"unknown setting (known here: {string.Join(", ", properties.Select(p => p.Name))}).");
            }
            RejectUnknownKeys(child, property.PropertyType);
        }
    }
}
