using Microsoft.Extensions.Logging;
using Switchback.Proxy.Configuration;

namespace Switchback.Proxy.Translation;

/// <summary>
/// Each family's translator, by its <c>OffsetTranslation</c>. MirrorMaker 2 families get their offset-sync and checkpoint
/// stores started at once, so that they have followed the topics (and kept their syncs) long before a switch asks.
/// </summary>
public sealed class OffsetTranslators : IDisposable
{
    private readonly Dictionary<string, IOffsetTranslator> _byFamily = new(StringComparer.Ordinal);
    private readonly List<IDisposable> _owned = [];

    public OffsetTranslators(ProxyConfig config, ILogger logger)
    {
        TimestampTranslator? timestamps = null;
        foreach (var family in config.Families)
        {
            var translation = family.Translation;
            switch (translation.Strategy)
            {
                case TranslationStrategy.MirrorMaker2:
                    var syncs = new OffsetSyncStore(config.Cluster(translation.OffsetSyncs!.Cluster), translation.OffsetSyncs.Topic, family.Name, logger);
                    var checkpoints = new CheckpointStore(config.Cluster(translation.Checkpoints!.Cluster), translation.Checkpoints.Topic, family.Name, logger);
                    _owned.Add(syncs);
                    _owned.Add(checkpoints);
                    syncs.Start();
                    checkpoints.Start();
                    _byFamily[family.Name] = new MirrorMakerTranslator(translation, syncs, checkpoints);
                    break;
                case TranslationStrategy.Timestamp:
                    _byFamily[family.Name] = timestamps ??= new TimestampTranslator(config.Cluster);
                    break;
            }
        }
    }

    /// <summary>The family's translator (identity when it configures none).</summary>
    public IOffsetTranslator For(string family) => _byFamily.GetValueOrDefault(family) ?? IdentityTranslator.Instance;

    public void Dispose()
    {
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }
    }
}
