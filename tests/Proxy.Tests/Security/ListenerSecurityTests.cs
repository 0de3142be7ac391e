using System.Buffers.Binary;
using System.Net.Sockets;
using Confluent.Kafka;
using Switchback.Proxy.Hosting;
using Switchback.Proxy.Security;
using Xunit;

namespace Switchback.Proxy.Tests.Security;

/// <summary>Confluent.Kafka (librdkafka) clients through a proxy with TLS and SASL on its listener, in front of two mock clusters.</summary>
public sealed class ListenerSecurityTests(SecurityFixture fixture) : IClassFixture<SecurityFixture>
{
    private const string AlicePassword = "alice-Secret-1";
    private const string BobPassword = "bob-Secret-2";

    private Dictionary<string, string?> SaslSettings(bool tls, params string[] mechanisms)
    {
        var settings = fixture.Settings();
        for (var i = 0; i < mechanisms.Length; i++)
        {
            settings[$"Switchback:Listener:Sasl:Mechanisms:{i}"] = mechanisms[i];
        }
        settings["Switchback:Listener:Sasl:Users:alice"] = AlicePassword;
        settings["Switchback:Listener:Sasl:Users:bob"] = BobPassword;
        if (tls)
        {
            AddTls(settings);
        }
        return settings;
    }

    private void AddTls(Dictionary<string, string?> settings)
    {
        settings["Switchback:Listener:Tls:CertificatePath"] = fixture.CertificatePath;
        settings["Switchback:Listener:Tls:KeyPath"] = fixture.KeyPath;
    }

    private ClientConfig Client(ProxyHost host, SecurityProtocol protocol, SaslMechanism? mechanism = null, string? user = null, string? password = null)
    {
        var config = new ClientConfig
        {
            BootstrapServers = host.BootstrapServers,
            SecurityProtocol = protocol,
            SocketTimeoutMs = 10_000,
        };
        if (protocol is SecurityProtocol.Ssl or SecurityProtocol.SaslSsl)
        {
            config.SslCaLocation = fixture.CertificatePath;
        }
        if (mechanism is { } m)
        {
            config.SaslMechanism = m;
            config.SaslUsername = user;
            config.SaslPassword = password;
        }
        return config;
    }

    [Fact]
    public async Task SaslPlain_ProducerAndConsumer_RoundTripThroughTheProxy()
    {
        var logs = new LogCapture();
        await using var host = await SecurityFixture.StartAsync(SaslSettings(tls: false, SaslMechanisms.Plain), logs);
        await RoundTripAsync(Client(host, SecurityProtocol.SaslPlaintext, SaslMechanism.Plain, "alice", AlicePassword), SecurityFixture.OrdersTopic);
        Assert.Contains(logs.Lines, l => l.Contains("authenticated as User:alice with PLAIN", StringComparison.Ordinal));
        AssertNoSecret(logs);
    }

    [Theory]
    [InlineData(SaslMechanisms.ScramSha256)]
    [InlineData(SaslMechanisms.ScramSha512)]
    public async Task SaslScram_ProducerAndConsumerGroup_RoundTripThroughTheProxy(string mechanism)
    {
        var logs = new LogCapture();
        await using var host = await SecurityFixture.StartAsync(SaslSettings(tls: false, SaslMechanisms.ScramSha256, SaslMechanisms.ScramSha512), logs);
        var saslMechanism = mechanism == SaslMechanisms.ScramSha256 ? SaslMechanism.ScramSha256 : SaslMechanism.ScramSha512;
        await RoundTripAsync(Client(host, SecurityProtocol.SaslPlaintext, saslMechanism, "bob", BobPassword), SecurityFixture.PaymentsTopic, useGroup: true);
        Assert.Contains(logs.Lines, l => l.Contains($"authenticated as User:bob with {mechanism}", StringComparison.Ordinal));
        AssertNoSecret(logs);
    }

    [Fact]
    public async Task Tls_ProducerAndConsumer_RoundTripOverBootstrapAndBrokerPorts()
    {
        var logs = new LogCapture();
        var settings = fixture.Settings();
        AddTls(settings);
        await using var host = await SecurityFixture.StartAsync(settings, logs);
        await RoundTripAsync(Client(host, SecurityProtocol.Ssl), SecurityFixture.OrdersTopic);
    }

