using System.Buffers.Binary;
using System.Collections;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Listening;
using Switchback.Proxy.Upstream;
using Switchback.Proxy.VirtualCluster;
using Xunit;

namespace Switchback.Proxy.Tests.Integration.VirtualCluster;

/// <summary>
/// No upstream address reaches a client.
/// </summary>
/// <remarks>
/// How this is proven: the proxy listens on 127.0.0.1 but advertises 127.0.0.2, where a <see cref="RecordingRelay"/>
/// listens on the same port numbers (bootstrap and every broker port, bound up front) and forwards to the proxy.
/// A client can only reach the proxy through addresses it learned from responses, so every response it gets passes
/// the relay. Then: (1) every response is decoded with our codec (which knows every field, the KIP-951 tagged
/// NodeEndpoints included) and every Host/Port pair in it, at any depth, must be 127.0.0.2 on a proxy port, and no
/// Port may be an upstream broker's; (2) the upstreams all live on 127.0.0.1, which the proxy never advertises
/// here, so that text appearing anywhere in any response byte (error messages, unknown tagged fields) is a leak.
/// </remarks>
[Collection(ProxyCollection.Name)]
public sealed class AddressLeakTests(ProxyFixture fixture) : IAsyncLifetime
{
    private static readonly IPAddress Advertised = IPAddress.Parse("127.0.0.2");

    private ProxyHost _proxy = null!;
    private RecordingRelay _relay = null!;
    private HashSet<int> _proxyPorts = [];

    public async Task InitializeAsync()
    {
        _proxy = await fixture.StartProxyAsync(new Dictionary<string, string?> { ["Switchback:Listener:AdvertisedHost"] = Advertised.ToString() });
        var listeners = _proxy.Services.GetRequiredService<BrokerListeners>();
        _proxyPorts = [_proxy.State.AdvertisedPort];
        foreach (var (cluster, ordinal) in new[] { (fixture.Source, 0), (fixture.Target, 1) })
        {
            foreach (var broker in cluster.BrokerIds)
            {
                _proxyPorts.Add(await listeners.PortOfAsync(_proxy.State.NodeIds.ToVirtual(ordinal, broker)) ?? throw new InvalidOperationException($"broker {broker} has no port"));
            }
        }
        _relay = new RecordingRelay(Advertised, IPAddress.Loopback, _proxyPorts);
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _proxy.DisposeAsync();
    }

    [Fact]
    public async Task ProduceConsumeAndAdminRun_NoResponseCarriesAnUpstreamAddress()
    {
        var bootstrap = $"{Advertised}:{_proxy.State.AdvertisedPort}";
        var orders = fixture.NewTopic("orders");
        var payments = fixture.NewTopic("payments");
        var producerConfig = fixture.ProducerConfig(bootstrap);
        producerConfig.EnableIdempotence = true;
        using (var producer = new ProducerBuilder<string, string>(producerConfig).Build())
        {
            await fixture.ProduceAsync(producer, orders, 10, "order");
            await fixture.ProduceAsync(producer, payments, 10, "payment");
        }
        foreach (var (topic, family, protocol) in new[] { (orders, "orders", GroupProtocol.Classic), (payments, "payments", GroupProtocol.Consumer) })
        {
            var config = fixture.ConsumerConfig(ProxyFixture.NewGroup(family), bootstrap);
            config.GroupProtocol = protocol;
            if (protocol == GroupProtocol.Consumer)
            {
                config.SessionTimeoutMs = null;
            }
            var (records, _) = ProxyFixture.ConsumeAndCommit(config, [topic], 10, TimeSpan.FromSeconds(30));
            Assert.Equal(10, records.Count);
        }
        // librdkafka asks Metadata where other clients ask DescribeCluster or batched FindCoordinator: send every
        // version of the address-bearing APIs the proxy offers ourselves, through the relay, so all are checked.
        await SendEveryAddressBearingRequestAsync(new IPEndPoint(Advertised, _proxy.State.AdvertisedPort), [orders, payments],
            [ProxyFixture.NewGroup("orders"), ProxyFixture.NewGroup("payments")]);

        var responses = _relay.Responses.ToList();
        var upstreamPorts = new[] { fixture.Source, fixture.Target }
            .SelectMany(c => c.BrokerIds.Select(id => c.GetBrokerListener(id).Port)).ToHashSet();
        var upstreamHost = Encoding.ASCII.GetBytes(IPAddress.Loopback.ToString());
        var leaks = new List<string>();
        var endpoints = 0;
        foreach (var response in responses)
        {
            if (response.Frame.AsSpan().IndexOf(upstreamHost) >= 0)
            {
                leaks.Add($"{response.ApiKey} v{response.Version}: bytes contain '{IPAddress.Loopback}'");
            }
            var message = Decode(response);
            foreach (var (host, port, path) in Endpoints(message, response.ApiKey.ToString()))
            {
                endpoints++;
                if (host != Advertised.ToString() || !_proxyPorts.Contains(port) || upstreamPorts.Contains(port))
                {
                    leaks.Add($"{response.ApiKey} v{response.Version}: {path} = {host}:{port}");
                }
            }
        }
        Assert.True(leaks.Count == 0, "upstream addresses reached the client:\n" + string.Join('\n', leaks.Distinct()));
        Assert.True(endpoints > 0, "no broker address was checked at all");
        // Also proves the client's traffic went through the relay (a leaked address would route some around it).
        var seen = responses.Select(r => r.ApiKey).ToHashSet();
        var expected = new[] { ApiKey.Metadata, ApiKey.FindCoordinator, ApiKey.DescribeCluster, ApiKey.Produce, ApiKey.Fetch,
            ApiKey.InitProducerId, ApiKey.JoinGroup, ApiKey.ConsumerGroupHeartbeat, ApiKey.OffsetCommit };
        Assert.True(expected.All(seen.Contains), $"the relay saw only {string.Join(", ", seen.Order())}; missing {string.Join(", ", expected.Except(seen))}");
    }

