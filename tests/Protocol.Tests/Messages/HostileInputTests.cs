using Switchback.Protocol.Messages;

namespace Switchback.Protocol.Tests.Messages;

/// <summary>Malformed frames may only ever produce <see cref="KafkaProtocolException"/> (or decode successfully).</summary>
public sealed class HostileInputTests
{
    private const int MutationsPerCase = 60;
    private const int RandomFramesPerCase = 20;

    public static TheoryData<ApiKey, bool, short> Cases() => MessageCases.All();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Read_OfMutatedOrRandomBytes_OnlyThrowsProtocolException(ApiKey api, bool request, short version)
    {
        var random = new Random(MessageCases.Seed(api, request, version));
        var flexible = KafkaApis.IsFlexible(api, version);
        var valid = new RandomMessageBuilder(random.Next())
            .Populate(MessageCases.Create(api, request), version, flexible)
            .ToArray(version);

        for (var i = 0; i < MutationsPerCase; i++)
        {
            AssertOnlyProtocolErrors(api, request, version, Mutate(valid, random));
        }
        for (var i = 0; i < RandomFramesPerCase; i++)
        {
            var bytes = new byte[random.Next(0, 64)];
            random.NextBytes(bytes);
            AssertOnlyProtocolErrors(api, request, version, bytes);
        }
    }

    private static void AssertOnlyProtocolErrors(ApiKey api, bool request, short version, byte[] frame)
    {
        var message = MessageCases.Create(api, request);
        try
        {
            var reader = new KafkaReader(new ReadOnlyMemory<byte>(frame));
            message.Read(ref reader, version);
        }
        catch (KafkaProtocolException)
        {
            return;
        }
        // Whatever decoded must also encode: the decoder never leaves a non-nullable field null.
        _ = message.ToArray(version);
    }

    private static byte[] Mutate(byte[] valid, Random random)
    {
        if (valid.Length == 0)
        {
            return [(byte)random.Next(256)];
        }
        var bytes = (byte[])valid.Clone();
        switch (random.Next(5))
        {
            case 0:
                for (var flips = random.Next(1, 4); flips > 0; flips--)
                {
                    bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                }
                return bytes;
            case 1:
                return bytes[..random.Next(bytes.Length)];
            case 2:
                {
                    // A length or count field pushed to a huge value (int32 or varint form).
                    var at = random.Next(bytes.Length);
                    ReadOnlySpan<byte> huge = random.Next(2) == 0 ? [0x7F, 0xFF, 0xFF, 0xFF] : [0xFF, 0xFF, 0xFF, 0xFF, 0x07];
                    for (var i = 0; i < huge.Length && at + i < bytes.Length; i++)
                    {
                        bytes[at + i] = huge[i];
                    }
                    return bytes;
                }
            case 3:
                {
                    var at = random.Next(bytes.Length);
                    bytes[at] = random.Next(2) == 0 ? (byte)0xFF : (byte)0x80;
                    return bytes;
                }
            default:
                {
                    var extended = new byte[bytes.Length + random.Next(1, 8)];
                    bytes.CopyTo(extended, 0);
                    random.NextBytes(extended.AsSpan(bytes.Length));
                    return extended;
                }
        }
    }
}
