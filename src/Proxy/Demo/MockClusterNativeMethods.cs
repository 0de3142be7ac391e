using System.Runtime.InteropServices;

namespace Switchback.Proxy.Demo;

/// <summary>The librdkafka entry points the mock cluster needs (signatures from rdkafka.h and rdkafka_mock.h).</summary>
internal static partial class MockClusterNativeMethods
{
    private const string Lib = LibrdkafkaLoader.LibraryName;

    internal const int RdKafkaProducer = 0;
    internal const int ConfOk = 0;

    [LibraryImport(Lib, EntryPoint = "rd_kafka_conf_new")]
    internal static partial IntPtr ConfNew();

    [LibraryImport(Lib, EntryPoint = "rd_kafka_conf_destroy")]
    internal static partial void ConfDestroy(IntPtr conf);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_conf_set", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int ConfSet(IntPtr conf, string name, string value, byte[] errstr, nuint errstrSize);

    /// <summary>Takes ownership of <paramref name="conf"/> on success only.</summary>
    [LibraryImport(Lib, EntryPoint = "rd_kafka_new")]
    internal static partial IntPtr KafkaNew(int type, IntPtr conf, byte[] errstr, nuint errstrSize);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_destroy")]
    internal static partial void KafkaDestroy(IntPtr rk);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_err2str")]
    internal static partial IntPtr ErrToStr(int err);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mem_free")]
    internal static partial void MemFree(IntPtr rk, IntPtr ptr);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_cluster_new")]
    internal static partial IntPtr ClusterNew(IntPtr rk, int brokerCount);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_cluster_destroy")]
    internal static partial void ClusterDestroy(IntPtr mcluster);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_cluster_bootstraps")]
    internal static partial IntPtr ClusterBootstraps(IntPtr mcluster);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_topic_create", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int TopicCreate(IntPtr mcluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_broker_set_down")]
    internal static partial int BrokerSetDown(IntPtr mcluster, int brokerId);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_broker_set_up")]
    internal static partial int BrokerSetUp(IntPtr mcluster, int brokerId);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_broker_add")]
    internal static partial int BrokerAdd(IntPtr mcluster, int brokerId);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_broker_set_rtt")]
    internal static partial int BrokerSetRtt(IntPtr mcluster, int brokerId, int rttMs);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_broker_set_host_port", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void BrokerSetHostPort(IntPtr mcluster, int brokerId, string host, int port);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_push_request_errors_array")]
    internal static partial void PushRequestErrorsArray(IntPtr mcluster, short apiKey, nuint count, int[] errors);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_clear_request_errors")]
    internal static partial void ClearRequestErrors(IntPtr mcluster, short apiKey);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_partition_set_leader", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int PartitionSetLeader(IntPtr mcluster, string topic, int partition, int brokerId);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_coordinator_set", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int CoordinatorSet(IntPtr mcluster, string keyType, string key, int brokerId);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_start_request_tracking")]
    internal static partial void StartRequestTracking(IntPtr mcluster);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_stop_request_tracking")]
    internal static partial void StopRequestTracking(IntPtr mcluster);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_clear_requests")]
    internal static partial void ClearRequests(IntPtr mcluster);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_get_requests")]
    internal static partial IntPtr GetRequests(IntPtr mcluster, out nuint count);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_request_destroy")]
    internal static partial void RequestDestroy(IntPtr request);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_request_id")]
    internal static partial int RequestBrokerId(IntPtr request);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_request_api_key")]
    internal static partial short RequestApiKey(IntPtr request);

    [LibraryImport(Lib, EntryPoint = "rd_kafka_mock_request_timestamp")]
    internal static partial long RequestTimestamp(IntPtr request);
}
