using System.Text;
using Switchback.Proxy.Security;
using Xunit;

namespace Switchback.Proxy.Tests.Security;

// No SASL-capable Kafka broker runs on these machines, so the client and server halves are checked against
// each other and against the RFC 7677 test vector; the end-to-end tests put librdkafka in front of the server half.
public sealed class ScramExchangeTests
{
    private static CredentialStore Store(params string[] mechanisms) => new(
        new Dictionary<string, string> { ["alice"] = "alice-secret", ["we,ird=name"] = "p\u00e4ss" },
        new Dictionary<(string, string), ScramCredential>(),
        mechanisms);

    [Fact]
    public void ScramClient_MatchesRfc7677TestVector()
    {
        var client = new ScramClientExchange(ScramAlgorithm.Sha256, "user", "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO");
        Assert.Equal("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", Encoding.UTF8.GetString(client.Start()));
        var final = client.Next(Encoding.UTF8.GetBytes("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
        Assert.Equal("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", Encoding.UTF8.GetString(final!));
        Assert.Null(client.Next(Encoding.UTF8.GetBytes("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")));
    }

    [Theory]
    [InlineData(SaslMechanisms.ScramSha256, "alice", "alice-secret")]
    [InlineData(SaslMechanisms.ScramSha512, "alice", "alice-secret")]
    [InlineData(SaslMechanisms.ScramSha512, "we,ird=name", "p\u00e4ss")]
    [InlineData(SaslMechanisms.Plain, "alice", "alice-secret")]
    public void ClientAndServer_AgreeOnRightPassword(string mechanism, string user, string password)
    {
        var (authenticated, failure) = Run(mechanism, Store(SaslMechanisms.Supported.ToArray()), user, password);
        Assert.Null(failure);
        Assert.Equal(user, authenticated);
    }

    [Theory]
    [InlineData(SaslMechanisms.ScramSha256, "alice", "wrong")]
    [InlineData(SaslMechanisms.ScramSha512, "mallory", "alice-secret")]
    [InlineData(SaslMechanisms.Plain, "alice", "wrong")]
    [InlineData(SaslMechanisms.Plain, "mallory", "x")]
    public void Server_RefusesWrongPasswordOrUnknownUser(string mechanism, string user, string password)
    {
        var (authenticated, failure) = Run(mechanism, Store(SaslMechanisms.Supported.ToArray()), user, password);
        Assert.Null(authenticated);
        Assert.Equal("invalid credentials", failure);
    }

    [Fact]
    public void Server_RefusesTamperedProof()
    {
        var server = ISaslServerExchange.Create(SaslMechanisms.ScramSha256, Store(SaslMechanisms.ScramSha256));
        var client = new ScramClientExchange(ScramAlgorithm.Sha256, "alice", "alice-secret");
        var first = server.Step(client.Start());
        var final = Encoding.UTF8.GetString(client.Next(first.Response)!);
        var tampered = final[..^4] + (final[^4] == 'A' ? 'B' : 'A') + final[^3..];
        Assert.NotNull(server.Step(Encoding.UTF8.GetBytes(tampered)).Failure);
    }

    [Fact]
    public void Server_AcceptsTheNonceFormOfOlderLibrdkafka_AndNoOther()
    {
        foreach (var (prefix, accepted) in new[] { ("", true), ("CLIENTNONCE", true), ("other", false) })
        {
            var store = Store(SaslMechanisms.ScramSha256);
            var server = ISaslServerExchange.Create(SaslMechanisms.ScramSha256, store);
            var serverFirst = Encoding.UTF8.GetString(server.Step(Encoding.UTF8.GetBytes("n,,n=alice,r=CLIENTNONCE")).Response);
            var combined = ScramServerExchange.Attributes(serverFirst)["r"];
            var salted = ScramAlgorithm.Sha256.SaltedPassword("alice-secret", Convert.FromBase64String(ScramServerExchange.Attributes(serverFirst)["s"]), 4096);
            var clientKey = ScramAlgorithm.Sha256.Hmac(salted, "Client Key");
            var withoutProof = $"c=biws,r={prefix}{combined}";
            var signature = ScramAlgorithm.Sha256.Hmac(ScramAlgorithm.Sha256.Hash(clientKey), $"n=alice,r=CLIENTNONCE,{serverFirst},{withoutProof}");
            var proof = Convert.ToBase64String(ScramAlgorithm.Xor(clientKey, signature));
            var step = server.Step(Encoding.UTF8.GetBytes($"{withoutProof},p={proof}"));
            Assert.Equal(accepted, step.Failure is null);
        }
    }

    [Fact]
    public void Client_RefusesServerThatDoesNotKnowTheCredential()
    {
        var client = new ScramClientExchange(ScramAlgorithm.Sha256, "alice", "alice-secret");
        var server = ISaslServerExchange.Create(SaslMechanisms.ScramSha256, Store(SaslMechanisms.ScramSha256));
        var first = server.Step(client.Start());
        client.Next(first.Response);
        Assert.Throws<SaslAuthenticationException>(() => client.Next(Encoding.UTF8.GetBytes("v=" + Convert.ToBase64String(new byte[32]))));
    }

    [Fact]
    public void PrecomputedCredential_FormatsAndParses_AndAuthenticatesWithoutThePassword()
    {
        var credential = ScramAlgorithm.Sha512.CreateCredential("carol-secret", Encoding.UTF8.GetBytes("0123456789abcdef"), 8192);
        var parsed = ScramCredential.Parse(credential.Format(), ScramAlgorithm.Sha512, out var problem);
        Assert.Null(problem);
        var store = new CredentialStore(new Dictionary<string, string>(),
            new Dictionary<(string, string), ScramCredential> { [(SaslMechanisms.ScramSha512, "carol")] = parsed! },
            [SaslMechanisms.ScramSha512]);
        Assert.Equal("carol", Run(SaslMechanisms.ScramSha512, store, "carol", "carol-secret").User);
        Assert.Null(Run(SaslMechanisms.ScramSha512, store, "carol", "nope").User);
        // PLAIN can be checked against the SCRAM credential too.
        Assert.True(store.VerifyPlain("carol", "carol-secret"));
        Assert.False(store.VerifyPlain("carol", "nope"));
        Assert.DoesNotContain("carol-secret", credential.Format(), StringComparison.Ordinal);
    }

    [Fact]
    public void ParseCredential_RejectsTooFewIterations()
    {
        var weak = ScramAlgorithm.Sha256.CreateCredential("x", [1, 2, 3], 1000);
        Assert.Null(ScramCredential.Parse(weak.Format(), ScramAlgorithm.Sha256, out var problem));
        Assert.Contains("4096", problem, StringComparison.Ordinal);
    }

    private static (string? User, string? Failure) Run(string mechanism, CredentialStore store, string user, string password)
    {
        var server = ISaslServerExchange.Create(mechanism, store);
        var client = ISaslClientExchange.Create(new UpstreamSaslConfig(mechanism, user, password));
        var message = client.Start();
        while (true)
        {
            var step = server.Step(message);
            if (step.Failure is { } failure)
            {
                return (null, failure);
            }
            var next = client.Next(step.Response);
            if (step.Completed)
            {
                Assert.Null(next);
                return (step.AuthenticatedUser, null);
            }
            message = next!;
        }
    }
}
