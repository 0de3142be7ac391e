using System.Globalization;

namespace Switchback.Bench.Upstream;

/// <summary>Command line of the upstream process.</summary>
public sealed record UpstreamOptions
{
    public const string Usage = """
        usage: Switchback.Bench.Upstream [--clusters 1] [--brokers 3] [--partitions 12] [--topic NAME]...
                                         [--prefill-topic NAME --prefill-mb-per-partition 4] [--record-bytes 1024]
                                         [--advertise host:port,host:port,...]
          --advertise makes broker i (1-based, in order) advertise the i-th address, e.g. a TCP relay's frontend.
        """;

    public int Clusters { get; init; } = 1;
    public int Brokers { get; init; } = 3;
    public int Partitions { get; init; } = 12;
    public List<string> Topics { get; init; } = [];
    public string? PrefillTopic { get; init; }
    public long PrefillBytesPerPartition { get; init; }
    public int RecordBytes { get; init; } = 1024;
    public List<(string Host, int Port)> Advertise { get; init; } = [];

    public static UpstreamOptions Parse(string[] args)
    {
        var clusters = 1;
        var brokers = 3;
        var partitions = 12;
        var topics = new List<string>();
        string? prefillTopic = null;
        double prefillMb = 0;
        var recordBytes = 1024;
        var advertise = new List<(string, int)>();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--clusters": clusters = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--brokers": brokers = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--partitions": partitions = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--topic": topics.Add(Next()); break;
                case "--prefill-topic": prefillTopic = Next(); break;
                case "--prefill-mb-per-partition": prefillMb = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--record-bytes": recordBytes = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--advertise":
                    foreach (var address in Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        var colon = address.LastIndexOf(':');
                        if (colon <= 0 || !int.TryParse(address[(colon + 1)..], CultureInfo.InvariantCulture, out var port))
                        {
                            throw new ArgumentException($"'{address}' is not host:port");
                        }
                        advertise.Add((address[..colon], port));
                    }
                    break;
                default: throw new ArgumentException($"unknown option '{args[i]}'");
            }
        }
        if (prefillTopic is not null && !topics.Contains(prefillTopic))
        {
            topics.Add(prefillTopic);
        }
        if (advertise.Count > 0 && clusters != 1)
        {
            throw new ArgumentException("--advertise needs exactly one cluster (every cluster would advertise the same ports)");
        }
        return new UpstreamOptions
        {
            Clusters = clusters,
            Brokers = brokers,
            Partitions = partitions,
            Topics = topics,
            PrefillTopic = prefillTopic,
            PrefillBytesPerPartition = (long)(prefillMb * 1024 * 1024),
            RecordBytes = recordBytes,
            Advertise = advertise,
        };
    }
}
