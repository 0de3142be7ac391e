namespace Switchback.Proxy.Listening;

/// <summary>A virtual broker's port could not be bound at start-up; the message names the port and the setting to change.</summary>
public sealed class BrokerPortException(string message) : Exception(message);
