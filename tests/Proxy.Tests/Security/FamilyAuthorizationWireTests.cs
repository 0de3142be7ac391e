using System.Net.Sockets;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Security;
using Switchback.Proxy.Tests.Integration;
using Xunit;

namespace Switchback.Proxy.Tests.Security;

/// <summary>
/// Allow lists at the wire level, for requests a well-behaved client never sends once Metadata has refused a topic:
/// Fetch and Produce naming a denied family's topic, alone or together with allowed ones.
/// </summary>
public sealed class FamilyAuthorizationWireTests(SecurityFixture fixture) : IClassFixture<SecurityFixture>
{
    private const string Password = "bob-Wire-6";

    private async Task<(ProxyHost Host, Stream Stream)> ConnectAsBobAsync()
    {
        var settings = fixture.Settings();
        settings["Switchback:Listener:Sasl:Mechanisms:0"] = SaslMechanisms.Plain;
        settings["Switchback:Listener:Sasl:Users:bob"] = Password;
        settings["Switchback:Families:0:AllowedPrincipals:0"] = "User:alice";
        var host = await SecurityFixture.StartAsync(settings, new LogCapture());
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", host.State.AdvertisedPort);
        var stream = new NetworkStream(socket, ownsSocket: true);
        await UpstreamHandshake.AuthenticateAsync(stream, new UpstreamSaslConfig(SaslMechanisms.Plain, "bob", Password), "proxy", CancellationToken.None);
        return (host, stream);
    }

    [Fact]
    public async Task Fetch_DeniedTopicAnswersTopicAuthorizationFailed_AllowedTopicIsServed()
    {
        var (host, stream) = await ConnectAsBobAsync();
        await using var _ = host;
        await using var __ = stream;
        var request = new FetchRequest { MaxWaitMs = 10, MinBytes = 0, MaxBytes = 1 << 20 };
        foreach (var topic in new[] { SecurityFixture.OrdersTopic, SecurityFixture.PaymentsTopic })
        {
            request.Topics.Add(new FetchRequest.FetchTopic
            {
                Topic = topic,
                Partitions = { new FetchRequest.FetchPartition { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 } },
            });
        }
        var response = await ExchangeAsync<FetchResponse>(stream, ApiKey.Fetch, 4, request);
        var byTopic = response.Responses.ToDictionary(t => t.Topic, t => t.Partitions.Single().ErrorCode);
        Assert.Equal((short)ErrorCode.TopicAuthorizationFailed, byTopic[SecurityFixture.OrdersTopic]);
        Assert.Equal(0, byTopic[SecurityFixture.PaymentsTopic]);
    }

    [Fact]
    public async Task Produce_ToDeniedTopicOnly_AnswersTopicAuthorizationFailed_WithoutReachingTheCluster()
    {
        var (host, stream) = await ConnectAsBobAsync();
        await using var _ = host;
        await using var __ = stream;
        var request = new ProduceRequest { Acks = -1, TimeoutMs = 1000 };
        request.TopicData.Add(new ProduceRequest.TopicProduceData
        {
            Name = SecurityFixture.OrdersTopic,
            PartitionData = { new ProduceRequest.PartitionProduceData { Index = 1, Records = new byte[61] } },
        });
        var response = await ExchangeAsync<ProduceResponse>(stream, ApiKey.Produce, 7, request);
        var partition = response.Responses.Single().PartitionResponses.Single();
        Assert.Equal(1, partition.Index);
        Assert.Equal((short)ErrorCode.TopicAuthorizationFailed, partition.ErrorCode);
    }

    [Fact]
    public async Task MetadataAndFindCoordinator_DeniedFamily_AnswerAuthorizationErrors()
    {
        var (host, stream) = await ConnectAsBobAsync();
        await using var _ = host;
        await using var __ = stream;
        var metadata = await ExchangeAsync<MetadataResponse>(stream, ApiKey.Metadata, 4, new MetadataRequest
        {
            Topics = [new MetadataRequest.MetadataRequestTopic { Name = SecurityFixture.OrdersTopic }, new MetadataRequest.MetadataRequestTopic { Name = SecurityFixture.PaymentsTopic }],
        });
        Assert.Equal((short)ErrorCode.TopicAuthorizationFailed, metadata.Topics.Single(t => t.Name == SecurityFixture.OrdersTopic).ErrorCode);
        Assert.Equal(0, metadata.Topics.Single(t => t.Name == SecurityFixture.PaymentsTopic).ErrorCode);

        var all = await ExchangeAsync<MetadataResponse>(stream, ApiKey.Metadata, 4, new MetadataRequest { Topics = null });
        Assert.DoesNotContain(all.Topics, t => t.Name == SecurityFixture.OrdersTopic);
        Assert.Contains(all.Topics, t => t.Name == SecurityFixture.PaymentsTopic);

        var group = await ExchangeAsync<FindCoordinatorResponse>(stream, ApiKey.FindCoordinator, 1, new FindCoordinatorRequest { Key = "orders-app", KeyType = 0 });
        Assert.Equal((short)ErrorCode.GroupAuthorizationFailed, group.ErrorCode);
        var transactional = await ExchangeAsync<FindCoordinatorResponse>(stream, ApiKey.FindCoordinator, 1, new FindCoordinatorRequest { Key = "orders-tx", KeyType = 1 });
        Assert.Equal((short)ErrorCode.TransactionalIdAuthorizationFailed, transactional.ErrorCode);
        var allowed = await ExchangeAsync<FindCoordinatorResponse>(stream, ApiKey.FindCoordinator, 1, new FindCoordinatorRequest { Key = "payments-app", KeyType = 0 });
        Assert.Equal(0, allowed.ErrorCode);
    }

    private static Task<T> ExchangeAsync<T>(Stream stream, ApiKey apiKey, short version, IKafkaMessage request) where T : IKafkaMessage, new() =>
        WireExchange.ExchangeAsync<T>(stream, apiKey, version, request, "wire-test", TimeSpan.FromSeconds(15));
}
