using System.Diagnostics;
using System.Net;
using Switchback.Proxy.Tests.ClientMatrix;
using Switchback.Proxy.Tests.Integration;
using Xunit;
using Xunit.Abstractions;
using static Switchback.Proxy.Tests.Switching.TransactionalWorkloadTests;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>
/// The transactional workload of <see cref="TransactionalWorkloadTests"/> run by clients nobody on this team wrote,
/// each with its own transaction state machine: kafkajs 2.2.4 (pure JavaScript) and confluent-kafka-python 1.7
/// (librdkafka 2.0). Each commits 10-record transactions back to back (every fifth aborted) through the proxy while
/// the family's writes move to target and back; no error may reach the application, every committed record must be
/// stored exactly once, and no transaction may be split across clusters.
/// </summary>
public sealed class ForeignTransactionalClientTests(ITestOutputHelper output)
{
    private const int CommitsBeforeSwitch = 20;
    private const int CommitsOnTarget = 30;
    private const int CommitsAfterRollback = 20;

    // Long enough for a driver whose commit is retrying to finish it (the drivers allow a commit 30 s).
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(60);

    private static string Script(string name) => Path.Combine(AppContext.BaseDirectory, "Switching", "Clients", name);

    [Theory]
    [InlineData("orders-tx")]
    [InlineData("eos-app")]
    public async Task Kafkajs_WriteSwitchAndRollback_UnderContinuousTransactions_NoFailedTransactionEachCommittedRecordOnce(string transactionalIdPrefix)
    {
        var nodeModules = await ExternalClients.EnsureKafkajsAsync();
        var log = await RunWorkloadAsync(transactionalIdPrefix, (bootstrap, transactionalId, log) => ForeignTransactionalProducer.Start("node",
            [Script("kafkajs_transactions.js"), bootstrap, SwitchingRig.Topic, transactionalId], log,
            new Dictionary<string, string> { ["NODE_PATH"] = nodeModules, ["KAFKAJS_NO_PARTITIONER_WARNING"] = "1" }));
        Assert.True(log.Transient.IsEmpty, $"client errors: {string.Join("; ", log.Transient.Take(5))}");
    }

    [Theory]
    [InlineData("orders-tx")]
    [InlineData("eos-app")]
    public async Task ConfluentKafkaPython_WriteSwitchAndRollback_UnderContinuousTransactions_NoFailedTransactionEachCommittedRecordOnce(string transactionalIdPrefix)
    {
        await MatrixClientInstalls.EnsureConfluentKafkaPythonAsync();
        var log = await RunWorkloadAsync(transactionalIdPrefix, (bootstrap, transactionalId, log) => ForeignTransactionalProducer.Start(ExternalClients.SystemPython,
            [Script("confluent_kafka_python_transactions.py"), bootstrap, SwitchingRig.Topic, transactionalId], log));
        Assert.True(log.Transient.IsEmpty, $"client errors: {string.Join("; ", log.Transient.Take(5))}");
    }

    /// <summary>
    /// Starts the driver, switches writes to target once <see cref="CommitsBeforeSwitch"/> transactions committed, rolls
    /// back after <see cref="CommitsOnTarget"/> more, stops it after <see cref="CommitsAfterRollback"/> more, and checks
    /// what the clusters hold; returns the log for client-specific checks.
    /// </summary>
    private async Task<TransactionLog> RunWorkloadAsync(string transactionalIdPrefix,
        Func<string, string, TransactionLog, ForeignTransactionalProducer> start)
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 6);
        var log = new TransactionLog();
        await using var producer = start(rig.BootstrapServers, $"{transactionalIdPrefix}-{Guid.NewGuid():N}", log);
        try
        {
            await log.WaitForCommitsAsync(CommitsBeforeSwitch, producer.Running);
            var clock = Stopwatch.StartNew();
            var switched = await rig.SwitchAsync(new { write = "target", force = true, timeoutMs = 20_000, reason = "foreign transactional load" });
            Assert.True(switched.Status == HttpStatusCode.OK, switched.ToString());
            var switchTook = clock.Elapsed;
            await log.WaitForCommitsAsync(log.Committed.Count + CommitsOnTarget, producer.Running);
            clock.Restart();
            var rolledBack = await rig.RollbackAsync(new { timeoutMs = 20_000, reason = "foreign transactional load" });
            Assert.True(rolledBack.Status == HttpStatusCode.OK, rolledBack.ToString());
            var rollbackTook = clock.Elapsed;
            await log.WaitForCommitsAsync(log.Committed.Count + CommitsAfterRollback, producer.Running);
            var exitCode = await producer.StopAsync(StopTimeout);

            output.WriteLine($"{log.Committed.Count} committed, {log.Aborted.Count} aborted, {log.Transient.Count} client errors; " +
                $"switch pause {switched.Body.GetProperty("pauseMs")} ms (call {switchTook.TotalMilliseconds:F0} ms), " +
                $"rollback pause {rolledBack.Body.GetProperty("pauseMs")} ms (call {rollbackTook.TotalMilliseconds:F0} ms)");
            Assert.True(log.Errors.IsEmpty, $"errors reached the application: {string.Join("; ", log.Errors.Take(5))}");
            Assert.True(exitCode == 0, $"the driver exited with {exitCode}; stderr:\n{producer.StderrTail}");
            AssertStoredOnce(rig, log);
            return log;
        }
        catch
        {
            output.WriteLine($"driver log: {log.Committed.Count} committed, {log.Aborted.Count} aborted; errors: {string.Join("; ", log.Errors.Take(10))}; " +
                $"client errors: {string.Join("; ", log.Transient.Take(10))}\ndriver stderr:\n{producer.StderrTail}");
            throw;
        }
    }
}
