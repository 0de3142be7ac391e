using System.Reflection;
using Switchback.Protocol.Messages;

namespace Switchback.Protocol.Tests.Messages;

/// <summary>Every (api, request or response, version) the definitions support.</summary>
public static class MessageCases
{
    public static TheoryData<ApiKey, bool, short> All()
    {
        var data = new TheoryData<ApiKey, bool, short>();
        foreach (var api in KafkaApis.Defined)
        {
            for (var version = KafkaApis.LowestVersion(api); version <= KafkaApis.HighestVersion(api); version++)
            {
                data.Add(api, true, version);
                data.Add(api, false, version);
            }
        }
        return data;
    }

    public static IKafkaMessage Create(ApiKey api, bool request) =>
        (request ? KafkaMessages.CreateRequest(api) : KafkaMessages.CreateResponse(api))
        ?? throw new InvalidOperationException($"No definition for {api}.");

    /// <summary>A stable seed per case so a failure reproduces run after run.</summary>
    public static int Seed(ApiKey api, bool request, short version) => ((int)api * 100 + version) * 2 + (request ? 1 : 0);

    public static bool HasFields(object message, short version)
    {
        var schema = (KafkaFieldSchema[])message.GetType().GetField("FieldSchema", BindingFlags.NonPublic | BindingFlags.Static)!.GetValue(null)!;
        foreach (var field in schema)
        {
            if (field.IsPresent(version))
            {
                return true;
            }
        }
        return false;
    }
}
