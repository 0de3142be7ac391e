using System;
using System.Collections.Generic;
using System.Globalization;

namespace Switchback.Protocol.Generator;

/// <summary>Parses a .kmsg definition file (grammar in src/Protocol/Messages/README.md) into message models.</summary>
internal sealed class DefinitionParser
{
    private static readonly HashSet<string> Scalars = new(StringComparer.Ordinal)
    {
        "bool", "int8", "int16", "uint16", "int32", "uint32", "int64", "float64", "uuid",
    };

    /// <summary>Members every generated class defines; fields and nested types must not reuse these names.</summary>
    internal static readonly HashSet<string> ReservedMembers = new(StringComparer.Ordinal)
    {
        "Read", "Write", "Size", "HasDefaultValues", "UnknownTaggedFields", "FieldSchema",
        "Equals", "GetHashCode", "ToString", "GetType", "MemberwiseClone",
    };

    /// <summary>
    /// IKafkaMessage members. Reserved in nested classes too, so that a struct property keeps one name whichever
    /// class it lands in (ApiVersionsResponse.ApiVersion.ApiKeyValue is relied on by callers).
    /// </summary>
    internal static readonly HashSet<string> ReservedMessageMembers = new(StringComparer.Ordinal)
    {
        "ApiKey", "LowestVersion", "HighestVersion",
    };

    private readonly List<DefinitionError> _errors = new();
    private readonly List<MessageDef> _messages = new();

    public IReadOnlyList<DefinitionError> Errors => _errors;
    public IReadOnlyList<MessageDef> Messages => _messages;

    public static DefinitionParser Parse(string text)
    {
        var parser = new DefinitionParser();
        parser.Run(text);
        return parser;
    }

    private void Run(string text)
    {
        var lines = text.Replace("\r\n", "\n").Split('\n');
        MessageDef? message = null;
        // containers[d] receives fields written at indentation depth d + 1.
        var containers = new List<List<FieldDef>>();
        var owners = new List<FieldDef?>();
        for (var i = 0; i < lines.Length; i++)
        {
            var lineNo = i + 1;
            var line = StripComment(lines[i]).TrimEnd();
            if (line.Trim().Length == 0)
            {
                continue;
            }
            var indent = 0;
            while (indent < line.Length && line[indent] == ' ')
            {
                indent++;
            }
            if (indent < line.Length && line[indent] == '\t')
            {
                Error(lineNo, "Tabs are not allowed for indentation; use two spaces per level.");
                continue;
            }
            if (indent % 2 != 0)
            {
                Error(lineNo, "Indentation must be a multiple of two spaces.");
                continue;
            }
            var depth = indent / 2;
            var tokens = Tokenize(line.Substring(indent), lineNo);
            if (tokens is null)
            {
                continue;
            }
            if (depth == 0)
            {
                containers.Clear();
                owners.Clear();
                if (tokens[0] == "message")
                {
                    message = ParseMessageHeader(tokens, lineNo);
                    if (message is not null)
                    {
                        _messages.Add(message);
                        containers.Add(message.Fields);
                        owners.Add(null);
                    }
                }
                else if (tokens[0] == "struct")
                {
                    if (message is null)
                    {
                        Error(lineNo, "A common struct must follow the message that uses it.");
                        continue;
                    }
                    if (tokens.Count < 2 || tokens.Count > 3)
                    {
                        Error(lineNo, "Expected 'struct <Name> [v<versions>]'.");
                        continue;
                    }
                    var common = new StructDef { Name = tokens[1], Line = lineNo };
                    message.CommonStructs.Add(common);
                    containers.Add(common.Fields);
                    owners.Add(null);
                }
                else
                {
                    Error(lineNo, $"Expected 'message' or 'struct', found '{tokens[0]}'.");
                }
                continue;
            }
            if (containers.Count == 0)
            {
                Error(lineNo, "Field outside of a message or struct.");
                continue;
            }
            if (depth > containers.Count)
            {
                Error(lineNo, "Field indented deeper than its parent allows.");
                continue;
            }
            if (depth < containers.Count)
            {
                containers.RemoveRange(depth, containers.Count - depth);
                owners.RemoveRange(depth, owners.Count - depth);
            }
            var owner = owners[depth - 1];
            if (owner is not null && owner.Kind != FieldKind.Struct && owner.Kind != FieldKind.StructArray)
            {
                Error(lineNo, $"Field '{owner.Name}' of type {owner.TypeText} cannot have child fields.");
                continue;
            }
            var field = ParseField(tokens, lineNo);
            if (field is null)
            {
                continue;
            }
            if (owner is not null)
            {
                owner.HasChildren = true;
            }
            containers[depth - 1].Add(field);
            containers.Add(field.Children);
            owners.Add(field);
        }
        foreach (var m in _messages)
        {
            Resolve(m);
        }
    }

