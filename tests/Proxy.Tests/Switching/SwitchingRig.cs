using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Tests.Integration;
using Switchback.Proxy.Tests.Integration.Routing;
using Xunit;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>One record as read back directly from a cluster.</summary>
public sealed record StoredRecord(string Cluster, int Partition, long Offset, string Key, string Value);

/// <summary>An admin API answer: status and parsed JSON body.</summary>
public sealed record AdminAnswer(HttpStatusCode Status, JsonElement Body)
{
    public override string ToString() => $"{(int)Status} {Body}";
}

/// <summary>
/// Two in-process mock clusters (<c>source</c>, <c>target</c>) with the same topics, and a proxy in front of them
/// with the family <c>orders</c> (topics <c>orders.*</c>, groups and transactional ids <c>orders-*</c>) on
/// <c>source</c>. Each rig has its own state directory, so restarts keep routes and the audit log. Optionally a
/// <see cref="GroupApisFront"/> stands before each cluster (the proxy and direct clients reach its brokers through
/// it), for what the mock lacks: group APIs and the offsets of committed transactions.
/// </summary>
public sealed class SwitchingRig : IAsyncDisposable
{
    public const string Family = "orders";
    public const string Topic = "orders.events";

    private readonly string? _token;
    private readonly string? _readToken;
    private readonly bool _mirrorBack;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };

    private readonly int? _port;
    private readonly IReadOnlyDictionary<string, string?> _settings;

    private SwitchingRig(int partitions, string? token, bool fixedPorts, bool groupFronts, string? readToken = null, bool mirrorBack = false,
        IReadOnlyDictionary<string, string?>? settings = null, bool readCommittedTarget = false, bool timestampTarget = false)
    {
        _settings = settings ?? new Dictionary<string, string?>();
        _mirrorBack = mirrorBack;
        _token = token;
        _readToken = readToken;
        _port = fixedPorts ? FreePorts.Range(MaxBrokers + 1) : null;
        Partitions = partitions;
        Source = MockKafkaCluster.Start(3);
        Target = MockKafkaCluster.Start(3);
        if (groupFronts)
        {
            SourceFront = new GroupApisFront(Source);
            TargetFront = new GroupApisFront(Target);
        }
        else if (readCommittedTarget)
        {
            TargetReadCommitted = new Window.ReadCommittedFront(Target);
        }
        else if (timestampTarget)
        {
            TargetTimestamps = new Translation.TimestampListOffsetsFront(Target);
        }
        foreach (var cluster in new[] { Source, Target })
        {
            cluster.CreateTopic(Topic, partitions);
        }
        StateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-switching-{Guid.NewGuid():N}");
        Directory.CreateDirectory(StateDirectory);
    }

    public MockKafkaCluster Source { get; }
    public MockKafkaCluster Target { get; }

    /// <summary>The front before <see cref="Source"/>, when the rig was started with group fronts.</summary>
    public GroupApisFront? SourceFront { get; }

    /// <summary>The front before <see cref="Target"/>, when the rig was started with group fronts.</summary>
    public GroupApisFront? TargetFront { get; }

    /// <summary>With <c>readCommittedTarget</c>, the target's brokers are reached through it: read_committed fetches skip aborted transactions.</summary>
    public Window.ReadCommittedFront? TargetReadCommitted { get; }

    /// <summary>With <c>timestampTarget</c>, the target's brokers are reached through it: ListOffsets by timestamp is answered.</summary>
    public Translation.TimestampListOffsetsFront? TargetTimestamps { get; }
    public int Partitions { get; }
    public string StateDirectory { get; }
    public ProxyHost Host { get; private set; } = null!;

    /// <summary>What the proxy logged (Information and above), for a failing test to explain itself.</summary>
    public CapturingLoggerProvider ProxyLogs { get; } = new();

    /// <summary>The last <paramref name="count"/> warnings, errors and connection closes the proxy logged, one per line.</summary>
    public string ProxyLogTail(int count = 40) => string.Join(Environment.NewLine, ProxyLogs.Entries
        .Where(e => e.Level >= LogLevel.Warning || e.Message.Contains("closed", StringComparison.Ordinal))
        .TakeLast(count).Select(e => $"{e.Level} {e.Category}: {e.Message}"));
    public string BootstrapServers => Host.BootstrapServers;
    public string AdminUrl => Host.AdminUri.ToString().TrimEnd('/');

    private const int MaxBrokers = 8;

    /// <summary>
    /// Starts the clusters and the proxy. With <paramref name="fixedPorts"/> the proxy binds the same ports again after
    /// <see cref="RestartAsync"/>, so clients reconnect to the restarted proxy as to a restarted broker. With
    /// <paramref name="groupFronts"/> each cluster's brokers are reached through a <see cref="GroupApisFront"/>, which
    /// among other things writes the offsets of committed transactions to their groups (the mock only pretends to).
    /// </summary>
    /// <param name="settings">More configuration over the rig's own: full keys (<c>Switchback:Families:0:Owner</c>), or keys under <c>Switchback:</c>.</param>
    public static async Task<SwitchingRig> StartAsync(int partitions = 4, string? token = null, bool fixedPorts = false, bool groupFronts = false,
        string? readToken = null, bool mirrorBack = false, IReadOnlyDictionary<string, string?>? settings = null, bool readCommittedTarget = false,
        bool timestampTarget = false)
    {
        var rig = new SwitchingRig(partitions, token, fixedPorts, groupFronts, readToken, mirrorBack, settings, readCommittedTarget, timestampTarget);
        try
        {
            await rig.StartHostAsync();
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
        return rig;
    }

    public IConfiguration Configuration()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Switchback:Listener:Bind"] = $"127.0.0.1:{_port ?? 0}",
            ["Switchback:Listener:AdvertisedHost"] = "127.0.0.1",
            ["Switchback:Listener:BrokerPortStart"] = _port is { } port ? $"{port + 1}" : "0",
            ["Switchback:Listener:MaxBrokers"] = $"{MaxBrokers}",
            ["Switchback:Admin:Bind"] = "127.0.0.1:0",
            ["Switchback:Admin:Token"] = _token,
            ["Switchback:Admin:ReadToken"] = _readToken,
            ["Switchback:StateDirectory"] = StateDirectory,
            ["Switchback:Clusters:source:BootstrapServers"] = SourceFront?.BootstrapServers ?? Source.BootstrapServers,
            ["Switchback:Clusters:target:BootstrapServers"] = TargetFront?.BootstrapServers ?? TargetReadCommitted?.BootstrapServers ?? TargetTimestamps?.BootstrapServers ?? Target.BootstrapServers,
            ["Switchback:Families:0:Name"] = Family,
            ["Switchback:Families:0:Topics:0"] = "orders.*",
            ["Switchback:Families:0:Groups:0"] = "orders-*",
            ["Switchback:Families:0:TransactionalIds:0"] = "orders-*",
            ["Switchback:Families:0:Write"] = "source",
            ["Switchback:Families:0:MirrorBack"] = _mirrorBack ? "true" : null,
            ["Switchback:Families:0:Read"] = "source",
            ["Switchback:Default:Write"] = "source",
            ["Switchback:Default:Read"] = "source",
        };
        foreach (var (key, value) in _settings)
        {
            settings[key.StartsWith("Switchback:", StringComparison.Ordinal) ? key : $"Switchback:{key}"] = value;
        }
        return new ConfigurationBuilder().AddInMemoryCollection(settings.Where(s => s.Value is not null)).Build();
    }

    /// <summary>Stops the proxy (not the clusters) and starts a new one on the same state directory.</summary>
    public async Task RestartAsync()
    {
        await StopProxyAsync();
        await StartHostAsync();
    }

    /// <summary>Stops the proxy, as a crash or shutdown would; the clusters keep running.</summary>
    public async Task StopProxyAsync()
    {
        if (Host is not null)
        {
            await Host.DisposeAsync();
            Host = null!;
        }
    }

    private async Task StartHostAsync()
    {
        Host = ProxyHost.Create(Configuration(), logging => logging.ClearProviders().AddProvider(ProxyLogs));
        await Host.StartAsync();
    }

    public MockKafkaCluster ClusterNamed(string name) => name == "source" ? Source : Target;

    public Task<AdminAnswer> SwitchAsync(object body) => PostAsync($"v1/families/{Family}/switch", JsonSerializer.Serialize(body));

    public Task<AdminAnswer> RollbackAsync(object? body = null) => PostAsync($"v1/families/{Family}/rollback", body is null ? "" : JsonSerializer.Serialize(body));

    public Task<AdminAnswer> CloseAsync(object body) => PostAsync($"v1/families/{Family}/close", JsonSerializer.Serialize(body));

    public Task<AdminAnswer> WindowAsync() => SendAsync(HttpMethod.Get, $"v1/families/{Family}/window", null, _token);

    public Task<AdminAnswer> FamilyAsync(string name = Family) => SendAsync(HttpMethod.Get, $"v1/families/{name}", null, _token);

    public Task<AdminAnswer> PostAsync(string path, string body, string? token = null) => SendAsync(HttpMethod.Post, path, body, token ?? _token);

    public async Task<AdminAnswer> SendAsync(HttpMethod method, string path, string? body, string? token)
    {
        using var request = new HttpRequestMessage(method, $"{AdminUrl}/{path}");
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var json = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        return new AdminAnswer(response.StatusCode, json);
    }

    /// <summary>Produces records straight to one cluster (not through the proxy), each to the given partition, in order.</summary>
    public static async Task ProduceDirectAsync(MockKafkaCluster cluster, IEnumerable<(int Partition, string Key, string Value)> records)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = 2,
            // Several batches per partition, so a consumer needs several fetches to read them.
            BatchNumMessages = 5,
        }).SetLogHandler(static (_, _) => { }).Build();
        foreach (var (partition, key, value) in records)
        {
            producer.Produce(new TopicPartition(Topic, partition), new Message<string, string> { Key = key, Value = value });
        }
        await Task.Run(() => producer.Flush(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, producer.Flush(TimeSpan.Zero));
    }

    /// <summary>End offsets of every partition of <see cref="Topic"/> on one cluster, read directly.</summary>
    public long[] EndOffsets(MockKafkaCluster cluster) => EndOffsets(cluster, Topic, Partitions);

    /// <summary>End offsets of every partition of a topic on one cluster, read directly.</summary>
    public static long[] EndOffsets(MockKafkaCluster cluster, string topic, int partitions)
    {
        using var consumer = DirectConsumer(cluster);
        return [.. Enumerable.Range(0, partitions).Select(p => consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10)).High.Value)];
    }

    /// <summary>Every record of <see cref="Topic"/> on one cluster, read directly, in partition and offset order.</summary>
    public List<StoredRecord> ReadAll(string clusterName) => ReadAll(ClusterNamed(clusterName), clusterName, Topic, Partitions);

    /// <summary>Every record of a topic on one cluster, read directly, in partition and offset order.</summary>
    public static List<StoredRecord> ReadAll(MockKafkaCluster cluster, string clusterName, string topic, int partitions)
    {
        var ends = EndOffsets(cluster, topic, partitions);
        var records = new List<StoredRecord>();
        using var consumer = DirectConsumer(cluster);
        consumer.Assign(Enumerable.Range(0, partitions).Where(p => ends[p] > 0).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        // Partition EOF rather than the last offset: transaction markers take offsets but are never delivered.
        var remaining = Enumerable.Range(0, partitions).Where(p => ends[p] > 0).ToHashSet();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (remaining.Count > 0 && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                if (result.Offset.Value >= ends[result.Partition.Value])
                {
                    remaining.Remove(result.Partition.Value);
                }
                continue;
            }
            records.Add(new StoredRecord(clusterName, result.Partition.Value, result.Offset.Value, result.Message.Key, result.Message.Value));
        }
        Assert.True(remaining.Count == 0, $"could not read back all of {clusterName} (ends {string.Join(",", ends)}, read {records.Count})");
        return [.. records.OrderBy(r => r.Partition).ThenBy(r => r.Offset)];
    }

    private static IConsumer<string, string> DirectConsumer(MockKafkaCluster cluster) =>
        new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = $"reader-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 20,
            IsolationLevel = IsolationLevel.ReadUncommitted,
            EnablePartitionEof = true,
        }).SetLogHandler(static (_, _) => { }).Build();

    public IAdminClient DirectAdmin(MockKafkaCluster cluster) =>
        new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).SetLogHandler(static (_, _) => { }).Build();

    public string AuditText() => File.Exists(Path.Combine(StateDirectory, "audit.jsonl")) ? File.ReadAllText(Path.Combine(StateDirectory, "audit.jsonl")) : "";

    public async ValueTask DisposeAsync()
    {
        await StopProxyAsync();
        _http.Dispose();
        foreach (var front in new[] { SourceFront, TargetFront })
        {
            if (front is not null)
            {
                await front.DisposeAsync();
            }
        }
        if (TargetReadCommitted is not null)
        {
            await TargetReadCommitted.DisposeAsync();
        }
        if (TargetTimestamps is not null)
        {
            await TargetTimestamps.DisposeAsync();
        }
        Source.Dispose();
        Target.Dispose();
        try
        {
            Directory.Delete(StateDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
