using Switchback.Protocol.Messages;

namespace Switchback.Protocol.Tests.Messages;

public sealed class MessageRoundTripTests
{
    private const int SamplesPerCase = 6;

    public static TheoryData<ApiKey, bool, short> Cases() => MessageCases.All();

    [Theory]
    [MemberData(nameof(Cases))]
    public void WriteReadWrite_ReproducesIdenticalBytes(ApiKey api, bool request, short version)
    {
        var flexible = KafkaApis.IsFlexible(api, version);
        var defaultBytes = MessageCases.Create(api, request).ToArray(version);
        var changed = false;
        for (var sample = 0; sample < SamplesPerCase; sample++)
        {
            var original = MessageCases.Create(api, request);
            if (sample > 0)
            {
                // Sample 0 stays all-default: the smallest encoding of each version.
                new RandomMessageBuilder(MessageCases.Seed(api, request, version) + sample).Populate(original, version, flexible);
            }

            var first = original.ToArray(version);
            Assert.Equal(first.Length, original.Size(version));

            var decoded = MessageCases.Create(api, request);
            var reader = new KafkaReader(new ReadOnlyMemory<byte>(first));
            decoded.Read(ref reader, version);
            Assert.Equal(first.Length, reader.Position);

            var second = decoded.ToArray(version);
            Assert.Equal(first, second);
            changed |= !first.AsSpan().SequenceEqual(defaultBytes);
        }
        // Guards the test itself: random population must reach the wire whenever the version has fields.
        if (MessageCases.HasFields(MessageCases.Create(api, request), version))
        {
            Assert.True(changed, "Random population never changed the encoding.");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Read_OfUnsupportedVersion_ThrowsProtocolException(ApiKey api, bool request, short version)
    {
        var message = MessageCases.Create(api, request);
        if (version != message.LowestVersion)
        {
            return;
        }
        Assert.Throws<KafkaProtocolException>(() =>
        {
            var reader = new KafkaReader(new ReadOnlyMemory<byte>(new byte[64]));
            message.Read(ref reader, (short)(message.HighestVersion + 1));
        });
        Assert.Throws<KafkaProtocolException>(() =>
        {
            var reader = new KafkaReader(new ReadOnlyMemory<byte>(new byte[64]));
            message.Read(ref reader, -1);
        });
    }
}
