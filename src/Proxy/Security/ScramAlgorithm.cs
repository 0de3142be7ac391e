using System.Security.Cryptography;
using System.Text;

namespace Switchback.Proxy.Security;

/// <summary>The primitives of one SCRAM mechanism (RFC 5802 with SHA-256 per RFC 7677, or SHA-512).</summary>
public sealed class ScramAlgorithm
{
    /// <summary>Kafka's minimum iteration count for SCRAM-SHA-256/512.</summary>
    public const int MinIterations = 4096;

    public static readonly ScramAlgorithm Sha256 = new(SaslMechanisms.ScramSha256, HashAlgorithmName.SHA256, 32);
    public static readonly ScramAlgorithm Sha512 = new(SaslMechanisms.ScramSha512, HashAlgorithmName.SHA512, 64);

    private ScramAlgorithm(string mechanism, HashAlgorithmName hash, int length)
    {
        Mechanism = mechanism;
        HashName = hash;
        Length = length;
    }

    public string Mechanism { get; }
    public HashAlgorithmName HashName { get; }
    public int Length { get; }

    public static ScramAlgorithm For(string mechanism) => mechanism switch
    {
        SaslMechanisms.ScramSha256 => Sha256,
        SaslMechanisms.ScramSha512 => Sha512,
        _ => throw new ArgumentException($"'{mechanism}' is not a SCRAM mechanism.", nameof(mechanism)),
    };

    public byte[] SaltedPassword(string password, byte[] salt, int iterations) =>
        Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashName, Length);

    public byte[] Hmac(byte[] key, string data) => Hmac(key, Encoding.UTF8.GetBytes(data));

    public byte[] Hmac(byte[] key, byte[] data) => HashName == HashAlgorithmName.SHA256
        ? HMACSHA256.HashData(key, data)
        : HMACSHA512.HashData(key, data);

    public byte[] Hash(byte[] data) => HashName == HashAlgorithmName.SHA256 ? SHA256.HashData(data) : SHA512.HashData(data);

    /// <summary>What a server stores for a password: never the password itself.</summary>
    public ScramCredential CreateCredential(string password, byte[] salt, int iterations)
    {
        var salted = SaltedPassword(password, salt, iterations);
        var clientKey = Hmac(salted, "Client Key");
        return new ScramCredential(salt, iterations, Hash(clientKey), Hmac(salted, "Server Key"));
    }

    /// <summary>A fresh printable nonce (base64 of random bytes, no commas).</summary>
    public static string NewNonce() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));

    /// <summary>SCRAM's escaping of user names (RFC 5802 5.1): ',' as =2C and '=' as =3D.</summary>
    public static string EscapeName(string name) => name.Replace("=", "=3D", StringComparison.Ordinal).Replace(",", "=2C", StringComparison.Ordinal);

    public static string? UnescapeName(string escaped)
    {
        var builder = new StringBuilder(escaped.Length);
        for (var i = 0; i < escaped.Length; i++)
        {
            if (escaped[i] != '=')
            {
                builder.Append(escaped[i]);
                continue;
            }
            if (i + 2 >= escaped.Length)
            {
                return null;
            }
            var code = escaped.AsSpan(i + 1, 2);
            if (code.SequenceEqual("2C"))
            {
                builder.Append(',');
            }
            else if (code.SequenceEqual("3D"))
            {
                builder.Append('=');
            }
            else
            {
                return null;
            }
            i += 2;
        }
        return builder.ToString();
    }

    public static byte[] Xor(byte[] a, byte[] b)
    {
        var result = new byte[a.Length];
        for (var i = 0; i < a.Length; i++)
        {
            result[i] = (byte)(a[i] ^ b[i]);
        }
        return result;
    }
}

/// <summary>A stored SCRAM credential: salt, iteration count, StoredKey and ServerKey.</summary>
public sealed class ScramCredential(byte[] salt, int iterations, byte[] storedKey, byte[] serverKey)
{
    public byte[] Salt { get; } = salt;
    public int Iterations { get; } = iterations;
    public byte[] StoredKey { get; } = storedKey;
    public byte[] ServerKey { get; } = serverKey;

    /// <summary>Kafka's text form: <c>salt=B64,stored_key=B64,server_key=B64,iterations=N</c>.</summary>
    public string Format() =>
        $"salt={Convert.ToBase64String(Salt)},stored_key={Convert.ToBase64String(StoredKey)},server_key={Convert.ToBase64String(ServerKey)},iterations={Iterations}";

    /// <summary>Parses <see cref="Format"/>'s output; null with a reason (naming no secret) when malformed.</summary>
    public static ScramCredential? Parse(string text, ScramAlgorithm algorithm, out string? problem)
    {
        byte[]? salt = null, storedKey = null, serverKey = null;
        var iterations = 0;
        problem = null;
        try
        {
            foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = part.IndexOf('=', StringComparison.Ordinal);
                var (key, value) = eq < 0 ? (part, "") : (part[..eq], part[(eq + 1)..]);
                switch (key)
                {
                    case "salt": salt = Convert.FromBase64String(value); break;
                    case "stored_key": storedKey = Convert.FromBase64String(value); break;
                    case "server_key": serverKey = Convert.FromBase64String(value); break;
                    case "iterations": iterations = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                    default: problem = $"unknown attribute '{key}' (expected salt, stored_key, server_key, iterations)."; return null;
                }
            }
        }
        catch (FormatException)
        {
            problem = "an attribute is not valid base64 or a number.";
            return null;
        }
        if (salt is null || storedKey is null || serverKey is null || iterations == 0)
        {
            problem = "needs salt, stored_key, server_key and iterations.";
            return null;
        }
        if (iterations < ScramAlgorithm.MinIterations)
        {
            problem = $"iterations must be at least {ScramAlgorithm.MinIterations}.";
            return null;
        }
        if (storedKey.Length != algorithm.Length || serverKey.Length != algorithm.Length)
        {
            problem = $"stored_key and server_key must be {algorithm.Length} bytes for {algorithm.Mechanism}.";
            return null;
        }
        return new ScramCredential(salt, iterations, storedKey, serverKey);
    }
}
