using Switchback.Protocol.Tests.Captures;

namespace Switchback.Proxy.Tests.Fuzzing.Harness;

/// <summary>The request frames of every captured client connection, in the order the client sent them.</summary>
public static class CaptureConversations
{
    public static IReadOnlyList<IReadOnlyList<byte[]>> Load() =>
    [
        .. CaptureFile.LoadAll()
            .Where(f => f.Direction == CaptureDirection.Request)
            .GroupBy(f => (f.Client, f.Connection))
            .Select(g => (IReadOnlyList<byte[]>)[.. g.Select(f => f.Bytes)]),
    ];
}
