using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Security;

/// <summary>
/// Secures a fresh upstream connection before it carries requests: TLS (server certificate checked against the
/// configured CAs, or the system store), then SASL (SaslHandshake v1 and SaslAuthenticate v1 frames) when the
/// cluster requires it. Failures are <see cref="UpstreamUnavailableException"/>s that name no secret.
/// </summary>
public static class UpstreamHandshake
{
    private const int MaxHandshakeFrameBytes = 1024 * 1024;
    private const string ClientId = "switchback";

    public static async Task<Stream> SecureAsync(Stream transport, DnsEndPoint endPoint, UpstreamSecurity security, string description, CancellationToken cancellationToken)
    {
        var stream = transport;
        if (security.Tls is { } tls)
        {
            var ssl = new SslStream(transport, leaveInnerStreamOpen: false);
            var options = new SslClientAuthenticationOptions
            {
                TargetHost = tls.ServerName ?? endPoint.Host,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                ClientCertificates = tls.ClientCertificate is null ? null : [tls.ClientCertificate],
            };
            if (tls.TrustedCa is { } ca)
            {
                options.CertificateChainPolicy = new X509ChainPolicy
                {
                    TrustMode = X509ChainTrustMode.CustomRootTrust,
                    RevocationMode = X509RevocationMode.NoCheck,
                };
                options.CertificateChainPolicy.CustomTrustStore.AddRange(ca);
            }
            try
            {
                await ssl.AuthenticateAsClientAsync(options, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is AuthenticationException or IOException)
            {
                await ssl.DisposeAsync().ConfigureAwait(false);
                throw new UpstreamUnavailableException($"TLS handshake with {description} failed: {e.Message}", e);
            }
            stream = ssl;
        }
        if (security.Sasl is { } sasl)
        {
            try
            {
                await AuthenticateAsync(stream, sasl, description, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SaslAuthenticationException or IOException or KafkaProtocolException)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
                throw new UpstreamUnavailableException($"SASL {sasl.Mechanism} authentication to {description} failed: {e.Message}", e);
            }
        }
        return stream;
    }

    /// <summary>Runs the client side of SASL over <paramref name="stream"/> (exposed for tests).</summary>
    public static async Task AuthenticateAsync(Stream stream, UpstreamSaslConfig sasl, string description, CancellationToken cancellationToken)
    {
        var correlationId = 0;
        var handshake = await ExchangeAsync<SaslHandshakeResponse>(stream, ApiKey.SaslHandshake, 1, correlationId++,
            new SaslHandshakeRequest { Mechanism = sasl.Mechanism }, cancellationToken).ConfigureAwait(false);
        if (handshake.ErrorCode != 0)
        {
            throw new SaslAuthenticationException($"{description} refused mechanism {sasl.Mechanism} (error {handshake.ErrorCode}; it offers {string.Join(", ", handshake.Mechanisms)})");
        }
        var exchange = ISaslClientExchange.Create(sasl);
        byte[]? message = exchange.Start();
        while (message is not null)
        {
            var response = await ExchangeAsync<SaslAuthenticateResponse>(stream, ApiKey.SaslAuthenticate, 1, correlationId++,
                new SaslAuthenticateRequest { AuthBytes = message }, cancellationToken).ConfigureAwait(false);
            if (response.ErrorCode != 0)
            {
                throw new SaslAuthenticationException($"error {response.ErrorCode}: {response.ErrorMessage}");
            }
            message = exchange.Next(response.AuthBytes.ToArray());
        }
    }

    private static async Task<T> ExchangeAsync<T>(Stream stream, ApiKey apiKey, short version, int correlationId, IKafkaMessage request, CancellationToken cancellationToken)
        where T : IKafkaMessage, new()
    {
        using (var frame = FrameCodec.EncodeRequest(apiKey, version, correlationId, ClientId, request))
        {
            var sized = new byte[frame.Length + 4];
            BinaryPrimitives.WriteInt32BigEndian(sized, frame.Length);
            frame.Span.CopyTo(sized.AsSpan(4));
            await stream.WriteAsync(sized, cancellationToken).ConfigureAwait(false);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        var sizeBytes = new byte[4];
        await stream.ReadExactlyAsync(sizeBytes, cancellationToken).ConfigureAwait(false);
        var size = BinaryPrimitives.ReadInt32BigEndian(sizeBytes);
        if (size < 4 || size > MaxHandshakeFrameBytes)
        {
            throw new KafkaProtocolException($"{apiKey} response of {size} bytes");
        }
        var body = new byte[size];
        await stream.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
        if (BinaryPrimitives.ReadInt32BigEndian(body) != correlationId)
        {
            throw new KafkaProtocolException($"{apiKey} response with an unexpected correlation id");
        }
        using var response = PooledFrame.CopyOf(body);
        return FrameCodec.DecodeResponse<T>(response, apiKey, version);
    }
}
