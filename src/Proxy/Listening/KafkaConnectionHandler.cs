using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Switchback.Proxy.VirtualCluster;

namespace Switchback.Proxy.Listening;

/// <summary>Kestrel hands every accepted client connection of the Kafka listener to a new <see cref="ClientSession"/>.</summary>
public sealed class KafkaConnectionHandler(ProxyState state, ILogger<KafkaConnectionHandler> logger) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var tls = await Security.ClientTls.SecureAsync(connection, state.Config.ListenerSecurity.Tls, logger).ConfigureAwait(false);
        if (tls is null)
        {
            return;
        }
        await using (tls.ConfigureAwait(false))
        {
            await new ClientSession(connection, state, logger, state.BootstrapNodeId).RunAsync().ConfigureAwait(false);
        }
    }
}
