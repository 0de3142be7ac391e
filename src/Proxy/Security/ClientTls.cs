using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Switchback.Proxy.Security;

/// <summary>
/// TLS for client connections, applied the same way on the bootstrap listener and on every per-broker listener.
/// Kestrel's <c>UseHttps</c> only reaches endpoints Kestrel itself binds at start-up; per-broker ports are bound
/// later through <see cref="IConnectionListenerFactory"/>, which yields raw transport connections. Rather than
/// run two TLS stacks with different settings, handshake timeout and logging, every connection is wrapped here:
/// an <see cref="SslStream"/> over the transport's duplex pipe, and the connection's transport replaced by pipes
/// over the decrypted stream, so the session code above it is unchanged.
/// </summary>
public sealed partial class ClientTls(ServerTlsConfig config, ILogger logger)
{
    /// <summary>Key in <see cref="ConnectionContext.Items"/> of the principal a client certificate established.</summary>
    public const string PrincipalItem = "switchback.principal";

    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Secures a client connection when the listener has TLS. Returns what to dispose when the connection ends
    /// (nothing to do without TLS), or null when the handshake failed and the connection must be dropped.
    /// </summary>
    public static Task<IAsyncDisposable?> SecureAsync(ConnectionContext connection, ServerTlsConfig? config, ILogger logger) =>
        config is null ? Task.FromResult<IAsyncDisposable?>(NoTls.Instance) : new ClientTls(config, logger).AuthenticateAsync(connection);

    private sealed class NoTls : IAsyncDisposable
    {
        public static readonly NoTls Instance = new();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>
    /// Performs the TLS handshake and swaps the connection's transport for the decrypted one. Returns what must be
    /// disposed when the connection ends, or null (connection unusable, reason logged) when the handshake failed.
    /// </summary>
    public async Task<IAsyncDisposable?> AuthenticateAsync(ConnectionContext connection)
    {
        var raw = connection.Transport;
        var ssl = new SslStream(new DuplexPipeStream(raw), leaveInnerStreamOpen: false);
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificate = config.Certificate,
            ClientCertificateRequired = config.ClientCa is not null,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = config.ClientCa is null ? null : ValidateClientCertificate,
        };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        timeout.CancelAfter(HandshakeTimeout);
        try
        {
            await ssl.AuthenticateAsServerAsync(options, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException or ConnectionResetException)
        {
            LogHandshakeFailed(logger, connection.ConnectionId, connection.RemoteEndPoint?.ToString() ?? "?",
                e is OperationCanceledException ? "timed out or closed during the handshake" : e.Message);
            await ssl.DisposeAsync().ConfigureAwait(false);
            return null;
        }
        if (ssl.RemoteCertificate is { } client)
        {
            // Kafka's default principal for a TLS client is its certificate's distinguished name.
            connection.Items[PrincipalItem] = $"User:{client.Subject}";
        }
        var secured = new SecuredTransport(ssl);
        connection.Transport = secured;
        return secured;
    }

    private bool ValidateClientCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            return false;
        }
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(config.ClientCa!);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return custom.Build(certificate as X509Certificate2 ?? new X509Certificate2(certificate));
    }

    /// <summary>Pipes over the decrypted stream; completing them disposes the stream (and so the TLS session).</summary>
    private sealed class SecuredTransport(SslStream ssl) : IDuplexPipe, IAsyncDisposable
    {
        public PipeReader Input { get; } = PipeReader.Create(ssl, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true));
        public PipeWriter Output { get; } = PipeWriter.Create(ssl, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));

        public async ValueTask DisposeAsync()
        {
            await Input.CompleteAsync().ConfigureAwait(false);
            await Output.CompleteAsync().ConfigureAwait(false);
            await ssl.DisposeAsync().ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 5101, Level = LogLevel.Warning, Message = "Client connection {ConnectionId} from {Remote}: TLS handshake failed: {Reason}")]
    private static partial void LogHandshakeFailed(ILogger logger, string connectionId, string remote, string reason);
}

/// <summary>A <see cref="Stream"/> over a connection's duplex pipe, so <see cref="SslStream"/> can sit on a Kestrel transport.</summary>
internal sealed class DuplexPipeStream(IDuplexPipe pipe) : Stream
{
    private readonly Stream _input = pipe.Input.AsStream(leaveOpen: true);
    private readonly Stream _output = pipe.Output.AsStream(leaveOpen: true);

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => _input.Read(buffer, offset, count);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _input.ReadAsync(buffer, cancellationToken);
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _input.ReadAsync(buffer, offset, count, cancellationToken);
    public override void Write(byte[] buffer, int offset, int count) => _output.Write(buffer, offset, count);
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => _output.WriteAsync(buffer, cancellationToken);
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _output.WriteAsync(buffer, offset, count, cancellationToken);
    public override void Flush() => _output.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => _output.FlushAsync(cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