    [Fact]
    public async Task MutualTls_CertificateSubjectIsThePrincipal_ForAllowLists()
    {
        var logs = new LogCapture();
        var settings = fixture.Settings();
        AddTls(settings);
        settings["Switchback:Listener:Tls:ClientCaPath"] = fixture.CertificatePath;
        settings["Switchback:Families:0:AllowedPrincipals:0"] = "User:CN=switchback-test";
        settings["Switchback:Families:1:AllowedPrincipals:0"] = "User:CN=someone-else";
        await using var host = await SecurityFixture.StartAsync(settings, logs);
        var client = Client(host, SecurityProtocol.Ssl);
        client.SslCertificateLocation = fixture.CertificatePath;
        client.SslKeyLocation = fixture.KeyPath;
        await RoundTripAsync(client, SecurityFixture.OrdersTopic);
        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig(client) { MessageTimeoutMs = 10_000 }).Build())
        {
            var denied = await Assert.ThrowsAsync<ProduceException<string, string>>(
                () => producer.ProduceAsync(SecurityFixture.PaymentsTopic, new Message<string, string> { Key = "k", Value = "v" }));
            Assert.Equal(ErrorCode.TopicAuthorizationFailed, denied.Error.Code);
        }

        // Without a client certificate the handshake fails.
        var errors = new List<Error>();
        using (var anonymous = new ProducerBuilder<string, string>(new ProducerConfig(Client(host, SecurityProtocol.Ssl)) { MessageTimeoutMs = 3000 })
            .SetErrorHandler((_, e) => { lock (errors) { errors.Add(e); } }).Build())
        {
            await Assert.ThrowsAsync<ProduceException<string, string>>(() => anonymous.ProduceAsync(SecurityFixture.OrdersTopic, new Message<string, string> { Key = "k", Value = "v" }));
        }
        await WaitForLogAsync(logs, "TLS handshake failed");
    }

    [Fact]
    public async Task Tls_PlaintextClientIsDropped_WithTheReasonLogged()
    {
        var logs = new LogCapture();
        var settings = fixture.Settings();
        AddTls(settings);
        await using var host = await SecurityFixture.StartAsync(settings, logs);
        using var socket = await ConnectAsync(host);
        await SendFrameAsync(socket, ApiVersionsV0(correlationId: 1));
        Assert.Equal(0, await ReadUntilClosedAsync(socket));
        await WaitForLogAsync(logs, "TLS handshake failed");
    }

    [Fact]
    public async Task SaslSslScram_RoundTrip_AndAWrongPasswordIsAnAuthenticationError()
    {
        var logs = new LogCapture();
        await using var host = await SecurityFixture.StartAsync(SaslSettings(tls: true, SaslMechanisms.ScramSha256), logs);
        await RoundTripAsync(Client(host, SecurityProtocol.SaslSsl, SaslMechanism.ScramSha256, "alice", AlicePassword), SecurityFixture.OrdersTopic);

        var errors = new List<Error>();
        var config = new ProducerConfig(Client(host, SecurityProtocol.SaslSsl, SaslMechanism.ScramSha256, "alice", "not-the-password")) { MessageTimeoutMs = 3000 };
        using (var producer = new ProducerBuilder<string, string>(config).SetErrorHandler((_, e) => { lock (errors) { errors.Add(e); } }).Build())
        {
            await Assert.ThrowsAsync<ProduceException<string, string>>(() => producer.ProduceAsync(SecurityFixture.OrdersTopic, new Message<string, string> { Key = "k", Value = "v" }));
        }
        lock (errors)
        {
            Assert.Contains(errors, e => e.Code == ErrorCode.Local_Authentication && e.Reason.Contains("SASL", StringComparison.Ordinal));
        }
        await WaitForLogAsync(logs, "SASL SCRAM-SHA-256 authentication failed for user alice: invalid credentials");
        AssertNoSecret(logs, "not-the-password");
    }

    [Fact]
    public async Task Sasl_RequestBeforeAuthentication_ClosesTheConnection_WithTheReasonLogged()
    {
        var logs = new LogCapture();
        await using var host = await SecurityFixture.StartAsync(SaslSettings(tls: false, SaslMechanisms.Plain), logs);
        using var socket = await ConnectAsync(host);
        // Metadata v0 for all topics, unauthenticated.
        await SendFrameAsync(socket, [0, 3, 0, 0, 0, 0, 0, 7, 0, 1, (byte)'t', 0, 0, 0, 0]);
        Assert.Equal(0, await ReadUntilClosedAsync(socket));
        await WaitForLogAsync(logs, "Metadata before SASL authentication completed");
    }

    [Fact]
    public async Task Sasl_LargeFrameBeforeAuthentication_ClosesTheConnection()
    {
        var logs = new LogCapture();
        await using var host = await SecurityFixture.StartAsync(SaslSettings(tls: false, SaslMechanisms.Plain), logs);
        using var socket = await ConnectAsync(host);
        var size = new byte[16];
        BinaryPrimitives.WriteInt32BigEndian(size, 4 * 1024 * 1024);
        Assert.Equal(16, await socket.SendAsync(size, SocketFlags.None));
        Assert.Equal(0, await ReadUntilClosedAsync(socket));
        await WaitForLogAsync(logs, "exceeds the limit of 524288 bytes");
    }

    [Fact]
    public async Task AllowList_PrincipalOutsideIt_GetsAuthorizationErrorsForThatFamily_ButUsesAnother()
    {
        var logs = new LogCapture();
        var settings = SaslSettings(tls: false, SaslMechanisms.ScramSha512);
        settings["Switchback:Families:0:AllowedPrincipals:0"] = "User:alice";
        await using var host = await SecurityFixture.StartAsync(settings, logs);
        var bob = Client(host, SecurityProtocol.SaslPlaintext, SaslMechanism.ScramSha512, "bob", BobPassword);

        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig(bob) { MessageTimeoutMs = 10_000 }).Build())
        {
            var denied = await Assert.ThrowsAsync<ProduceException<string, string>>(
                () => producer.ProduceAsync(SecurityFixture.OrdersTopic, new Message<string, string> { Key = "k", Value = "v" }));
            Assert.Equal(ErrorCode.TopicAuthorizationFailed, denied.Error.Code);
        }
        // The other family, and alice on the restricted one, work.
        await RoundTripAsync(bob, SecurityFixture.PaymentsTopic);
        await RoundTripAsync(Client(host, SecurityProtocol.SaslPlaintext, SaslMechanism.ScramSha512, "alice", AlicePassword), SecurityFixture.OrdersTopic);

        // A group of the restricted family.
        var errors = new List<Error>();
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig(bob) { GroupId = $"orders-{Guid.NewGuid():N}", SessionTimeoutMs = 6000 })
            .SetErrorHandler((_, e) => { lock (errors) { errors.Add(e); } })
            .Build();
        consumer.Subscribe(SecurityFixture.OrdersTopic);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        ErrorCode? seen = null;
        while (seen is null && DateTime.UtcNow < deadline)
        {
            try
            {
                consumer.Consume(TimeSpan.FromMilliseconds(200));
            }
            catch (ConsumeException e)
            {
                seen = e.Error.Code;
            }
            lock (errors)
            {
                seen ??= errors.Select(e => (ErrorCode?)e.Code).FirstOrDefault(c => c is ErrorCode.GroupAuthorizationFailed or ErrorCode.TopicAuthorizationFailed);
            }
        }
        Assert.True(seen is ErrorCode.GroupAuthorizationFailed or ErrorCode.TopicAuthorizationFailed, $"saw {seen}");
        consumer.Close();
    }

    private static async Task RoundTripAsync(ClientConfig client, string topic, bool useGroup = false, int count = 5)
    {
        var marker = Guid.NewGuid().ToString("N");
        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig(client) { MessageTimeoutMs = 15_000, LingerMs = 5 }).Build())
        {
            for (var i = 0; i < count; i++)
            {
                var result = await producer.ProduceAsync(topic, new Message<string, string> { Key = marker, Value = $"{marker}-{i}" });
                Assert.Equal(PersistenceStatus.Persisted, result.Status);
            }
        }
        var familyPrefix = topic.Split('.')[0];
        var config = new ConsumerConfig(client)
        {
            GroupId = $"{familyPrefix}-{marker}",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            SessionTimeoutMs = 6000,
            FetchWaitMaxMs = 50,
        };
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        if (useGroup)
        {
            consumer.Subscribe(topic);
        }
        else
        {
            consumer.Assign([new TopicPartitionOffset(topic, 0, Offset.Beginning), new TopicPartitionOffset(topic, 1, Offset.Beginning)]);
        }
        var received = new HashSet<string>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (received.Count < count && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is { IsPartitionEOF: false } && result.Message.Key == marker)
            {
                received.Add(result.Message.Value);
            }
        }
        consumer.Close();
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"{marker}-{i}").Order(), received.Order());
    }

    private static void AssertNoSecret(LogCapture logs, params string[] more)
    {
        foreach (var secret in more.Append(AlicePassword).Append(BobPassword))
        {
            Assert.DoesNotContain(logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
        }
    }

    internal static async Task WaitForLogAsync(LogCapture logs, string text)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!logs.Lines.Any(l => l.Contains(text, StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"no log line contains '{text}'");
            await Task.Delay(50);
        }
    }

    private static async Task<Socket> ConnectAsync(ProxyHost host)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", host.State.AdvertisedPort);
        return socket;
    }

    private static byte[] ApiVersionsV0(int correlationId)
    {
        var frame = new byte[] { 0, 18, 0, 0, 0, 0, 0, 0, 0, 1, (byte)'t' };
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(4), correlationId);
        return frame;
    }

    private static async Task SendFrameAsync(Socket socket, byte[] frame)
    {
        var sized = new byte[frame.Length + 4];
        BinaryPrimitives.WriteInt32BigEndian(sized, frame.Length);
        frame.CopyTo(sized, 4);
        await socket.SendAsync(sized);
    }

    /// <summary>Reads until the proxy closes the connection; returns the bytes of a Kafka answer seen (0 for none).</summary>
    private static async Task<int> ReadUntilClosedAsync(Socket socket)
    {
        var buffer = new byte[4096];
        var total = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (true)
        {
            int read;
            try
            {
                read = await socket.ReceiveAsync(buffer, timeout.Token);
            }
            catch (SocketException)
            {
                return total;
            }
            if (read == 0)
            {
                return total;
            }
            // A TLS alert is not a Kafka answer: count only what looks like a size-prefixed frame.
            if (buffer[0] == 0)
            {
                total += read;
            }
        }
    }
}
