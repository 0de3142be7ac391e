using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Switchback.Protocol.Generator;

/// <summary>Generates typed Kafka message classes from the .kmsg definitions passed as additional files.</summary>
[Generator(LanguageNames.CSharp)]
public sealed class MessageGenerator : IIncrementalGenerator
{
    private static readonly DiagnosticDescriptor BadDefinition = new(
        id: "KMSG001",
        title: "Invalid message definition",
        messageFormat: "{0}",
        category: "Switchback.Protocol",
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    private static readonly DiagnosticDescriptor DuplicateApi = new(
        id: "KMSG002",
        title: "Duplicate message definition",
        messageFormat: "{0}",
        category: "Switchback.Protocol",
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var files = context.AdditionalTextsProvider
            .Where(static file => file.Path.EndsWith(".kmsg", StringComparison.OrdinalIgnoreCase))
            .Select(static (file, cancellationToken) => FileResult.From(file.Path, file.GetText(cancellationToken)?.ToString() ?? ""));

        context.RegisterSourceOutput(files, static (spc, file) =>
        {
            foreach (var error in file.Errors)
            {
                spc.ReportDiagnostic(Diagnostic.Create(BadDefinition, error.ToLocation(file.Path), error.Message));
            }
            foreach (var source in file.Sources)
            {
                spc.AddSource(source.HintName, SourceText.From(source.Text, Encoding.UTF8));
            }
        });

        context.RegisterSourceOutput(files.Collect(), static (spc, all) =>
        {
            var apis = new SortedDictionary<short, ApiSummary>();
            foreach (var file in all)
            {
                foreach (var summary in file.Apis)
                {
                    if (apis.ContainsKey(summary.ApiKey))
                    {
                        spc.ReportDiagnostic(Diagnostic.Create(DuplicateApi, ErrorInfo.Create(1, "").ToLocation(file.Path),
                            $"Api key {summary.ApiKey} is defined in more than one file."));
                        continue;
                    }
                    apis.Add(summary.ApiKey, summary);
                }
            }
            spc.AddSource("KafkaApis.g.cs", SourceText.From(RegistryEmitter.Emit(apis.Values), Encoding.UTF8));
        });
    }
}

/// <summary>Position and text of a definition error, equatable for incremental caching.</summary>
internal readonly struct ErrorInfo : IEquatable<ErrorInfo>
{
    private ErrorInfo(int line, string message)
    {
        Line = line;
        Message = message;
    }

    public int Line { get; }
    public string Message { get; }

    public static ErrorInfo Create(int line, string message) => new(line, message);

    public Location ToLocation(string path)
    {
        var position = new LinePosition(Math.Max(0, Line - 1), 0);
        return Location.Create(path, default, new LinePositionSpan(position, position));
    }

    public bool Equals(ErrorInfo other) => Line == other.Line && Message == other.Message;
    public override bool Equals(object? obj) => obj is ErrorInfo other && Equals(other);
    public override int GetHashCode() => Line ^ Message.GetHashCode();
}

/// <summary>One generated source file.</summary>
internal readonly struct GeneratedSource : IEquatable<GeneratedSource>
{
    public GeneratedSource(string hintName, string text)
    {
        HintName = hintName;
        Text = text;
    }

    public string HintName { get; }
    public string Text { get; }

    public bool Equals(GeneratedSource other) => HintName == other.HintName && Text == other.Text;
    public override bool Equals(object? obj) => obj is GeneratedSource other && Equals(other);
    public override int GetHashCode() => HintName.GetHashCode();
}

/// <summary>What the registry needs to know about one API: its key, message classes and versions.</summary>
internal readonly struct ApiSummary : IEquatable<ApiSummary>
{
    public ApiSummary(short apiKey, string name, string? request, string? response, short low, short high, short firstFlexible)
    {
        ApiKey = apiKey;
        Name = name;
        Request = request;
        Response = response;
        Low = low;
        High = high;
        FirstFlexible = firstFlexible;
    }

    public short ApiKey { get; }
    public string Name { get; }
    public string? Request { get; }
    public string? Response { get; }
    public short Low { get; }
    public short High { get; }
    public short FirstFlexible { get; }

    public bool Equals(ApiSummary other) =>
        ApiKey == other.ApiKey && Name == other.Name && Request == other.Request && Response == other.Response
        && Low == other.Low && High == other.High && FirstFlexible == other.FirstFlexible;

    public override bool Equals(object? obj) => obj is ApiSummary other && Equals(other);
    public override int GetHashCode() => ApiKey;
}

/// <summary>The outcome of parsing one definition file.</summary>
internal sealed class FileResult : IEquatable<FileResult>
{
    private FileResult(string path, ImmutableArray<ErrorInfo> errors, ImmutableArray<GeneratedSource> sources, ImmutableArray<ApiSummary> apis)
    {
        Path = path;
        Errors = errors;
        Sources = sources;
        Apis = apis;
    }

