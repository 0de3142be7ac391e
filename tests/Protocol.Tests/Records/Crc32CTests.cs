using System.Text;
using CsCheck;
using Switchback.Protocol.Records;

namespace Switchback.Protocol.Tests.Records;

public class Crc32CTests
{
    [Fact]
    public void Compute_CheckString_MatchesCastagnoliCheckValue() =>
        Assert.Equal(0xE3069283u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")));

    [Fact]
    public void Compute_Empty_IsZero() => Assert.Equal(0u, Crc32C.Compute([]));

    // RFC 3720 (iSCSI) appendix B.4 test vectors.
    [Fact]
    public void Compute_Rfc3720Vectors_Match()
    {
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
        Assert.Equal(0x113FDB5Cu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray()));
    }

    [Fact]
    public void Compute_RandomData_AgreesWithTableDrivenReference() =>
        Gen.Byte.Array[0, 300].Sample(data => Crc32C.Compute(data) == Crc32CReference.Compute(data));

    [Fact]
    public void Compute_LargeRandomData_AgreesWithTableDrivenReference() =>
        Gen.Int[0, 40_000].Sample(length =>
        {
            var data = new byte[length];
            new Random(length).NextBytes(data);
            return Crc32C.Compute(data) == Crc32CReference.Compute(data);
        }, iter: 300);

    [Theory]
    [InlineData(767)]
    [InlineData(768)]
    [InlineData(769)]
    [InlineData(12_287)]
    [InlineData(12_288)]
    [InlineData(13_056)]
    [InlineData(1 << 20)]
    public void Compute_InterleavedBlockBoundaries_AgreeWithTableDrivenReference(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        Assert.Equal(Crc32CReference.Compute(data), Crc32C.Compute(data));
    }

    [Fact]
    public void Update_SplitAnywhere_EqualsWholeCompute() =>
        Gen.Byte.Array[0, 200].SelectMany(d => Gen.Int[0, d.Length].Select(cut => (d, cut))).Sample(t =>
        {
            var (data, cut) = t;
            var state = Crc32C.Update(uint.MaxValue, data.AsSpan(0, cut));
            return ~Crc32C.Update(state, data.AsSpan(cut)) == Crc32C.Compute(data);
        });
}