    private async Task SendEveryAddressBearingRequestAsync(IPEndPoint endPoint, string[] topics, string[] groups)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        using var stream = new NetworkStream(socket);
        var correlationId = 0;
        foreach (var apiKey in new[] { ApiKey.Metadata, ApiKey.FindCoordinator, ApiKey.DescribeCluster })
        {
            var (min, max) = _proxy.State.AdvertisedVersions(apiKey) ?? throw new InvalidOperationException($"{apiKey} is not offered.");
            for (var version = min; version <= max; version++)
            {
                var requests = apiKey switch
                {
                    ApiKey.Metadata => new IKafkaMessage[]
                    {
                        new MetadataRequest { Topics = version == 0 ? [] : null },
                        new MetadataRequest { Topics = [.. topics.Select(t => new MetadataRequest.MetadataRequestTopic { Name = t })] },
                    },
                    ApiKey.FindCoordinator => version < 4
                        ? [.. groups.Select(g => new FindCoordinatorRequest { Key = g, KeyType = 0 })]
                        : [new FindCoordinatorRequest { KeyType = 0, CoordinatorKeys = [.. groups] }],
                    _ => [new DescribeClusterRequest()],
                };
                foreach (var request in requests)
                {
                    using var frame = FrameCodec.EncodeRequest(apiKey, version, ++correlationId, "leak-check", request);
                    var size = new byte[4];
                    BinaryPrimitives.WriteInt32BigEndian(size, frame.Length);
                    await stream.WriteAsync(size);
                    await stream.WriteAsync(frame.Memory);
                    await stream.ReadExactlyAsync(size);
                    var response = new byte[BinaryPrimitives.ReadInt32BigEndian(size)];
                    await stream.ReadExactlyAsync(response);
                    Assert.Equal(correlationId, BinaryPrimitives.ReadInt32BigEndian(response));
                }
            }
        }
    }

    private static IKafkaMessage Decode(RecordedResponse response)
    {
        var reader = new KafkaReader((ReadOnlyMemory<byte>)response.Frame);
        var header = new ResponseHeader();
        header.Read(ref reader, KafkaApis.ResponseHeaderVersion(response.ApiKey, response.Version));
        var message = KafkaMessages.CreateResponse(response.ApiKey)
            ?? throw new InvalidOperationException($"No definition for {response.ApiKey} responses.");
        // An ApiVersions error reply is always v0.
        message.Read(ref reader, response.ApiKey == ApiKey.ApiVersions && response.Version > 0 && LooksLikeVersionError(response) ? (short)0 : response.Version);
        return message;
    }

    private static bool LooksLikeVersionError(RecordedResponse response) =>
        response.Frame.Length >= 6 && response.Frame[4] == 0 && response.Frame[5] == (byte)Switchback.Protocol.ErrorCode.UnsupportedVersion;

    /// <summary>Every object in the message tree with a Host and a Port property, with its path.</summary>
    private static IEnumerable<(string? Host, int Port, string Path)> Endpoints(object node, string path)
    {
        var type = node.GetType();
        var host = type.GetProperty("Host");
        var port = type.GetProperty("Port");
        if (host?.PropertyType == typeof(string) && port?.PropertyType == typeof(int))
        {
            var portValue = (int)port.GetValue(node)!;
            var hostValue = (string?)host.GetValue(node);
            // Error answers carry no endpoint (port -1, empty host); fields absent in a version keep defaults ("", 0).
            if (portValue > 0 || !string.IsNullOrEmpty(hostValue))
            {
                yield return (hostValue, portValue, path);
            }
        }
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetIndexParameters().Length > 0 || property.PropertyType == typeof(string) || property.PropertyType.IsValueType)
            {
                continue;
            }
            var value = property.GetValue(node);
            if (value is IEnumerable items and not string)
            {
                var index = 0;
                foreach (var item in items)
                {
                    if (item is not null && item.GetType().Namespace == typeof(MetadataResponse).Namespace)
                    {
                        foreach (var found in Endpoints(item, $"{path}.{property.Name}[{index}]"))
                        {
                            yield return found;
                        }
                    }
                    index++;
                }
            }
            else if (value is not null && value.GetType().Namespace == typeof(MetadataResponse).Namespace)
            {
                foreach (var found in Endpoints(value, $"{path}.{property.Name}"))
                {
                    yield return found;
                }
            }
        }
    }
}
