namespace Switchback.Protocol;

/// <summary>A tagged field this codec does not know, kept verbatim so decode-then-encode reproduces the frame.</summary>
public sealed record RawTaggedField(uint Tag, byte[] Data);
