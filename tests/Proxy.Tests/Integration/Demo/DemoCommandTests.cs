using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Xunit;

namespace Switchback.Proxy.Tests.Integration.Demo;

/// <summary><c>switchback demo</c> as an operator runs it: the built executable, a child process, nothing else set up.</summary>
public sealed partial class DemoCommandTests
{
    [Fact]
    public async Task DemoCommand_WithPortsFromCommandLine_PrintsBootstrap_AndServesProduceAndConsume()
    {
        var executable = Path.Combine(AppContext.BaseDirectory, "switchback.dll");
        Assert.True(File.Exists(executable), $"{executable} is missing from the test output.");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-itest-demo-{Guid.NewGuid():N}");
        foreach (var argument in new[]
        {
            executable, "demo", "--Switchback:Listener:Bind=127.0.0.1:0", "--Switchback:Admin:Bind=127.0.0.1:0",
            $"--Switchback:StateDirectory={stateDirectory}",
        })
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start switchback demo.");
        var printed = new List<string>();
        var errors = process.StandardError.ReadToEndAsync();
        try
        {
            var bootstrap = await ReadBootstrapAsync(process, printed).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(bootstrap is not null,
                $"the demo printed no bootstrap address (exited: {process.HasExited}):\n{string.Join('\n', printed)}");
            Assert.DoesNotMatch(":9092$", bootstrap);

            var topic = "orders.events";
            var value = $"demo-{Guid.NewGuid():N}";
            using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrap, Acks = Acks.All, MessageTimeoutMs = 15_000 }).Build())
            {
                var delivered = await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = value }).WaitAsync(TimeSpan.FromSeconds(20));
                Assert.Equal(PersistenceStatus.Persisted, delivered.Status);
            }

            var config = new ConsumerConfig
            {
                BootstrapServers = bootstrap,
                GroupId = $"orders-{Guid.NewGuid():N}",
                AutoOffsetReset = AutoOffsetReset.Earliest,
                SessionTimeoutMs = 6000,
                FetchWaitMaxMs = 100,
            };
            using var consumer = new ConsumerBuilder<string, string>(config).Build();
            consumer.Subscribe(topic);
            string? received = null;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (received != value && DateTime.UtcNow < deadline)
            {
                received = consumer.Consume(TimeSpan.FromMilliseconds(200))?.Message?.Value ?? received;
            }
            consumer.Close();
            Assert.Equal(value, received);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            await process.WaitForExitAsync();
            _ = await errors;
            if (Directory.Exists(stateDirectory))
            {
                Directory.Delete(stateDirectory, recursive: true);
            }
        }
    }

    /// <summary>
    /// The README's walk-through on the demo: records produced to orders are replicated to target, so the scorecard's
    /// data-parity gate turns green and a switch passes its gates unforced; a rollback after writes on target leaves
    /// nothing behind (the window's mirror copied them back).
    /// </summary>
    [Fact]
    public async Task DemoCommand_WalkThrough_DataParityGreen_UnforcedSwitch_RollbackLeavesNothingBehind()
    {
        var executable = Path.Combine(AppContext.BaseDirectory, "switchback.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"switchback-itest-demo-{Guid.NewGuid():N}");
        foreach (var argument in new[]
        {
            executable, "demo", "--Switchback:Listener:Bind=127.0.0.1:0", "--Switchback:Admin:Bind=127.0.0.1:0",
            $"--Switchback:StateDirectory={stateDirectory}", "--Switchback:Scorecard:IntervalSeconds=1",
        })
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start switchback demo.");
        var printed = new List<string>();
        var errors = process.StandardError.ReadToEndAsync();
        try
        {
            var bootstrap = await ReadLineAsync(process, printed, BootstrapLine(), drainAfter: false).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(bootstrap is not null, $"the demo printed no bootstrap address:\n{string.Join('\n', printed)}");
            var admin = await ReadLineAsync(process, printed, AdminLine(), drainAfter: true).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(admin is not null, $"the demo printed no admin address:\n{string.Join('\n', printed)}");
            using var http = new HttpClient { BaseAddress = new Uri(admin + "/"), Timeout = TimeSpan.FromSeconds(60) };

            await ProduceAsync(bootstrap, 50);
            await UntilAsync(async () => await GateAsync(http, "data-parity") == "green", "the data-parity gate to turn green");

            var switched = await http.PostAsync("v1/families/orders/switch", Json("{\"write\":\"target\",\"read\":\"target\",\"reason\":\"walk-through\"}"));
            var switchedBody = await switched.Content.ReadAsStringAsync();
            Assert.True(switched.IsSuccessStatusCode, $"unforced switch: {(int)switched.StatusCode} {switchedBody}");

            await ProduceAsync(bootstrap, 50);
            var rolledBack = await http.PostAsync("v1/families/orders/rollback", Json("{\"reason\":\"walk-through\"}"));
            var body = await rolledBack.Content.ReadAsStringAsync();
            Assert.True(rolledBack.IsSuccessStatusCode, $"rollback: {(int)rolledBack.StatusCode} {body}");
            using var answer = JsonDocument.Parse(body);
            Assert.Equal(0, answer.RootElement.GetProperty("details").GetProperty("leftBehind").GetProperty("records").GetInt64());
            Assert.Equal("source", answer.RootElement.GetProperty("write").GetString());
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            await process.WaitForExitAsync();
            _ = await errors;
            if (Directory.Exists(stateDirectory))
            {
                Directory.Delete(stateDirectory, recursive: true);
            }
        }
    }

    private static StringContent Json(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    private static async Task<string?> GateAsync(HttpClient http, string gate)
    {
        using var card = JsonDocument.Parse(await http.GetStringAsync("v1/families/orders/scorecard?refresh=true"));
        return card.RootElement.GetProperty("gates").EnumerateArray().First(g => g.GetProperty("gate").GetString() == gate).GetProperty("status").GetString();
    }

    private static async Task ProduceAsync(string bootstrap, int count)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrap, EnableIdempotence = true, MessageTimeoutMs = 30_000 }).Build();
        for (var i = 0; i < count; i++)
        {
            producer.Produce("orders.events", new Message<string, string> { Key = $"k{i % 6}", Value = $"walk-{Guid.NewGuid():N}" });
        }
        await Task.Run(() => Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30))));
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(200);
        }
    }

    /// <summary>Reads the demo's output up to the line <paramref name="pattern"/> matches; then, with <paramref name="drainAfter"/>, drains the rest so the demo never blocks on a full pipe.</summary>
    private static async Task<string?> ReadLineAsync(Process process, List<string> printed, Regex pattern, bool drainAfter)
    {
        while (await process.StandardOutput.ReadLineAsync() is { } line)
        {
            printed.Add(line);
            if (pattern.Match(line) is { Success: true } match)
            {
                if (drainAfter)
                {
                    _ = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
                }
                return match.Groups[1].Value;
            }
        }
        return null;
    }

    [GeneratedRegex(@"admin API\s+(http\S+)")]
    private static partial Regex AdminLine();

    private static async Task<string?> ReadBootstrapAsync(Process process, List<string> printed)
    {
        while (await process.StandardOutput.ReadLineAsync() is { } line)
        {
            printed.Add(line);
            if (BootstrapLine().Match(line) is { Success: true } match)
            {
                // Keep draining stdout so the demo never blocks on a full pipe.
                _ = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
                return match.Groups[1].Value;
            }
        }
        return null;
    }

    [GeneratedRegex(@"bootstrap\.servers\s+(\S+:\d+)")]
    private static partial Regex BootstrapLine();
}
