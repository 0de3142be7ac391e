using System.Buffers.Binary;
using Xunit;

namespace Switchback.Protocol.Tests.Captures;

public sealed class CaptureFileTests
{
    [Fact]
    public void Captures_ExistForAllFourClients_WithRequestsAndResponsesThatPairUp()
    {
        foreach (var client in CaptureFile.Clients)
        {
            Assert.True(File.Exists(CaptureFile.PathFor(client)), $"missing capture {CaptureFile.PathFor(client)}");
            var frames = CaptureFile.Load(client).ToList();

            Assert.All(frames, f => Assert.Equal(client, f.Client));
            Assert.Contains(frames, f => f.Direction == CaptureDirection.Request);
            Assert.Contains(frames, f => f.Direction == CaptureDirection.Response);
            // Every client negotiates, looks up metadata and produces.
            Assert.Contains(frames, f => f.ApiKey == 18 && f.Direction == CaptureDirection.Response);
            Assert.Contains(frames, f => f.ApiKey == 3 && f.Direction == CaptureDirection.Response);
            Assert.Contains(frames, f => f.ApiKey == 0 && f.Direction == CaptureDirection.Response);

            // The record's header fields are the frame's own header fields.
            Assert.All(frames.Where(f => f.Direction == CaptureDirection.Request), f =>
            {
                Assert.Equal(f.ApiKey, BinaryPrimitives.ReadInt16BigEndian(f.Bytes));
                Assert.Equal(f.ApiVersion, BinaryPrimitives.ReadInt16BigEndian(f.Bytes.AsSpan(2)));
                Assert.Equal(f.CorrelationId, BinaryPrimitives.ReadInt32BigEndian(f.Bytes.AsSpan(4)));
            });
            Assert.All(frames.Where(f => f.Direction == CaptureDirection.Response), f =>
                Assert.Equal(f.CorrelationId, BinaryPrimitives.ReadInt32BigEndian(f.Bytes)));
            Assert.All(CaptureFile.Exchanges(client).Where(e => e.Response is not null), e =>
                Assert.Equal((e.Request.ApiKey, e.Request.ApiVersion), (e.Response!.ApiKey, e.Response.ApiVersion)));
        }
    }
}