    private static string StripComment(string line)
    {
        var inString = false;
        for (var i = 0; i < line.Length; i++)
        {
            if (line[i] == '"')
            {
                inString = !inString;
            }
            else if (line[i] == '\\' && inString)
            {
                i++;
            }
            else if (line[i] == '#' && !inString)
            {
                return line.Substring(0, i);
            }
        }
        return line;
    }

    private List<string>? Tokenize(string text, int lineNo)
    {
        var tokens = new List<string>();
        var i = 0;
        while (i < text.Length)
        {
            if (text[i] == ' ')
            {
                i++;
                continue;
            }
            var start = i;
            if (text[i] == '"')
            {
                i++;
                while (i < text.Length && text[i] != '"')
                {
                    i += text[i] == '\\' ? 2 : 1;
                }
                if (i >= text.Length)
                {
                    Error(lineNo, "Unterminated string literal.");
                    return null;
                }
                i++;
            }
            else
            {
                while (i < text.Length && text[i] != ' ')
                {
                    i++;
                }
            }
            tokens.Add(text.Substring(start, i - start));
        }
        return tokens;
    }

    private MessageDef? ParseMessageHeader(List<string> t, int lineNo)
    {
        // message <Name> request|response key <n> versions <range> flexible <range>
        if (t.Count != 9 || t[3] != "key" || t[5] != "versions" || t[7] != "flexible" || (t[2] != "request" && t[2] != "response"))
        {
            Error(lineNo, "Expected 'message <Name> request|response key <n> versions <range> flexible <range>'.");
            return null;
        }
        if (!IsIdentifier(t[1]))
        {
            Error(lineNo, $"'{t[1]}' is not a valid message name.");
            return null;
        }
        if (!short.TryParse(t[4], NumberStyles.None, CultureInfo.InvariantCulture, out var key))
        {
            Error(lineNo, $"Invalid api key '{t[4]}'.");
            return null;
        }
        if (!TryParseRange(t[6], out var valid) || valid.IsNone || valid.High == VersionRange.Open)
        {
            Error(lineNo, $"Invalid message versions '{t[6]}': expected a closed range such as 0-11.");
            return null;
        }
        if (!TryParseRange(t[8], out var flexible) || (!flexible.IsNone && flexible.High != VersionRange.Open))
        {
            Error(lineNo, $"Invalid flexible versions '{t[8]}': expected N+ or none.");
            return null;
        }
        return new MessageDef { Name = t[1], IsRequest = t[2] == "request", ApiKey = key, Valid = valid, Flexible = flexible, Line = lineNo };
    }

