using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.Security;

/// <summary>Validates the security sections of the configuration and loads their PEM files, naming the key of any problem.</summary>
public static class SecurityConfigLoader
{
    public static ServerTlsConfig? ServerTls(string key, TlsListenerOptions? options, bool allowClientCa)
    {
        if (options is null)
        {
            return null;
        }
        if (string.IsNullOrWhiteSpace(options.CertificatePath))
        {
            throw new ConfigException($"{key}:CertificatePath", "is required when TLS is configured (PEM certificate file).");
        }
        if (string.IsNullOrWhiteSpace(options.KeyPath))
        {
            throw new ConfigException($"{key}:KeyPath", "is required when TLS is configured (PEM private key file).");
        }
        var certificate = LoadCertificate($"{key}:CertificatePath", options.CertificatePath, options.KeyPath);
        X509Certificate2Collection? clientCa = null;
        if (!string.IsNullOrWhiteSpace(options.ClientCaPath))
        {
            if (!allowClientCa)
            {
                throw new ConfigException($"{key}:ClientCaPath", "is not supported here.");
            }
            clientCa = LoadCa($"{key}:ClientCaPath", options.ClientCaPath);
        }
        return new ServerTlsConfig(certificate, clientCa);
    }

    public static SaslServerConfig? ServerSasl(string key, SaslListenerOptions? options)
    {
        if (options is null)
        {
            return null;
        }
        if (options.Mechanisms.Count == 0)
        {
            throw new ConfigException($"{key}:Mechanisms", $"name at least one mechanism ({string.Join(", ", SaslMechanisms.Supported)}).");
        }
        for (var i = 0; i < options.Mechanisms.Count; i++)
        {
            if (!SaslMechanisms.Supported.Contains(options.Mechanisms[i], StringComparer.Ordinal))
            {
                throw new ConfigException($"{key}:Mechanisms:{i}", $"'{options.Mechanisms[i]}' is not supported (supported: {string.Join(", ", SaslMechanisms.Supported)}).");
            }
        }
        foreach (var (user, password) in options.Users)
        {
            if (string.IsNullOrEmpty(password))
            {
                throw new ConfigException($"{key}:Users:{user}", "password must not be empty.");
            }
        }
        var precomputed = new Dictionary<(string, string), ScramCredential>();
        foreach (var (user, byMechanism) in options.ScramCredentials)
        {
            foreach (var (mechanism, text) in byMechanism)
            {
                var entryKey = $"{key}:ScramCredentials:{user}:{mechanism}";
                if (!SaslMechanisms.IsScram(mechanism))
                {
                    throw new ConfigException(entryKey, $"'{mechanism}' is not a SCRAM mechanism ({SaslMechanisms.ScramSha256}, {SaslMechanisms.ScramSha512}).");
                }
                // The problem text never repeats the value: it is a secret.
                precomputed[(mechanism, user)] = ScramCredential.Parse(text ?? "", ScramAlgorithm.For(mechanism), out var problem)
                    ?? throw new ConfigException(entryKey, problem!);
            }
        }
        if (options.Users.Count == 0 && precomputed.Count == 0)
        {
            throw new ConfigException($"{key}:Users", "SASL is enabled but no user is configured (Users or ScramCredentials).");
        }
        return new SaslServerConfig([.. options.Mechanisms], new CredentialStore(options.Users, precomputed, options.Mechanisms));
    }

    public static UpstreamSecurity Upstream(string key, ClusterOptions cluster)
    {
        UpstreamTlsConfig? tls = null;
        if (cluster.Tls is { } t)
        {
            if (!t.Enabled)
            {
                if (t.CaPath is not null || t.CertificatePath is not null || t.KeyPath is not null || t.ServerName is not null)
                {
                    throw new ConfigException($"{key}:Tls:Enabled", "must be true when other TLS settings are given.");
                }
            }
            else
            {
                var ca = string.IsNullOrWhiteSpace(t.CaPath) ? null : LoadCa($"{key}:Tls:CaPath", t.CaPath);
                X509Certificate2? clientCertificate = null;
                if (t.CertificatePath is not null || t.KeyPath is not null)
                {
                    if (string.IsNullOrWhiteSpace(t.CertificatePath) || string.IsNullOrWhiteSpace(t.KeyPath))
                    {
                        throw new ConfigException($"{key}:Tls", "CertificatePath and KeyPath go together.");
                    }
                    clientCertificate = LoadCertificate($"{key}:Tls:CertificatePath", t.CertificatePath, t.KeyPath);
                }
                tls = new UpstreamTlsConfig(ca, clientCertificate, string.IsNullOrWhiteSpace(t.ServerName) ? null : t.ServerName,
                    ca is null ? null : t.CaPath, clientCertificate is null ? null : t.CertificatePath, clientCertificate is null ? null : t.KeyPath);
            }
        }
        UpstreamSaslConfig? sasl = null;
        if (cluster.Sasl is { } s)
        {
            if (s.Mechanism is null || !SaslMechanisms.Supported.Contains(s.Mechanism, StringComparer.Ordinal))
            {
                throw new ConfigException($"{key}:Sasl:Mechanism", $"'{s.Mechanism}' is not supported (supported: {string.Join(", ", SaslMechanisms.Supported)}).");
            }
            if (string.IsNullOrEmpty(s.Username))
            {
                throw new ConfigException($"{key}:Sasl:Username", "is required.");
            }
            if (string.IsNullOrEmpty(s.Password))
            {
                throw new ConfigException($"{key}:Sasl:Password", "is required.");
            }
            sasl = new UpstreamSaslConfig(s.Mechanism, s.Username, s.Password);
        }
        return tls is null && sasl is null ? UpstreamSecurity.None : new UpstreamSecurity(tls, sasl);
    }

    public static IReadOnlyList<string>? AllowedPrincipals(string key, List<string> principals)
    {
        if (principals.Count == 0)
        {
            return null;
        }
        for (var i = 0; i < principals.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(principals[i]) || !principals[i].Contains(':', StringComparison.Ordinal))
            {
                throw new ConfigException($"{key}:{i}", $"'{principals[i]}' is not a principal (e.g. User:alice).");
            }
        }
        return [.. principals];
    }

    private static X509Certificate2 LoadCertificate(string key, string certificatePath, string keyPath)
    {
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            // A PEM-loaded key is ephemeral; exporting and re-importing makes it usable by every TLS backend.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new ConfigException(key, $"cannot load the certificate and key: {e.Message}");
        }
    }

    private static X509Certificate2Collection LoadCa(string key, string path)
    {
        try
        {
            var collection = new X509Certificate2Collection();
            collection.ImportFromPemFile(path);
            if (collection.Count == 0)
            {
                throw new ConfigException(key, "the file holds no PEM certificate.");
            }
            return collection;
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(key, $"cannot load the CA certificates: {e.Message}");
        }
    }
}
