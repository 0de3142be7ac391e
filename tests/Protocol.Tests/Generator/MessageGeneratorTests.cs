using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;
using Switchback.Protocol.Generator;

namespace Switchback.Protocol.Tests.Generator;

public sealed class MessageGeneratorTests
{
    [Theory]
    [InlineData("message A request key 1 versions 0-2 flexible 1+\n  X int33 v0+\n", 2, "Unknown type")]
    [InlineData("message A request key 1 versions 0-2 flexible 1+\n  X int32 v0+\n   Y int32 v0+\n", 3, "multiple of two")]
    [InlineData("message A request key 1 versions 0-2 flexible 1+\n  X int32 v0+ tagged 1+\n", 2, "tag")]
    [InlineData("message A request key 1 versions 0-2 flexible 1+\n  X []Missing v0+\n", 2, "Unknown struct")]
    [InlineData("message A request key 1 versions 0-2 flexible 1+\n  X int32 v0+ default abc\n", 2, "not a valid int32")]
    [InlineData("message A request key one versions 0-2 flexible 1+\n", 1, "api key")]
    [InlineData("  X int32 v0+\n", 1, "outside")]
    public void BadDefinition_IsReportedAtItsLine_InsteadOfCrashing(string definition, int line, string fragment)
    {
        var diagnostics = Run(definition, out var generated);

        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal("KMSG001", diagnostic.Id);
        Assert.Equal(DiagnosticSeverity.Error, diagnostic.Severity);
        Assert.Equal(line, diagnostic.Location.GetLineSpan().StartLinePosition.Line + 1);
        Assert.EndsWith("Bad.kmsg", diagnostic.Location.GetLineSpan().Path);
        Assert.Contains(fragment, diagnostic.GetMessage(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(generated, name => name.StartsWith("A.", StringComparison.Ordinal));
    }

    [Fact]
    public void NestedTypeClashingWithProperty_GetsDataSuffix()
    {
        const string definition = """
            message ThingResponse response key 99 versions 0 flexible 0+
              Assignment Assignment v0+ nullable 0+ default null
                Size int32 v0+
            """;
        var diagnostics = Run(definition, out var generated, out var sources);

        Assert.Empty(diagnostics);
        Assert.Contains("ThingResponse.g.cs", generated);
        var source = sources["ThingResponse.g.cs"];
        Assert.Contains("public sealed partial class AssignmentData", source);
        Assert.Contains("public int SizeValue { get; set; }", source);
    }

    private static ImmutableArray<Diagnostic> Run(string definition, out List<string> generated) =>
        Run(definition, out generated, out _);

    private static ImmutableArray<Diagnostic> Run(string definition, out List<string> generated, out Dictionary<string, string> sources)
    {
        var compilation = CSharpCompilation.Create("Definitions");
        var driver = CSharpGeneratorDriver.Create(
            generators: [new MessageGenerator().AsSourceGenerator()],
            additionalTexts: [new InMemoryText("/defs/Bad.kmsg", definition)]);
        var result = driver.RunGenerators(compilation).GetRunResult();
        sources = [];
        generated = [];
        foreach (var source in result.Results[0].GeneratedSources)
        {
            generated.Add(source.HintName);
            sources[source.HintName] = source.SourceText.ToString();
        }
        return result.Diagnostics;
    }

    private sealed class InMemoryText(string path, string text) : AdditionalText
    {
        public override string Path => path;
        public override SourceText GetText(CancellationToken cancellationToken = default) => SourceText.From(text);
    }
}
