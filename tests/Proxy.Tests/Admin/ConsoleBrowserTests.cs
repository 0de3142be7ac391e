using System.Globalization;
using Confluent.Kafka;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using Switchback.Proxy.Tests.Switching;
using Xunit;
using Xunit.Abstractions;

namespace Switchback.Proxy.Tests.Admin;

/// <summary>
/// The web console in a real browser: Debian's headless Chromium driven over WebDriver (chromedriver), against a proxy
/// in front of two mock clusters with producer load. With <c>SWITCHBACK_CONSOLE_SCREENSHOT=FILE</c> the test saves a
/// screenshot of the page just after the switch (docs/console.png is one).
/// </summary>
public sealed class ConsoleBrowserTests(ITestOutputHelper output)
{
    private const string Token = "console-secret";
    private static readonly TimeSpan PageWait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Console_ShowsRoutesClientsAndRates_SwitchesAndRollsBackFromItsButtons_AndShowsBothInTheTimeline()
    {
        using var browser = ConsoleBrowser.Start();
        await using var rig = await SwitchingRig.StartAsync(partitions: 2, token: Token);
        var page = new ConsolePage(browser.Driver, rig, output);
        var clientId = $"console-producer-{Guid.NewGuid().ToString("N")[..8]}";
        using var stop = new CancellationTokenSource();
        var produced = 0;
        var load = Task.Run(() => ProduceAsync(rig.BootstrapServers, clientId, () => Interlocked.Increment(ref produced), stop.Token));
        var reading = Task.Factory.StartNew(() => Consume(rig.BootstrapServers, stop.Token), TaskCreationOptions.LongRunning);
        List<string> errors;
        try
        {
            browser.Driver.Navigate().GoToUrl($"{rig.AdminUrl}/");

            // The admin API wants a token: the page asks for it once, then uses it for every call.
            page.Until("the page to ask for the admin token", d => d.FindElement(By.Id("auth")).Displayed);
            browser.Driver.FindElement(By.Id("token-input")).SendKeys(Token);
            browser.Driver.FindElement(By.CssSelector("#token-form button[type=submit]")).Click();

            page.UntilRoute("source", "source");
            // The five gates of the family's scorecard, each with its status.
            string[] gates = ["data-parity", "offset-parity", "client-routing", "source-readiness", "decision-authority"];
            page.Until("the orders scorecard's five gates", d => d.FindElements(By.CssSelector(".scorecard[data-family='orders'] li.gate"))
                .Select(g => g.GetAttribute("data-gate")).Order().SequenceEqual(gates.Order()));
            Assert.Empty(browser.Driver.FindElements(By.CssSelector(".scorecard[data-family='orders'] [data-scorecard='unavailable']")));
            page.Until($"client {clientId} in the inventory", d => d.FindElements(By.CssSelector($"#clients tr[data-client-id='{clientId}']")).Count > 0);
            page.UntilRate("orders/produce/source");
            page.UntilRate("orders/fetch/source");

            // The target lacks what the load wrote to the source: the gates refuse, and the page lists the failed ones.
            page.Click("button[data-action='switch'][data-family='orders']");
            page.Until("the switch dialog", d => d.FindElement(By.Id("action-dialog")).Displayed);
            page.Type("action-write", "target");
            page.Type("action-read", "target");
            page.Type("action-reason", "console test: switch");
            page.Click("#action-submit");
            page.UntilAnswer("switch", "409");
            page.Until("the refused switch's failed gates", d => d.FindElements(By.CssSelector("#answer li.gate[data-status='red']")).Count > 0);
            page.UntilTimeline("switch", "write=target read=target", outcome: "refused");

            // Again, forced.
            page.Click("button[data-action='switch'][data-family='orders']");
            page.Until("the switch dialog", d => d.FindElement(By.Id("action-dialog")).Displayed);
            page.Type("action-write", "target");
            page.Type("action-read", "target");
            page.Type("action-reason", "console test: switch");
            page.Click("#action-force");
            page.Click("#action-submit");

            page.UntilAnswer("switch", "200");
            page.UntilRoute("target", "target");
            page.UntilTimeline("switch", "write=target read=target");
            // A few samples on the target, so the screenshot shows the switch in the chart.
            page.UntilRate("orders/produce/target", points: 3);
            if (Environment.GetEnvironmentVariable("SWITCHBACK_CONSOLE_SCREENSHOT") is { Length: > 0 } screenshot)
            {
                browser.Screenshot(screenshot);
                output.WriteLine($"screenshot saved to {screenshot}");
            }

            page.Click("button[data-action='rollback'][data-family='orders']");
            page.Until("the rollback dialog", d => d.FindElement(By.Id("action-dialog")).Displayed);
            page.Type("action-reason", "console test: rollback");
            page.Click("#action-submit");

            page.UntilAnswer("rollback", "200");
            page.UntilRoute("source", "source");
            page.UntilTimeline("rollback", "write=source read=source");
        }
        finally
        {
            await stop.CancelAsync();
            errors = await load;
            await reading;
        }
        Assert.True(produced > 0, "the producer load acknowledged nothing");
        Assert.True(errors.Count == 0, string.Join("; ", errors.Take(5)));
    }

