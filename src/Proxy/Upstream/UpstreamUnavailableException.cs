namespace Switchback.Proxy.Upstream;

/// <summary>An upstream broker could not be reached or dropped the connection; callers answer with a retriable error.</summary>
public sealed class UpstreamUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
