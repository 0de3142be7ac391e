using System.Collections.Frozen;
using System.Security.Cryptography;
using System.Text;

namespace Switchback.Proxy.Security;

/// <summary>
/// The users the proxy authenticates. Passwords given in configuration are turned into SCRAM credentials at start
/// (fresh salt, <see cref="ScramAlgorithm.MinIterations"/> iterations) and, for PLAIN, kept only as a SHA-256
/// digest; precomputed SCRAM credentials are used as given. Nothing here is ever logged.
/// </summary>
public sealed class CredentialStore
{
    private readonly FrozenDictionary<string, byte[]> _plainDigests;
    private readonly FrozenDictionary<(string Mechanism, string User), ScramCredential> _scram;
    // Keys unknown users' fake credentials, so an unknown user fails exactly like a wrong password.
    private readonly byte[] _unknownUserKey = RandomNumberGenerator.GetBytes(32);

    public CredentialStore(IReadOnlyDictionary<string, string> passwords, IReadOnlyDictionary<(string Mechanism, string User), ScramCredential> precomputed, IReadOnlyList<string> mechanisms)
    {
        _plainDigests = passwords.ToFrozenDictionary(p => p.Key, p => SHA256.HashData(Encoding.UTF8.GetBytes(p.Value)), StringComparer.Ordinal);
        var scram = new Dictionary<(string, string), ScramCredential>(precomputed);
        foreach (var mechanism in mechanisms.Where(SaslMechanisms.IsScram))
        {
            var algorithm = ScramAlgorithm.For(mechanism);
            foreach (var (user, password) in passwords)
            {
                scram.TryAdd((mechanism, user), algorithm.CreateCredential(password, RandomNumberGenerator.GetBytes(16), ScramAlgorithm.MinIterations));
            }
        }
        _scram = scram.ToFrozenDictionary();
    }

    public override string ToString() => $"{_plainDigests.Count} password(s), {_scram.Count} SCRAM credential(s)";

    /// <summary>Checks a PLAIN password in constant time (against the password, or else a SCRAM credential of the user).</summary>
    public bool VerifyPlain(string user, string password)
    {
        if (_plainDigests.TryGetValue(user, out var digest))
        {
            return CryptographicOperations.FixedTimeEquals(digest, SHA256.HashData(Encoding.UTF8.GetBytes(password)));
        }
        foreach (var mechanism in new[] { SaslMechanisms.ScramSha512, SaslMechanisms.ScramSha256 })
        {
            if (_scram.TryGetValue((mechanism, user), out var credential))
            {
                var algorithm = ScramAlgorithm.For(mechanism);
                var candidate = algorithm.CreateCredential(password, credential.Salt, credential.Iterations);
                return CryptographicOperations.FixedTimeEquals(candidate.StoredKey, credential.StoredKey);
            }
        }
        return false;
    }

    /// <summary>The user's SCRAM credential, or a stable fake one (<paramref name="known"/> false) that no proof matches.</summary>
    public ScramCredential Scram(ScramAlgorithm algorithm, string user, out bool known)
    {
        if (_scram.TryGetValue((algorithm.Mechanism, user), out var credential))
        {
            known = true;
            return credential;
        }
        known = false;
        var salt = HMACSHA256.HashData(_unknownUserKey, Encoding.UTF8.GetBytes(algorithm.Mechanism + "\0" + user))[..16];
        return new ScramCredential(salt, ScramAlgorithm.MinIterations, RandomNumberGenerator.GetBytes(algorithm.Length), RandomNumberGenerator.GetBytes(algorithm.Length));
    }
}