    /// <summary>Paced producer load through the proxy until cancelled; returns the delivery errors.</summary>
    private static async Task<List<string>> ProduceAsync(string bootstrap, string clientId, Action acknowledged, CancellationToken stop)
    {
        var errors = new List<string>();
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = bootstrap,
            ClientId = clientId,
            Acks = Acks.All,
            LingerMs = 5,
            MessageTimeoutMs = 60_000,
        }).SetLogHandler(static (_, _) => { }).Build();
        var sequence = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await producer.ProduceAsync(SwitchingRig.Topic, new Message<string, string> { Key = $"k{sequence % 8}", Value = $"v{sequence}" }, CancellationToken.None);
                acknowledged();
            }
            catch (ProduceException<string, string> e)
            {
                errors.Add(e.Error.Reason);
            }
            sequence++;
            // Paced (not a wait for anything): enough traffic for the chart, little CPU on a shared 2-core machine.
            await Task.Delay(20, CancellationToken.None);
        }
        return errors;
    }

    /// <summary>
    /// An assigned consumer (no group membership, no commits) polling through the proxy: a fetching client in the
    /// inventory, and the fetch chart's traffic once the proxy counts fetches per family and cluster.
    /// </summary>
    private static void Consume(string bootstrap, CancellationToken stop)
    {
        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            ClientId = "console-reader",
            GroupId = $"orders-console-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Latest,
            FetchWaitMaxMs = 100,
        }).SetLogHandler(static (_, _) => { }).Build();
        consumer.Assign(Enumerable.Range(0, 2).Select(p => new TopicPartitionOffset(SwitchingRig.Topic, p, Offset.End)));
        while (!stop.IsCancellationRequested)
        {
            try
            {
                consumer.Consume(TimeSpan.FromMilliseconds(200));
            }
            catch (ConsumeException)
            {
                // Positions past the target's end after the read switch: the reset policy takes over; only the traffic matters here.
            }
        }
        consumer.Close();
    }

    /// <summary>What the test reads off the page and does on it; every wait polls the DOM and explains itself on timeout.</summary>
    private sealed class ConsolePage(IWebDriver driver, SwitchingRig rig, ITestOutputHelper output)
    {
        public void Until(string what, Func<IWebDriver, bool> condition)
        {
            var wait = new WebDriverWait(driver, PageWait) { PollingInterval = TimeSpan.FromMilliseconds(250) };
            // Sections are rebuilt as they refresh: an element found a moment ago may be gone.
            wait.IgnoreExceptionTypes(typeof(NoSuchElementException), typeof(StaleElementReferenceException));
            try
            {
                wait.Until(condition);
            }
            catch (WebDriverTimeoutException)
            {
                var text = driver.FindElement(By.TagName("body")).Text;
                output.WriteLine(text);
                Assert.Fail($"Waited {PageWait.TotalSeconds:0} s for {what}. The page showed:\n{text[..Math.Min(text.Length, 4000)]}\nProxy log:\n{rig.ProxyLogTail()}");
            }
        }

        public void Click(string selector) =>
            Until($"'{selector}' to take a click", d =>
            {
                d.FindElement(By.CssSelector(selector)).Click();
                return true;
            });

        public void Type(string id, string text)
        {
            var input = driver.FindElement(By.Id(id));
            input.Clear();
            input.SendKeys(text);
        }

        public void UntilRoute(string write, string read) =>
            Until($"orders to show write={write} read={read}", d =>
                d.FindElement(By.CssSelector("#families tr[data-family='orders'] td[data-field='write']")).Text == write
                && d.FindElement(By.CssSelector("#families tr[data-family='orders'] td[data-field='read']")).Text == read);

        public void UntilAnswer(string action, string status) =>
            Until($"the {action}'s answer {status}", d =>
            {
                var answer = d.FindElement(By.Id("answer"));
                return answer.GetAttribute("data-state") == "done" && answer.GetAttribute("data-status") == status
                    && answer.Text.Contains($"/{action} answered {status}", StringComparison.Ordinal);
            });

        public void UntilTimeline(string action, string to, string outcome = "ok") =>
            Until($"a {action} to '{to}' ({outcome}) in the timeline", d => d.FindElements(By.CssSelector(
                    $"#timeline tr[data-action='{action}'][data-outcome='{outcome}'][data-family='orders'] td[data-field='to']"))
                .Any(cell => cell.Text == to));

        public void UntilRate(string series, int points = 1) =>
            Until($"a rate above 0 in the chart series {series} ({points} points or more)", d => d.FindElements(By.CssSelector($"#rates polyline[data-series='{series}']"))
                .Any(line => double.Parse(line.GetAttribute("data-peak") ?? "0", CultureInfo.InvariantCulture) > 0
                    && int.Parse(line.GetAttribute("data-points") ?? "0", CultureInfo.InvariantCulture) >= points));
    }

    /// <summary>Debian's Chromium and chromedriver, by explicit paths so that nothing is looked up or downloaded.</summary>
    private sealed class ConsoleBrowser : IDisposable
    {
        private const string ChromiumPath = "/usr/bin/chromium";
        private const string DriverDirectory = "/usr/bin";
        private const string DriverName = "chromedriver";

        private readonly string _profile;

        private ConsoleBrowser(ChromeDriver driver, string profile)
        {
            Driver = driver;
            _profile = profile;
        }

        public ChromeDriver Driver { get; }

        public static ConsoleBrowser Start()
        {
            // Not a skip: CI installs the browser (.ci/run), and a console nobody tested must not pass.
            Assert.True(File.Exists(ChromiumPath) && File.Exists(Path.Combine(DriverDirectory, DriverName)),
                $"The console browser test needs Debian's Chromium and ChromeDriver ({ChromiumPath}, {DriverDirectory}/{DriverName}): "
                + "apt-get install -y chromium chromium-driver");
            var profile = Path.Combine(Path.GetTempPath(), $"switchback-chromium-{Guid.NewGuid():N}");
            Directory.CreateDirectory(profile);
            var service = ChromeDriverService.CreateDefaultService(DriverDirectory, DriverName);
            service.SuppressInitialDiagnosticInformation = true;
            service.HideCommandPromptWindow = true;
            var options = new ChromeOptions { BinaryLocation = ChromiumPath };
            // Background networking off: this machine's closed network refuses Chromium's own connections.
            options.AddArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                $"--user-data-dir={profile}", "--window-size=1400,1500");
            return new ConsoleBrowser(new ChromeDriver(service, options, TimeSpan.FromSeconds(120)), profile);
        }

        public void Screenshot(string path)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            Driver.GetScreenshot().SaveAsFile(path);
        }

        public void Dispose()
        {
            Driver.Quit();
            Driver.Dispose();
            try
            {
                Directory.Delete(_profile, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
