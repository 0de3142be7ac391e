using System.Security.Cryptography;
using System.Text;

namespace Switchback.Proxy.Security;

/// <summary>Client side of a SASL exchange the proxy runs against an upstream broker.</summary>
public interface ISaslClientExchange
{
    /// <summary>The first message to send.</summary>
    byte[] Start();

    /// <summary>The next message to send in answer to a server message, or null when the exchange is complete.</summary>
    byte[]? Next(byte[] serverMessage);

    public static ISaslClientExchange Create(UpstreamSaslConfig config) => config.Mechanism switch
    {
        SaslMechanisms.Plain => new PlainClientExchange(config.Username, config.Password),
        _ => new ScramClientExchange(ScramAlgorithm.For(config.Mechanism), config.Username, config.Password),
    };
}

/// <summary>SASL PLAIN client: one message, no answer expected.</summary>
public sealed class PlainClientExchange(string user, string password) : ISaslClientExchange
{
    public byte[] Start() => Encoding.UTF8.GetBytes($"\0{user}\0{password}");

    public byte[]? Next(byte[] serverMessage) => null;
}

/// <summary>SCRAM client (RFC 5802), checking the server's signature so a server that does not know the password is caught.</summary>
public sealed class ScramClientExchange(ScramAlgorithm algorithm, string user, string password, string? clientNonce = null) : ISaslClientExchange
{
    private const string Gs2Header = "n,,";
    private readonly string _clientNonce = clientNonce ?? ScramAlgorithm.NewNonce();
    private string? _clientFirstBare;
    private byte[]? _expectedServerSignature;
    private int _stage;

    public byte[] Start()
    {
        _clientFirstBare = $"n={ScramAlgorithm.EscapeName(user)},r={_clientNonce}";
        return Encoding.UTF8.GetBytes(Gs2Header + _clientFirstBare);
    }

    public byte[]? Next(byte[] serverMessage)
    {
        var text = Encoding.UTF8.GetString(serverMessage);
        var attributes = ScramServerExchange.Attributes(text);
        if (attributes.TryGetValue("e", out var error))
        {
            throw new SaslAuthenticationException($"server refused the SCRAM exchange: {error}");
        }
        switch (_stage++)
        {
            case 0:
                if (!attributes.TryGetValue("r", out var nonce) || !nonce.StartsWith(_clientNonce, StringComparison.Ordinal) || nonce.Length == _clientNonce.Length
                    || !attributes.TryGetValue("s", out var saltText) || !attributes.TryGetValue("i", out var iterationText)
                    || !int.TryParse(iterationText, System.Globalization.CultureInfo.InvariantCulture, out var iterations))
                {
                    throw new SaslAuthenticationException("malformed SCRAM server-first message");
                }
                if (iterations < ScramAlgorithm.MinIterations)
                {
                    throw new SaslAuthenticationException($"server asked for {iterations} SCRAM iterations, fewer than {ScramAlgorithm.MinIterations}");
                }
                var salted = algorithm.SaltedPassword(password, Convert.FromBase64String(saltText), iterations);
                var clientKey = algorithm.Hmac(salted, "Client Key");
                var withoutProof = $"c={Convert.ToBase64String(Encoding.UTF8.GetBytes(Gs2Header))},r={nonce}";
                var authMessage = $"{_clientFirstBare},{text},{withoutProof}";
                var clientSignature = algorithm.Hmac(algorithm.Hash(clientKey), authMessage);
                _expectedServerSignature = algorithm.Hmac(algorithm.Hmac(salted, "Server Key"), authMessage);
                var proof = ScramAlgorithm.Xor(clientKey, clientSignature);
                return Encoding.UTF8.GetBytes($"{withoutProof},p={Convert.ToBase64String(proof)}");
            case 1:
                byte[] signature;
                try
                {
                    signature = Convert.FromBase64String(attributes.GetValueOrDefault("v", ""));
                }
                catch (FormatException)
                {
                    throw new SaslAuthenticationException("malformed SCRAM server-final message");
                }
                if (!CryptographicOperations.FixedTimeEquals(signature, _expectedServerSignature))
                {
                    throw new SaslAuthenticationException("the server's SCRAM signature is wrong (it does not know the credential)");
                }
                return null;
            default:
                throw new SaslAuthenticationException("unexpected SCRAM message after the exchange completed");
        }
    }
}

/// <summary>SASL authentication failed (the message names no secret).</summary>
public sealed class SaslAuthenticationException(string message) : Exception(message);
