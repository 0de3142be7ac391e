using System.Diagnostics;
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
