using System.Collections.Generic;

namespace Switchback.Protocol.Generator;

/// <summary>An inclusive version range; <see cref="None"/> when the range is empty.</summary>
internal readonly struct VersionRange
{
    public const short Open = short.MaxValue;

    public VersionRange(short low, short high)
    {
        Low = low;
        High = high;
    }

    public short Low { get; }
    public short High { get; }
    public bool IsNone => Low > High;

    public static VersionRange None => new(1, 0);

    public bool Contains(short version) => version >= Low && version <= High;

    public VersionRange Intersect(VersionRange other)
    {
        var low = Low > other.Low ? Low : other.Low;
        var high = High < other.High ? High : other.High;
        return low > high ? None : new VersionRange(low, high);
    }

    public bool Covers(VersionRange other) => other.IsNone || (!IsNone && Low <= other.Low && High >= other.High);

    public override string ToString() => IsNone ? "none" : High == Open ? Low + "+" : Low == High ? Low.ToString() : Low + "-" + High;
}

internal enum FieldKind
{
    Scalar,
    String,
    Bytes,
    Records,
    Struct,
    ScalarArray,
    StringArray,
    StructArray,
}

internal sealed class FieldDef
{
    public string Name = "";
    public string PropertyName = "";
    public string TypeText = "";
    public FieldKind Kind;
    /// <summary>Wire type of a scalar or of the elements of a scalar array (int32, uuid...).</summary>
    public string ScalarType = "";
    public string StructName = "";
    public StructDef? Struct;
    public VersionRange Versions;
    public VersionRange Nullable = VersionRange.None;
    public VersionRange Tagged = VersionRange.None;
    public int Tag = -1;
    public string? Default;
    public int Line;
    public readonly List<FieldDef> Children = new();
    public bool HasChildren;

    public bool IsNullableType => !Nullable.IsNone || Kind == FieldKind.Records;
}

internal sealed class StructDef
{
    public string Name = "";
    public string ClassName = "";
    public List<FieldDef> Fields = new();
    public int Line;
}

internal sealed class MessageDef
{
    public string Name = "";
    public bool IsRequest;
    public short ApiKey;
    public VersionRange Valid;
    public VersionRange Flexible = VersionRange.None;
    public List<FieldDef> Fields = new();
    public List<StructDef> CommonStructs = new();
    /// <summary>Every struct of the message (inline and common), emitted as nested classes of the message class.</summary>
    public List<StructDef> AllStructs = new();
    public int Line;
}

/// <summary>A problem in a definition file, reported as a diagnostic at its line.</summary>
internal sealed class DefinitionError
{
    public DefinitionError(int line, string message)
    {
        Line = line;
        Message = message;
    }

    public int Line { get; }
    public string Message { get; }
}
