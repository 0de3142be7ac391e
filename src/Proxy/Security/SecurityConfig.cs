using System.Security.Cryptography.X509Certificates;

namespace Switchback.Proxy.Security;

/// <summary>A server certificate and, for mutual TLS, the CAs client certificates must chain to.</summary>
public sealed record ServerTlsConfig(X509Certificate2 Certificate, X509Certificate2Collection? ClientCa);

/// <summary>SASL as the proxy terminates it: the mechanisms it offers and the credentials it checks.</summary>
public sealed record SaslServerConfig(IReadOnlyList<string> Mechanisms, CredentialStore Credentials);

/// <summary>Security of the client listener (bootstrap and per-broker ports alike).</summary>
public sealed record ListenerSecurity(ServerTlsConfig? Tls, SaslServerConfig? Sasl)
{
    public static readonly ListenerSecurity None = new(null, null);
}

/// <summary>TLS towards an upstream cluster (the file paths are kept for the admin client, which loads them itself).</summary>
public sealed record UpstreamTlsConfig(
    X509Certificate2Collection? TrustedCa,
    X509Certificate2? ClientCertificate,
    string? ServerName,
    string? CaPath = null,
    string? CertificatePath = null,
    string? KeyPath = null);

/// <summary>SASL credentials the proxy presents to an upstream cluster. Never printed: <see cref="ToString"/> hides the password.</summary>
public sealed class UpstreamSaslConfig(string mechanism, string username, string password)
{
    public string Mechanism { get; } = mechanism;
    public string Username { get; } = username;
    public string Password { get; } = password;

    public override string ToString() => $"{Mechanism} as {Username}";
}

/// <summary>How the proxy connects to one upstream cluster.</summary>
public sealed record UpstreamSecurity(UpstreamTlsConfig? Tls, UpstreamSaslConfig? Sasl)
{
    public static readonly UpstreamSecurity None = new(null, null);
}

/// <summary>SASL mechanism names as Kafka spells them.</summary>
public static class SaslMechanisms
{
    public const string Plain = "PLAIN";
    public const string ScramSha256 = "SCRAM-SHA-256";
    public const string ScramSha512 = "SCRAM-SHA-512";

    public static readonly IReadOnlyList<string> Supported = [Plain, ScramSha256, ScramSha512];

    public static bool IsScram(string mechanism) => mechanism is ScramSha256 or ScramSha512;
}