    public string Path { get; }
    public ImmutableArray<ErrorInfo> Errors { get; }
    public ImmutableArray<GeneratedSource> Sources { get; }
    public ImmutableArray<ApiSummary> Apis { get; }

    public static FileResult From(string path, string text)
    {
        var parser = DefinitionParser.Parse(text);
        var errors = ImmutableArray.CreateBuilder<ErrorInfo>();
        foreach (var error in parser.Errors)
        {
            errors.Add(ErrorInfo.Create(error.Line, error.Message));
        }
        var messages = parser.Messages;
        MessageDef? request = null;
        MessageDef? response = null;
        foreach (var message in messages)
        {
            if (message.IsRequest ? request is not null : response is not null)
            {
                errors.Add(ErrorInfo.Create(message.Line, $"A file holds one request and one response; {message.Name} is extra."));
                continue;
            }
            if (message.IsRequest)
            {
                request = message;
            }
            else
            {
                response = message;
            }
        }
        if (request is not null && response is not null && request.ApiKey != response.ApiKey)
        {
            errors.Add(ErrorInfo.Create(response.Line, $"{response.Name} has api key {response.ApiKey} but {request.Name} has {request.ApiKey}."));
        }
        if (errors.Count > 0)
        {
            // Emitting half-valid messages would only add compiler errors on top of the definition errors.
            return new FileResult(path, errors.ToImmutable(), ImmutableArray<GeneratedSource>.Empty, ImmutableArray<ApiSummary>.Empty);
        }
        var sources = ImmutableArray.CreateBuilder<GeneratedSource>();
        foreach (var message in messages)
        {
            sources.Add(new GeneratedSource(message.Name + ".g.cs", MessageEmitter.Emit(message)));
        }
        var apis = ImmutableArray<ApiSummary>.Empty;
        var primary = request ?? response;
        if (primary is not null)
        {
            var name = System.IO.Path.GetFileNameWithoutExtension(path);
            apis = ImmutableArray.Create(new ApiSummary(primary.ApiKey, name, request?.Name, response?.Name,
                primary.Valid.Low, primary.Valid.High, primary.Flexible.IsNone ? (short)-1 : primary.Flexible.Low));
        }
        return new FileResult(path, ImmutableArray<ErrorInfo>.Empty, sources.ToImmutable(), apis);
    }

    public bool Equals(FileResult? other) =>
        other is not null && Path == other.Path && Errors.SequenceEqual(other.Errors) && Sources.SequenceEqual(other.Sources) && Apis.SequenceEqual(other.Apis);

    public override bool Equals(object? obj) => Equals(obj as FileResult);
    public override int GetHashCode() => Path.GetHashCode();
}

internal static class ImmutableArrayEquality
{
    public static bool SequenceEqual<T>(this ImmutableArray<T> left, ImmutableArray<T> right)
        where T : IEquatable<T>
    {
        if (left.Length != right.Length)
        {
            return false;
        }
        for (var i = 0; i < left.Length; i++)
        {
            if (!left[i].Equals(right[i]))
            {
                return false;
            }
        }
        return true;
    }
}
