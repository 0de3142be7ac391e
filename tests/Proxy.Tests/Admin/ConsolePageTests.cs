using System.Net;
using Switchback.Proxy.Admin;
using Switchback.Proxy.Tests.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Admin;

/// <summary>The web console's page and assets as served by the admin port (the browser test drives the page itself).</summary>
public sealed class ConsolePageTests
{
    [Fact]
    public async Task ConsolePage_IsServedFromTheBinaryWithoutAToken_NoStore_SelfOnlyPolicy_AndItsOwnAssets()
    {
        await using var rig = await SwitchingRig.StartAsync(partitions: 1, token: "console-secret");
        using var http = new HttpClient();

        using var page = await http.GetAsync($"{rig.AdminUrl}/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        AssertConsoleHeaders(page);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("<script src=\"console.js\"", html, StringComparison.Ordinal);
        Assert.Contains("<link rel=\"stylesheet\" href=\"console.css\">", html, StringComparison.Ordinal);
        // Nothing from elsewhere: the page must work offline.
        Assert.DoesNotContain("src=\"http", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("href=\"http", html, StringComparison.OrdinalIgnoreCase);

        foreach (var (path, type, marker) in new[] { ("console.js", "text/javascript", "v1/families"), ("console.css", "text/css", ".gate-green") })
        {
            using var asset = await http.GetAsync($"{rig.AdminUrl}/{path}");
            Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
            Assert.Equal(type, asset.Content.Headers.ContentType?.MediaType);
            AssertConsoleHeaders(asset);
            Assert.Contains(marker, await asset.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // The page is public; the data behind it is not.
        using var families = await http.GetAsync($"{rig.AdminUrl}/v1/families");
        Assert.Equal(HttpStatusCode.Unauthorized, families.StatusCode);
    }

    private static void AssertConsoleHeaders(HttpResponseMessage response)
    {
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var policy = string.Join(";", response.Headers.GetValues("Content-Security-Policy"));
        Assert.Equal(ConsoleAssets.ContentSecurityPolicy, policy);
        Assert.Contains("default-src 'self'", policy, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", policy, StringComparison.Ordinal);
        Assert.Equal("nosniff", string.Join(",", response.Headers.GetValues("X-Content-Type-Options")));
    }
}
