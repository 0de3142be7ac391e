using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Switchback.Proxy.Configuration;
using Switchback.Proxy.Demo;
using Switchback.Proxy.Security;

namespace Switchback.Proxy.Switching;

/// <summary>
/// Control-plane reads a switch needs on one cluster (end offsets, committed group offsets), made with
/// Confluent.Kafka's admin client, created on first use. Offsets are written by <see cref="GroupOffsetWriter"/>: the
/// admin client commits without a member, which a cluster refuses for a group that has members.
/// </summary>
public sealed class ClusterAdmin(ClusterConfig cluster) : IDisposable
{
    private readonly Lazy<IAdminClient> _admin = new(() =>
    {
        LibrdkafkaLoader.EnsureLoaded();
        var config = new AdminClientConfig
        {
            BootstrapServers = string.Join(',', cluster.BootstrapServers.Select(s => $"{s.Host}:{s.Port}")),
            ClientId = "switchback-admin",
            SocketTimeoutMs = 10_000,
        };
        ApplySecurity(config, cluster.UpstreamSecurity);
        return new AdminClientBuilder(config).SetLogHandler(static (_, _) => { }).Build();
    });

    public string Name => cluster.Name;

    /// <summary>The cluster's TLS and SASL settings in librdkafka's terms.</summary>
    public static void ApplySecurity(ClientConfig config, UpstreamSecurity security)
    {
        config.SecurityProtocol = (security.Tls, security.Sasl) switch
        {
            (null, null) => SecurityProtocol.Plaintext,
            (not null, null) => SecurityProtocol.Ssl,
            (null, not null) => SecurityProtocol.SaslPlaintext,
            _ => SecurityProtocol.SaslSsl,
        };
        if (security.Tls is { } tls)
        {
            config.SslCaLocation = tls.CaPath;
            config.SslCertificateLocation = tls.CertificatePath;
            config.SslKeyLocation = tls.KeyPath;
        }
        if (security.Sasl is { } sasl)
        {
            config.SaslMechanism = sasl.Mechanism switch
            {
                SaslMechanisms.Plain => SaslMechanism.Plain,
                SaslMechanisms.ScramSha256 => SaslMechanism.ScramSha256,
                _ => SaslMechanism.ScramSha512,
            };
            config.SaslUsername = sasl.Username;
            config.SaslPassword = sasl.Password;
        }
    }

    /// <summary>
    /// Creates the client and connects it: to the leaders of <paramref name="partitions"/>, whose end offsets it reads
    /// (the call a switch makes first), or to the cluster alone when none are given.
    /// </summary>
    public async Task WarmAsync(IReadOnlyCollection<TopicPartition> partitions, TimeSpan timeout)
    {
        if (partitions.Count > 0)
        {
            await EndOffsetsAsync(partitions, timeout).ConfigureAwait(false);
            return;
        }
        await Task.Run(() => _admin.Value.GetMetadata(timeout)).ConfigureAwait(false); // blocks: off the caller's thread
    }

    public async Task<Dictionary<TopicPartition, long>> EndOffsetsAsync(IReadOnlyCollection<TopicPartition> partitions, TimeSpan timeout)
    {
        var result = new Dictionary<TopicPartition, long>();
        if (partitions.Count == 0)
        {
            return result;
        }
        var offsets = await _admin.Value.ListOffsetsAsync(
            partitions.Select(p => new TopicPartitionOffsetSpec { TopicPartition = p, OffsetSpec = OffsetSpec.Latest() }),
            new ListOffsetsOptions { RequestTimeout = timeout }).ConfigureAwait(false);
        foreach (var info in offsets.ResultInfos)
        {
            result[info.TopicPartitionOffsetError.TopicPartition] = info.TopicPartitionOffsetError.Offset.Value;
        }
        return result;
    }

    /// <summary>Committed offsets of a group for the given partitions (partitions without a commit are left out).</summary>
    public async Task<Dictionary<TopicPartition, long>> CommittedOffsetsAsync(string group, IReadOnlyCollection<TopicPartition> partitions, TimeSpan timeout)
    {
        var result = new Dictionary<TopicPartition, long>();
        if (partitions.Count == 0)
        {
            return result;
        }
        var groups = await _admin.Value.ListConsumerGroupOffsetsAsync(
            [new ConsumerGroupTopicPartitions(group, [.. partitions])],
            new ListConsumerGroupOffsetsOptions { RequestTimeout = timeout }).ConfigureAwait(false);
        foreach (var entry in groups)
        {
            foreach (var partition in entry.Partitions)
            {
                if (partition.Error.Code == ErrorCode.NoError && partition.Offset.Value >= 0)
                {
                    result[partition.TopicPartition] = partition.Offset.Value;
                }
            }
        }
        return result;
    }

    /// <summary>
    /// The timestamp of the record at each given offset (the first one at or after it), read with a short-lived
    /// consumer; partitions whose record was not read within <paramref name="timeout"/> are left out.
    /// </summary>
    public Task<Dictionary<TopicPartition, DateTimeOffset>> RecordTimestampsAsync(IReadOnlyCollection<TopicPartitionOffset> positions, TimeSpan timeout)
    {
        var result = new Dictionary<TopicPartition, DateTimeOffset>();
        if (positions.Count == 0)
        {
            return Task.FromResult(result);
        }
        // Consume blocks: off the caller's thread.
        return Task.Run(() =>
        {
            LibrdkafkaLoader.EnsureLoaded();
            var config = new ConsumerConfig
            {
                BootstrapServers = string.Join(',', cluster.BootstrapServers.Select(s => $"{s.Host}:{s.Port}")),
                ClientId = "switchback-admin",
                GroupId = "switchback-scorecard", // never joined nor committed to: assigned partitions only
                EnableAutoCommit = false,
                EnableAutoOffsetStore = false,
                FetchWaitMaxMs = 50,
                SocketTimeoutMs = (int)Math.Max(1000, timeout.TotalMilliseconds),
            };
            ApplySecurity(config, cluster.UpstreamSecurity);
            using var consumer = new ConsumerBuilder<Ignore, Ignore>(config).SetLogHandler(static (_, _) => { }).Build();
            consumer.Assign(positions);
            var deadline = DateTime.UtcNow + timeout;
            while (result.Count < positions.Count && DateTime.UtcNow < deadline)
            {
                var record = consumer.Consume(TimeSpan.FromMilliseconds(100));
                if (record is not null && !record.IsPartitionEOF && !result.ContainsKey(record.TopicPartition))
                {
                    result[record.TopicPartition] = record.Message.Timestamp.UtcDateTime;
                    consumer.Pause([record.TopicPartition]);
                }
            }
            consumer.Close();
            return result;
        });
    }

    public void Dispose()
    {
        if (_admin.IsValueCreated)
        {
            _admin.Value.Dispose();
        }
    }
}
