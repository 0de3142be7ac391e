namespace Switchback.Proxy.Routing;

/// <summary>A topic, group or transactional-id pattern where <c>*</c> matches any run of characters.</summary>
public sealed class NamePattern
{
    private readonly string[] _parts;
    private readonly bool _anchoredStart;
    private readonly bool _anchoredEnd;

    public NamePattern(string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        Text = text;
        _parts = text.Split('*');
        _anchoredStart = !text.StartsWith('*');
        _anchoredEnd = !text.EndsWith('*');
    }

    public string Text { get; }

    public bool IsMatch(ReadOnlySpan<char> name)
    {
        if (_parts.Length == 1)
        {
            return name.SequenceEqual(Text);
        }
        var position = 0;
        for (var i = 0; i < _parts.Length; i++)
        {
            var part = _parts[i].AsSpan();
            if (part.IsEmpty)
            {
                continue;
            }
            if (i == 0 && _anchoredStart)
            {
                if (!name.StartsWith(part, StringComparison.Ordinal))
                {
                    return false;
                }
                position = part.Length;
                continue;
            }
            if (i == _parts.Length - 1 && _anchoredEnd)
            {
                return name.Length - position >= part.Length && name.EndsWith(part, StringComparison.Ordinal);
            }
            var found = name[position..].IndexOf(part, StringComparison.Ordinal);
            if (found < 0)
            {
                return false;
            }
            position += found + part.Length;
        }
        return true;
    }

    public override string ToString() => Text;
}