    private FieldDef? ParseField(List<string> t, int lineNo)
    {
        if (t.Count < 3 || !IsIdentifier(t[0]))
        {
            Error(lineNo, "Expected '<Name> <type> v<versions> [nullable <range>] [tagged <range> tag <n>] [default <value>]'.");
            return null;
        }
        var field = new FieldDef { Name = t[0], TypeText = t[1], Line = lineNo };
        if (!ClassifyType(field, lineNo))
        {
            return null;
        }
        if (!t[2].StartsWith("v", StringComparison.Ordinal) || !TryParseRange(t[2].Substring(1), out field.Versions))
        {
            Error(lineNo, $"Invalid field versions '{t[2]}': expected v<range>, e.g. v0+, v3-5, vnone.");
            return null;
        }
        var i = 3;
        while (i < t.Count)
        {
            var keyword = t[i];
            if (i + 1 >= t.Count)
            {
                Error(lineNo, $"'{keyword}' needs a value.");
                return null;
            }
            var value = t[i + 1];
            switch (keyword)
            {
                case "nullable":
                    if (!TryParseRange(value, out field.Nullable))
                    {
                        Error(lineNo, $"Invalid nullable versions '{value}'.");
                        return null;
                    }
                    if (field.Kind == FieldKind.Scalar)
                    {
                        Error(lineNo, $"Field '{field.Name}' of type {field.TypeText} cannot be nullable.");
                        return null;
                    }
                    break;
                case "tagged":
                    if (!TryParseRange(value, out field.Tagged))
                    {
                        Error(lineNo, $"Invalid tagged versions '{value}'.");
                        return null;
                    }
                    break;
                case "tag":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out field.Tag))
                    {
                        Error(lineNo, $"Invalid tag '{value}'.");
                        return null;
                    }
                    break;
                case "default":
                    field.Default = value;
                    break;
                default:
                    Error(lineNo, $"Unknown field attribute '{keyword}'.");
                    return null;
            }
            i += 2;
        }
        if (field.Tagged.IsNone != (field.Tag < 0))
        {
            Error(lineNo, "A tagged field needs both 'tagged <range>' and 'tag <n>'.");
            return null;
        }
        if (!field.Versions.Covers(field.Tagged))
        {
            Error(lineNo, "Tagged versions must lie within the field's versions.");
            return null;
        }
        return ValidateDefault(field, lineNo) ? field : null;
    }

    private bool ClassifyType(FieldDef field, int lineNo)
    {
        var type = field.TypeText;
        var isArray = type.StartsWith("[]", StringComparison.Ordinal);
        var element = isArray ? type.Substring(2) : type;
        if (Scalars.Contains(element))
        {
            field.Kind = isArray ? FieldKind.ScalarArray : FieldKind.Scalar;
            field.ScalarType = element;
            return true;
        }
        switch (element)
        {
            case "string":
                field.Kind = isArray ? FieldKind.StringArray : FieldKind.String;
                return true;
            case "bytes":
            case "records":
                if (isArray)
                {
                    Error(lineNo, $"Arrays of {element} are not supported.");
                    return false;
                }
                field.Kind = element == "bytes" ? FieldKind.Bytes : FieldKind.Records;
                return true;
        }
        if (!IsIdentifier(element) || !char.IsUpper(element[0]))
        {
            Error(lineNo, $"Unknown type '{type}'.");
            return false;
        }
        field.Kind = isArray ? FieldKind.StructArray : FieldKind.Struct;
        field.StructName = element;
        return true;
    }

    private bool ValidateDefault(FieldDef field, int lineNo)
    {
        var value = field.Default;
        if (value is null)
        {
            return true;
        }
        if (value == "null")
        {
            if (field.Nullable.IsNone && field.Kind != FieldKind.Records)
            {
                Error(lineNo, $"Field '{field.Name}' defaults to null but is never nullable.");
                return false;
            }
            return true;
        }
        switch (field.Kind)
        {
            case FieldKind.String:
                if (value.Length < 2 || value[0] != '"' || value[value.Length - 1] != '"')
                {
                    Error(lineNo, $"String default must be quoted or null, found {value}.");
                    return false;
                }
                return true;
            case FieldKind.Scalar:
                return ValidateScalarDefault(field, value, lineNo);
            default:
                Error(lineNo, $"Field '{field.Name}' of type {field.TypeText} only accepts 'default null'.");
                return false;
        }
    }

    private bool ValidateScalarDefault(FieldDef field, string value, int lineNo)
    {
        var ok = field.ScalarType switch
        {
            "bool" => value == "true" || value == "false",
            "int8" => sbyte.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _),
            "int16" => short.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _),
            "uint16" => ushort.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out _),
            "int32" => int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _),
            "uint32" => uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out _),
            "int64" => long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _),
            "float64" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _),
            "uuid" => value == "0",
            _ => false,
        };
        if (!ok)
        {
            Error(lineNo, $"Default '{value}' is not a valid {field.ScalarType}.");
        }
        return ok;
    }

    private void Resolve(MessageDef message)
    {
        var byName = new Dictionary<string, StructDef>(StringComparer.Ordinal);
        foreach (var common in message.CommonStructs)
        {
            if (byName.ContainsKey(common.Name))
            {
                Error(common.Line, $"Struct '{common.Name}' is defined more than once in {message.Name}.");
                continue;
            }
            byName.Add(common.Name, common);
            message.AllStructs.Add(common);
        }
        CollectInline(message, message.Fields, byName);
        foreach (var common in message.CommonStructs)
        {
            CollectInline(message, common.Fields, byName);
        }
        ResolveReferences(message.Fields, byName);
        foreach (var s in message.AllStructs)
        {
            ResolveReferences(s.Fields, byName);
        }
        AssignNames(message);
    }

    private void CollectInline(MessageDef message, List<FieldDef> fields, Dictionary<string, StructDef> byName)
    {
        foreach (var field in fields)
        {
            if (!field.HasChildren)
            {
                continue;
            }
            if (byName.ContainsKey(field.StructName))
            {
                Error(field.Line, $"Struct '{field.StructName}' is defined more than once in {message.Name}.");
                continue;
            }
            var inline = new StructDef { Name = field.StructName, Fields = field.Children, Line = field.Line };
            byName.Add(inline.Name, inline);
            message.AllStructs.Add(inline);
            field.Struct = inline;
            CollectInline(message, field.Children, byName);
        }
    }

    private void ResolveReferences(List<FieldDef> fields, Dictionary<string, StructDef> byName)
    {
        foreach (var field in fields)
        {
            if ((field.Kind == FieldKind.Struct || field.Kind == FieldKind.StructArray) && field.Struct is null)
            {
                if (byName.TryGetValue(field.StructName, out var found))
                {
                    field.Struct = found;
                }
                else
                {
                    Error(field.Line, $"Unknown struct '{field.StructName}' (define it with child fields or as a common struct).");
                }
            }
        }
    }

    /// <summary>
    /// Nested classes share the message class as their parent, so their names must differ from the message
    /// name, the message's properties, the generated members and each other; properties must differ from
    /// their own class name. Clashes get a deterministic suffix.
    /// </summary>
    private static void AssignNames(MessageDef message)
    {
        AssignPropertyNames(message.Fields, message.Name);
        var taken = new HashSet<string>(ReservedMembers, StringComparer.Ordinal) { message.Name };
        taken.UnionWith(ReservedMessageMembers);
        foreach (var field in message.Fields)
        {
            taken.Add(field.PropertyName);
        }
        foreach (var s in message.AllStructs)
        {
            var name = s.Name;
            while (taken.Contains(name) || HasField(s, name))
            {
                name += "Data";
            }
            s.ClassName = name;
            taken.Add(name);
            AssignPropertyNames(s.Fields, name);
        }
    }

    private static bool HasField(StructDef s, string name)
    {
        foreach (var field in s.Fields)
        {
            if (field.Name == name)
            {
                return true;
            }
        }
        return false;
    }

    private static void AssignPropertyNames(List<FieldDef> fields, string className)
    {
        foreach (var field in fields)
        {
            var name = field.Name;
            while (name == className || ReservedMembers.Contains(name) || ReservedMessageMembers.Contains(name))
            {
                name += "Value";
            }
            field.PropertyName = name;
        }
    }

    private static bool TryParseRange(string text, out VersionRange range)
    {
        range = VersionRange.None;
        if (text == "none")
        {
            return true;
        }
        if (text.EndsWith("+", StringComparison.Ordinal))
        {
            if (!short.TryParse(text.Substring(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var low))
            {
                return false;
            }
            range = new VersionRange(low, VersionRange.Open);
            return true;
        }
        var dash = text.IndexOf('-');
        if (dash < 0)
        {
            if (!short.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var single))
            {
                return false;
            }
            range = new VersionRange(single, single);
            return true;
        }
        if (!short.TryParse(text.Substring(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out var from)
            || !short.TryParse(text.Substring(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var to)
            || to < from)
        {
            return false;
        }
        range = new VersionRange(from, to);
        return true;
    }

    private static bool IsIdentifier(string text)
    {
        if (text.Length == 0 || !(char.IsLetter(text[0]) || text[0] == '_'))
        {
            return false;
        }
        foreach (var c in text)
        {
            if (!char.IsLetterOrDigit(c) && c != '_')
            {
                return false;
            }
        }
        return true;
    }

    private void Error(int line, string message) => _errors.Add(new DefinitionError(line, message));
}
