namespace Switchback.Protocol.Messages;

/// <summary>Versions in which a generated property is present, nullable and tagged (-1, -1 for none).</summary>
internal sealed record KafkaFieldSchema(
    string Property,
    short MinVersion,
    short MaxVersion,
    short NullableMinVersion,
    short NullableMaxVersion,
    short TaggedMinVersion,
    short TaggedMaxVersion,
    int Tag)
{
    public bool IsPresent(short version) => version >= MinVersion && version <= MaxVersion;
    public bool IsNullable(short version) => version >= NullableMinVersion && version <= NullableMaxVersion;
    public bool IsTagged(short version) => version >= TaggedMinVersion && version <= TaggedMaxVersion;
}
