using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using static Switchback.Proxy.Demo.MockClusterNativeMethods;

namespace Switchback.Proxy.Demo;

/// <summary>An in-process librdkafka mock Kafka cluster that speaks the real wire protocol over TCP on 127.0.0.1.</summary>
/// <remarks>
/// The mock runs on its own native thread; every control call below is handed to that thread by librdkafka, so
/// the methods may be called from any thread. Broker ids run from 1 to the broker count.
/// </remarks>
public sealed class MockKafkaCluster : IDisposable
{
    private const int ErrorBufferSize = 512;

    private readonly object _gate = new();
    private readonly IReadOnlyDictionary<int, IPEndPoint> _listeners;
    private IntPtr _handle;
    private IntPtr _cluster;

    private MockKafkaCluster(IntPtr handle, IntPtr cluster, string bootstrapServers)
    {
        _handle = handle;
        _cluster = cluster;
        BootstrapServers = bootstrapServers;
        _listeners = ParseListeners(bootstrapServers);
        BrokerIds = [.. _listeners.Keys.Order()];
    }

    /// <summary>The brokers' listening addresses, comma-separated, as clients take them for bootstrap.servers.</summary>
    public string BootstrapServers { get; }

    /// <summary>The broker ids, 1 to the broker count.</summary>
    public IReadOnlyList<int> BrokerIds { get; }

    /// <summary>Starts a mock cluster with <paramref name="brokerCount"/> brokers on kernel-chosen ports.</summary>
    public static MockKafkaCluster Start(int brokerCount = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokerCount, 1);
        LibrdkafkaLoader.EnsureLoaded();

        var errors = new byte[ErrorBufferSize];
        var conf = ConfNew();
        // The mock logs through this handle; keep it to warnings and errors.
        if (ConfSet(conf, "log_level", "4", errors, ErrorBufferSize) != ConfOk)
        {
            ConfDestroy(conf);
            throw new MockKafkaClusterException($"rd_kafka_conf_set(log_level) failed: {DecodeErrorBuffer(errors)}");
        }

        var handle = KafkaNew(RdKafkaProducer, conf, errors, ErrorBufferSize);
        if (handle == IntPtr.Zero)
        {
            ConfDestroy(conf);
            throw new MockKafkaClusterException($"rd_kafka_new failed: {DecodeErrorBuffer(errors)}");
        }

        var cluster = ClusterNew(handle, brokerCount);
        if (cluster == IntPtr.Zero)
        {
            KafkaDestroy(handle);
            throw new MockKafkaClusterException($"rd_kafka_mock_cluster_new({brokerCount}) failed (see librdkafka log).");
        }

