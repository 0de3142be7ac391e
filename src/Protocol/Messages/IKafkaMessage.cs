namespace Switchback.Protocol;

/// <summary>A typed Kafka request or response body (without header), generated from a .kmsg definition.</summary>
public interface IKafkaMessage
{
    /// <summary>The api key this message belongs to.</summary>
    ApiKey ApiKey { get; }

    /// <summary>Lowest version this definition can read and write.</summary>
    short LowestVersion { get; }

    /// <summary>Highest version this definition can read and write.</summary>
    short HighestVersion { get; }

    /// <summary>Replaces every field with the values read at <paramref name="version"/>; throws <see cref="KafkaProtocolException"/> on bad input or an unsupported version.</summary>
    void Read(ref KafkaReader reader, short version);

    /// <summary>Exact number of bytes <see cref="Write"/> produces at <paramref name="version"/>.</summary>
    int Size(short version);

    /// <summary>Writes the body at <paramref name="version"/>; the writer must have <see cref="Size"/> bytes left.</summary>
    void Write(ref KafkaWriter writer, short version);
}
