using Microsoft.Extensions.Logging;
using Switchback.Protocol;
using Switchback.Protocol.Messages;
using Switchback.Proxy.Upstream;

namespace Switchback.Proxy.Security;

/// <summary>
/// SASL terminated at the proxy for one client connection: SaslHandshake v1 then SaslAuthenticate v0-2 frames
/// carrying the mechanism's tokens, or SaslHandshake v0 then the tokens as raw size-prefixed frames without a
/// Kafka header (what clients built on librdkafka before 2.x and older Java clients do; librdkafka also requires
/// v0 to be advertised before it uses SASL at all). Until authentication succeeds only ApiVersions and these two
/// APIs are accepted; anything else closes the connection, as a broker does.
/// </summary>
public sealed partial class SaslAuthenticator(SaslServerConfig config, ILogger logger, string connectionId)
{
    /// <summary>Versions offered in ApiVersions while SASL is enabled.</summary>
    public static readonly (short Min, short Max) HandshakeVersions = (0, 1);
    public static readonly (short Min, short Max) AuthenticateVersions = (0, 2);

    /// <summary>The SASL APIs' versions for ApiVersions: offered only when the listener terminates SASL.</summary>
    public static (short Min, short Max)? AdvertisedVersions(Configuration.ProxyConfig config, ApiKey apiKey) =>
        config.ListenerSecurity.Sasl is null ? null : apiKey switch
        {
            ApiKey.SaslHandshake => HandshakeVersions,
            ApiKey.SaslAuthenticate => AuthenticateVersions,
            _ => null,
        };

    /// <summary>Largest frame accepted before authentication (Kafka's default <c>sasl.server.max.receive.size</c>).</summary>
    public const int MaxFrameBytes = 512 * 1024;

    private State _state = State.AwaitingHandshake;
    private string? _mechanism;
    private ISaslServerExchange? _exchange;
    private bool _rawTokens;

    private enum State { AwaitingHandshake, AwaitingAuthenticate, Authenticated, Failed }

    public bool IsAuthenticated => _state == State.Authenticated;

    /// <summary>True after a v0 handshake, while the next frame is a raw SASL token rather than a Kafka request.</summary>
    public bool ExpectsRawToken => _rawTokens && _state == State.AwaitingAuthenticate;

    /// <summary>The authenticated principal (<c>User:name</c>), or null before authentication.</summary>
    public string? Principal { get; private set; }

    /// <summary>Requests a connection may send before it has authenticated.</summary>
    public static bool AllowedBeforeAuthentication(ApiKey apiKey) =>
        apiKey is ApiKey.ApiVersions or ApiKey.SaslHandshake or ApiKey.SaslAuthenticate;

    /// <summary>Answers a SaslHandshake or SaslAuthenticate request (the frame is not disposed here).</summary>
    public PooledFrame Handle(PooledFrame frame, ApiKey apiKey, short version)
    {
        var range = apiKey == ApiKey.SaslHandshake ? HandshakeVersions : AuthenticateVersions;
        if (version < range.Min || version > range.Max)
        {
            throw new KafkaProtocolException($"Unsupported version {version} of {apiKey} (offered {range.Min}-{range.Max}).");
        }
        if (_state == State.Failed)
        {
            throw new KafkaProtocolException("request after failed SASL authentication.");
        }
        var bodyOffset = FrameCodec.RequestBodyOffset(frame.Memory, apiKey, version, out var header);
        var body = frame.Memory[bodyOffset..];
        return apiKey == ApiKey.SaslHandshake
            ? FrameCodec.EncodeResponse(apiKey, version, header.CorrelationId, Handshake(FrameCodec.DecodeBody<SaslHandshakeRequest>(body, version), version))
            : FrameCodec.EncodeResponse(apiKey, version, header.CorrelationId, Authenticate(FrameCodec.DecodeBody<SaslAuthenticateRequest>(body, version)));
    }

    /// <summary>Answers a raw token sent after a v0 handshake with the raw answer token (a failure closes the connection, as in Kafka).</summary>
    public PooledFrame HandleRawToken(PooledFrame frame)
    {
        var step = Step(frame.Span.ToArray());
        if (step.Failure is not null)
        {
            throw new KafkaProtocolException($"SASL {_mechanism} authentication failed.");
        }
        return PooledFrame.CopyOf(step.Response);
    }

    private SaslHandshakeResponse Handshake(SaslHandshakeRequest request, short version)
    {
        var response = new SaslHandshakeResponse { Mechanisms = [.. config.Mechanisms] };
        if (_state != State.AwaitingHandshake)
        {
            response.ErrorCode = (short)ErrorCode.IllegalSaslState;
            return response;
        }
        if (!config.Mechanisms.Contains(request.Mechanism, StringComparer.Ordinal))
        {
            LogUnsupportedMechanism(logger, connectionId, request.Mechanism);
            response.ErrorCode = (short)ErrorCode.UnsupportedSaslMechanism;
            return response;
        }
        _mechanism = request.Mechanism;
        _exchange = ISaslServerExchange.Create(request.Mechanism, config.Credentials);
        _state = State.AwaitingAuthenticate;
        _rawTokens = version == 0;
        return response;
    }

    private SaslAuthenticateResponse Authenticate(SaslAuthenticateRequest request)
    {
        if (_state != State.AwaitingAuthenticate || _exchange is null)
        {
            return new SaslAuthenticateResponse
            {
                ErrorCode = (short)ErrorCode.IllegalSaslState,
                ErrorMessage = _state == State.Authenticated
                    ? "Already authenticated; re-authentication is not supported."
                    : "SaslAuthenticate before a successful SaslHandshake.",
            };
        }
        var step = Step(request.AuthBytes.ToArray());
        if (step.Failure is not null)
        {
            return new SaslAuthenticateResponse
            {
                ErrorCode = (short)ErrorCode.SaslAuthenticationFailed,
                // The same words whatever went wrong, as Kafka does, so a client cannot probe for user names.
                ErrorMessage = $"Authentication failed during authentication due to invalid credentials with SASL mechanism {_mechanism}",
            };
        }
        return new SaslAuthenticateResponse { AuthBytes = step.Response };
    }

    private SaslStep Step(byte[] token)
    {
        var step = _exchange!.Step(token);
        if (step.Failure is { } failure)
        {
            _state = State.Failed;
            _exchange = null;
            LogFailed(logger, connectionId, _mechanism!, step.AuthenticatedUser ?? "(unknown)", failure);
        }
        else if (step.Completed)
        {
            _state = State.Authenticated;
            Principal = $"User:{step.AuthenticatedUser}";
            _exchange = null;
            LogAuthenticated(logger, connectionId, Principal, _mechanism!);
        }
        return step;
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Client connection {ConnectionId} authenticated as {Principal} with {Mechanism}")]
    private static partial void LogAuthenticated(ILogger logger, string connectionId, string principal, string mechanism);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Client connection {ConnectionId}: SASL {Mechanism} authentication failed for user {User}: {Reason}")]
    private static partial void LogFailed(ILogger logger, string connectionId, string mechanism, string user, string reason);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Client connection {ConnectionId} asked for SASL mechanism {Mechanism}, which is not enabled")]
    private static partial void LogUnsupportedMechanism(ILogger logger, string connectionId, string mechanism);
}
