using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Switchback.Proxy.Demo;

namespace Switchback.Soak;

/// <summary>One switch or rollback call to the admin API and what it answered.</summary>
public sealed record RouteChange(string Family, string Action, TimeSpan RequestedAt, TimeSpan AnsweredAt, int Status, string? WriteAfter, double? PauseMs, string Detail)
{
    public bool Succeeded => Status is >= 200 and < 300;
}

/// <summary>A fault injected into a mock cluster for a while.</summary>
public sealed record FaultWindow(string Kind, string Cluster, string Target, TimeSpan From, TimeSpan To);

/// <summary>Forced write switches of one family to the target cluster, each rolled back a fixed time later.</summary>
public sealed class SwitchDriver(Uri adminUri, string family, string toCluster, Stopwatch clock)
{
    private readonly Lock _gate = new();
    private readonly List<RouteChange> _changes = [];

    public IReadOnlyList<RouteChange> Changes
    {
        get
        {
            lock (_gate)
            {
                return [.. _changes];
            }
        }
    }

    /// <summary>The write cluster the admin API last confirmed, for labelling samples.</summary>
    public string CurrentWrite { get; private set; } = "source";

    public async Task RunAsync(TimeSpan first, TimeSpan every, TimeSpan holdFor, TimeSpan lastStart, CancellationToken stop)
    {
        using var http = new HttpClient { BaseAddress = adminUri, Timeout = TimeSpan.FromSeconds(90) };
        var at = first;
        try
        {
            while (at <= lastStart)
            {
                await DelayUntil(at, stop);
                await CallAsync(http, "switch", $$"""{"write":"{{toCluster}}","force":true,"timeoutMs":30000,"reason":"soak: forced write switch"}""");
                await DelayUntil(at + holdFor, stop);
                await CallAsync(http, "rollback", """{"reason":"soak: rollback","timeoutMs":30000}""");
                at += every;
            }
        }
        catch (OperationCanceledException)
        {
            // Never leave the family switched when the run stops mid-cycle.
            if (CurrentWrite != "source")
            {
                await CallAsync(http, "rollback", """{"reason":"soak: stopping","timeoutMs":30000}""");
            }
        }
    }

    private async Task DelayUntil(TimeSpan at, CancellationToken stop)
    {
        var wait = at - clock.Elapsed;
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, stop);
        }
    }

    private async Task CallAsync(HttpClient http, string action, string body)
    {
        var requestedAt = clock.Elapsed;
        int status;
        string text;
        try
        {
            using var response = await http.PostAsync($"v1/families/{family}/{action}", new StringContent(body, Encoding.UTF8, "application/json"));
            status = (int)response.StatusCode;
            text = await response.Content.ReadAsStringAsync();
        }
        catch (HttpRequestException e)
        {
            status = 0;
            text = e.Message;
        }
        catch (TaskCanceledException e)
        {
            status = 0;
            text = $"timed out: {e.Message}";
        }
        var answeredAt = clock.Elapsed;
        string? write = null;
        double? pause = null;
        var detail = text.Length > 160 ? text[..160] : text;
        try
        {
            using var json = JsonDocument.Parse(text);
            if (json.RootElement.TryGetProperty("write", out var w))
            {
                write = w.GetString();
            }
            if (json.RootElement.TryGetProperty("pauseMs", out var p))
            {
                pause = p.GetDouble();
            }
            if (json.RootElement.TryGetProperty("error", out var error))
            {
                detail = error.ToString();
            }
            else if (json.RootElement.TryGetProperty("epoch", out var epoch))
            {
                detail = $"epoch {epoch}";
            }
        }
        catch (JsonException)
        {
        }
        var change = new RouteChange(family, action, requestedAt, answeredAt, status, write, pause, detail);
        lock (_gate)
        {
            _changes.Add(change);
        }
        if (change.Succeeded && write is not null)
        {
            CurrentWrite = write;
        }
        Console.WriteLine($"[{clock.Elapsed:mm\\:ss}] {action} {family}: {status} pause {pause?.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) ?? "-"} ms, answered in {(answeredAt - requestedAt).TotalMilliseconds:0} ms ({detail})");
    }
}

/// <summary>Broker outages and RTT spikes on one mock cluster, alternating, each lasting a fixed time.</summary>
public sealed class FaultDriver(MockKafkaCluster cluster, string clusterName, Stopwatch clock)
{
    private readonly Lock _gate = new();
    private readonly List<FaultWindow> _faults = [];

    public IReadOnlyList<FaultWindow> Faults
    {
        get
        {
            lock (_gate)
            {
                return [.. _faults];
            }
        }
    }

    public string Active { get; private set; } = "";

    /// <summary>
    /// From <paramref name="first"/> on, every <paramref name="every"/>: one broker down (rotating) for
    /// <paramref name="length"/>, and half a period later a <paramref name="rttMs"/> ms RTT on every broker for as long.
    /// </summary>
    public async Task RunAsync(TimeSpan first, TimeSpan every, TimeSpan length, int rttMs, TimeSpan lastStart, CancellationToken stop)
    {
        var at = first;
        var cycle = 0;
        try
        {
            while (at <= lastStart)
            {
                var broker = cluster.BrokerIds[cycle % cluster.BrokerIds.Count];
                await Window(at, length, $"broker {broker} down", $"broker {broker}",
                    () => cluster.SetBrokerDown(broker), () => cluster.SetBrokerUp(broker), stop);
                var spikeAt = at + every / 2;
                if (spikeAt <= lastStart)
                {
                    await Window(spikeAt, length, $"rtt {rttMs} ms", "all brokers",
                        () => cluster.SetBrokerRtt(-1, rttMs), () => cluster.SetBrokerRtt(-1, 0), stop);
                }
                at += every;
                cycle++;
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task Window(TimeSpan at, TimeSpan length, string kind, string target, Action begin, Action end, CancellationToken stop)
    {
        var wait = at - clock.Elapsed;
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, stop);
        }
        var from = clock.Elapsed;
        begin();
        Active = kind;
        Console.WriteLine($"[{from:mm\\:ss}] fault on {clusterName}: {kind}");
        try
        {
            await Task.Delay(length, stop);
        }
        finally
        {
            // Always undo, even when the run is stopping, so the final check sees a healthy cluster.
            end();
            Active = "";
            lock (_gate)
            {
                _faults.Add(new FaultWindow(kind, clusterName, target, from, clock.Elapsed));
            }
        }
    }
}
