using System.Security.Cryptography;
using System.Text;

namespace Switchback.Proxy.Security;

/// <summary>The outcome of one SASL exchange step on the server side.</summary>
public readonly record struct SaslStep(byte[] Response, bool Completed, string? AuthenticatedUser, string? Failure)
{
    public static SaslStep Continue(byte[] response) => new(response, false, null, null);
    public static SaslStep Success(byte[] response, string user) => new(response, true, user, null);
    public static SaslStep Fail(string reason, string? user = null) => new([], true, user, reason);
}

/// <summary>One server-side SASL exchange (one per authentication attempt).</summary>
public interface ISaslServerExchange
{
    SaslStep Step(byte[] message);

    public static ISaslServerExchange Create(string mechanism, CredentialStore credentials) => mechanism switch
    {
        SaslMechanisms.Plain => new PlainServerExchange(credentials),
        _ => new ScramServerExchange(ScramAlgorithm.For(mechanism), credentials),
    };
}

/// <summary>SASL PLAIN (RFC 4616): one message, <c>[authzid] NUL authcid NUL passwd</c>.</summary>
public sealed class PlainServerExchange(CredentialStore credentials) : ISaslServerExchange
{
    public SaslStep Step(byte[] message)
    {
        var text = Encoding.UTF8.GetString(message);
        var parts = text.Split('\0');
        if (parts.Length != 3 || parts[1].Length == 0)
        {
            return SaslStep.Fail("malformed PLAIN message");
        }
        var (authzid, user, password) = (parts[0], parts[1], parts[2]);
        if (authzid.Length > 0 && authzid != user)
        {
            return SaslStep.Fail("authorization id differs from the user name", user);
        }
        return credentials.VerifyPlain(user, password) ? SaslStep.Success([], user) : SaslStep.Fail("invalid credentials", user);
    }
}

/// <summary>
/// Server side of SCRAM (RFC 5802; SHA-256 per RFC 7677, SHA-512 as Kafka defines it), without channel binding:
/// client-first, server-first (nonce, salt, iterations), client-final (proof checked in constant time), server-final.
/// </summary>
public sealed class ScramServerExchange(ScramAlgorithm algorithm, CredentialStore credentials) : ISaslServerExchange
{
    private int _stage;
    private string? _user;
    private bool _known;
    private string? _gs2Header;
    private string? _clientFirstBare;
    private string? _serverFirst;
    private string? _nonce;
    private string? _clientNonce;
    private ScramCredential? _credential;

    public SaslStep Step(byte[] message)
    {
        var text = Encoding.UTF8.GetString(message);
        return _stage++ switch
        {
            0 => ClientFirst(text),
            1 => ClientFinal(text),
            _ => SaslStep.Fail("unexpected message after the SCRAM exchange completed", _user),
        };
    }

    private SaslStep ClientFirst(string text)
    {
        // gs2-header: "n," or "y," (no channel binding), optional "a=authzid", then ",".
        if (!(text.StartsWith("n,", StringComparison.Ordinal) || text.StartsWith("y,", StringComparison.Ordinal)))
        {
            return SaslStep.Fail("channel binding is not supported");
        }
        var secondComma = text.IndexOf(',', 2);
        if (secondComma < 0)
        {
            return SaslStep.Fail("malformed client-first message");
        }
        _gs2Header = text[..(secondComma + 1)];
        var authzid = text[2..secondComma];
        _clientFirstBare = text[(secondComma + 1)..];
        var attributes = Attributes(_clientFirstBare);
        if (!attributes.TryGetValue("n", out var escapedUser) || ScramAlgorithm.UnescapeName(escapedUser) is not { Length: > 0 } user
            || !attributes.TryGetValue("r", out var clientNonce) || clientNonce.Length == 0)
        {
            return SaslStep.Fail("malformed client-first message");
        }
        _user = user;
        if (authzid.Length > 0 && (!authzid.StartsWith("a=", StringComparison.Ordinal) || ScramAlgorithm.UnescapeName(authzid[2..]) != user))
        {
            return SaslStep.Fail("authorization id differs from the user name", user);
        }
        _credential = credentials.Scram(algorithm, user, out _known);
        _clientNonce = clientNonce;
        _nonce = clientNonce + ScramAlgorithm.NewNonce();
        _serverFirst = $"r={_nonce},s={Convert.ToBase64String(_credential.Salt)},i={_credential.Iterations}";
        return SaslStep.Continue(Encoding.UTF8.GetBytes(_serverFirst));
    }

    private SaslStep ClientFinal(string text)
    {
        var proofAt = text.LastIndexOf(",p=", StringComparison.Ordinal);
        if (proofAt < 0)
        {
            return SaslStep.Fail("malformed client-final message", _user);
        }
        var withoutProof = text[..proofAt];
        var attributes = Attributes(text);
        if (!attributes.TryGetValue("c", out var binding) || binding != Convert.ToBase64String(Encoding.UTF8.GetBytes(_gs2Header!)))
        {
            return SaslStep.Fail("channel binding data does not match", _user);
        }
        // Older librdkafka (2.0 and before) echoes its own nonce in front of the combined one; Kafka brokers accept
        // that (they check the end of the nonce), so the proxy accepts exactly that form too.
        if (!attributes.TryGetValue("r", out var nonce) || (nonce != _nonce && nonce != _clientNonce + _nonce))
        {
            return SaslStep.Fail("nonce does not match", _user);
        }
        byte[] proof;
        try
        {
            proof = Convert.FromBase64String(attributes.GetValueOrDefault("p", ""));
        }
        catch (FormatException)
        {
            return SaslStep.Fail("malformed proof", _user);
        }
        if (proof.Length != algorithm.Length)
        {
            return SaslStep.Fail("malformed proof", _user);
        }
        var authMessage = $"{_clientFirstBare},{_serverFirst},{withoutProof}";
        var clientSignature = algorithm.Hmac(_credential!.StoredKey, authMessage);
        var clientKey = ScramAlgorithm.Xor(proof, clientSignature);
        var matches = CryptographicOperations.FixedTimeEquals(algorithm.Hash(clientKey), _credential.StoredKey);
        if (!matches || !_known)
        {
            return SaslStep.Fail("invalid credentials", _user);
        }
        var serverSignature = algorithm.Hmac(_credential.ServerKey, authMessage);
        return SaslStep.Success(Encoding.UTF8.GetBytes($"v={Convert.ToBase64String(serverSignature)}"), _user!);
    }

    internal static Dictionary<string, string> Attributes(string message)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in message.Split(','))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                result.TryAdd(part[..eq], part[(eq + 1)..]);
            }
        }
        return result;
    }
}