        var bootstraps = Marshal.PtrToStringUTF8(ClusterBootstraps(cluster)) ?? string.Empty;
        return new MockKafkaCluster(handle, cluster, bootstraps);
    }

    /// <summary>The address broker <paramref name="brokerId"/> listens on (what it advertises may differ).</summary>
    public IPEndPoint GetBrokerListener(int brokerId) =>
        _listeners.TryGetValue(brokerId, out var endpoint)
            ? endpoint
            : throw new ArgumentOutOfRangeException(nameof(brokerId), brokerId, "No such mock broker.");

    /// <summary>Creates a topic (the mock does not implement the CreateTopics API).</summary>
    public void CreateTopic(string name, int partitions, int replicationFactor = 1)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicationFactor, 1);
        Check(WithCluster(c => TopicCreate(c, name, partitions, replicationFactor)), $"create topic '{name}'");
    }

    /// <summary>Disconnects broker <paramref name="brokerId"/> and refuses new connections; leaders do not move.</summary>
    public void SetBrokerDown(int brokerId) => Check(WithCluster(c => BrokerSetDown(c, brokerId)), $"set broker {brokerId} down");

    /// <summary>Makes broker <paramref name="brokerId"/> accept connections again on the same port.</summary>
    public void SetBrokerUp(int brokerId) => Check(WithCluster(c => BrokerSetUp(c, brokerId)), $"set broker {brokerId} up");

    /// <summary>
    /// Adds broker <paramref name="brokerId"/> on a kernel-chosen port; the mock then spreads every partition's
    /// replicas and leadership over all brokers again. <see cref="BrokerIds"/> and <see cref="GetBrokerListener"/>
    /// keep to the brokers the cluster started with.
    /// </summary>
    public void AddBroker(int brokerId) => Check(WithCluster(c => BrokerAdd(c, brokerId)), $"add broker {brokerId}");

    /// <summary>Delays every response of broker <paramref name="brokerId"/> (-1: all brokers) by <paramref name="rttMs"/>.</summary>
    public void SetBrokerRtt(int brokerId, int rttMs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rttMs);
        Check(WithCluster(c => BrokerSetRtt(c, brokerId, rttMs)), $"set broker {brokerId} rtt");
    }

    /// <summary>Makes the next requests with <paramref name="apiKey"/>, on any broker, fail with these codes in order.</summary>
    /// <remarks>librdkafka's internal code -195 (transport) makes the broker drop the connection instead.</remarks>
    public void PushRequestErrors(short apiKey, params short[] errorCodes)
    {
        ArgumentNullException.ThrowIfNull(errorCodes);
        if (errorCodes.Length == 0)
        {
            return;
        }
        var errors = Array.ConvertAll(errorCodes, code => (int)code);
        WithCluster(c => PushRequestErrorsArray(c, apiKey, (nuint)errors.Length, errors));
    }

    /// <summary>Drops the not yet consumed errors pushed for <paramref name="apiKey"/>.</summary>
    public void ClearRequestErrors(short apiKey) => WithCluster(c => MockClusterNativeMethods.ClearRequestErrors(c, apiKey));

    /// <summary>Moves the leadership of a partition (-1: leaderless); the topic is created if missing.</summary>
    public void SetPartitionLeader(string topic, int partition, int brokerId)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        Check(WithCluster(c => PartitionSetLeader(c, topic, partition, brokerId)), $"set leader of {topic}/{partition}");
    }

    /// <summary>Pins the coordinator for a key; <paramref name="keyType"/> is "group" or "transaction".</summary>
    public void SetCoordinator(string keyType, string key, int brokerId)
    {
        ArgumentException.ThrowIfNullOrEmpty(keyType);
        ArgumentNullException.ThrowIfNull(key);
        Check(WithCluster(c => CoordinatorSet(c, keyType, key, brokerId)), $"set {keyType} coordinator for '{key}'");
    }

    /// <summary>Changes the host and port broker <paramref name="brokerId"/> advertises in Metadata (not where it listens).</summary>
    public void SetBrokerAdvertisedAddress(int brokerId, string host, int port)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        _ = GetBrokerListener(brokerId);
        WithCluster(c => BrokerSetHostPort(c, brokerId, host, port));
    }

    /// <summary>Starts recording which broker received which API key (see <see cref="GetTrackedRequests"/>).</summary>
    public void StartRequestTracking() => WithCluster(MockClusterNativeMethods.StartRequestTracking);

    /// <summary>Stops recording requests; already recorded ones are kept.</summary>
    public void StopRequestTracking() => WithCluster(MockClusterNativeMethods.StopRequestTracking);

    /// <summary>Forgets the recorded requests.</summary>
    public void ClearTrackedRequests() => WithCluster(ClearRequests);

    /// <summary>The requests recorded since tracking started or was last cleared, oldest first.</summary>
    public IReadOnlyList<MockRequest> GetTrackedRequests()
    {
        lock (_gate)
        {
            var list = GetRequests(Cluster(), out var count);
            if (list == IntPtr.Zero)
            {
                return [];
            }
            var requests = new MockRequest[(int)count];
            for (var i = 0; i < requests.Length; i++)
            {
                var request = Marshal.ReadIntPtr(list, i * IntPtr.Size);
                requests[i] = new MockRequest(RequestBrokerId(request), RequestApiKey(request), RequestTimestamp(request));
                RequestDestroy(request);
            }
            MemFree(IntPtr.Zero, list);
            return requests;
        }
    }

    /// <summary>Destroys the mock cluster (closing its sockets) and its librdkafka handle.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_cluster != IntPtr.Zero)
            {
                ClusterDestroy(_cluster);
                _cluster = IntPtr.Zero;
            }
            if (_handle != IntPtr.Zero)
            {
                KafkaDestroy(_handle);
                _handle = IntPtr.Zero;
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"MockKafkaCluster({BootstrapServers})";

    // Control calls and Dispose share one lock so that no call can reach a destroyed cluster.
    private T WithCluster<T>(Func<IntPtr, T> call)
    {
        lock (_gate)
        {
            return call(Cluster());
        }
    }

    private void WithCluster(Action<IntPtr> call)
    {
        lock (_gate)
        {
            call(Cluster());
        }
    }

    // Callers hold _gate.
    private IntPtr Cluster()
    {
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        return _cluster;
    }

    private static void Check(int errorCode, string action)
    {
        if (errorCode != 0)
        {
            var text = Marshal.PtrToStringUTF8(ErrToStr(errorCode)) ?? "unknown error";
            throw new MockKafkaClusterException($"Mock cluster could not {action}: {text} ({errorCode}).", errorCode);
        }
    }

    private static string DecodeErrorBuffer(byte[] buffer)
    {
        var length = Array.IndexOf(buffer, (byte)0);
        return Encoding.UTF8.GetString(buffer, 0, length < 0 ? buffer.Length : length);
    }

    // librdkafka lists the brokers in id order: "127.0.0.1:port1,127.0.0.1:port2,...".
    private static Dictionary<int, IPEndPoint> ParseListeners(string bootstrapServers)
    {
        var listeners = new Dictionary<int, IPEndPoint>();
        var entries = bootstrapServers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (var i = 0; i < entries.Length; i++)
        {
            var colon = entries[i].LastIndexOf(':');
            if (colon <= 0
                || !IPAddress.TryParse(entries[i][..colon], out var address)
                || !int.TryParse(entries[i][(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            {
                throw new MockKafkaClusterException($"Unexpected mock bootstrap list '{bootstrapServers}'.");
            }
            listeners[i + 1] = new IPEndPoint(address, port);
        }
        return listeners;
    }
}

/// <summary>One request the mock cluster received while request tracking was on.</summary>
/// <param name="BrokerId">The broker that received it.</param>
/// <param name="ApiKey">Its Kafka API key.</param>
/// <param name="TimestampMicros">When it arrived, in librdkafka's monotonic clock (microseconds).</param>
public readonly record struct MockRequest(int BrokerId, short ApiKey, long TimestampMicros);

/// <summary>A librdkafka mock cluster call failed.</summary>
public sealed class MockKafkaClusterException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MockKafkaClusterException(string message, int errorCode = 0)
        : base(message) => ErrorCode = errorCode;

    /// <summary>The librdkafka error code (rd_kafka_resp_err_t), or 0 when none applies.</summary>
    public int ErrorCode { get; }
}
