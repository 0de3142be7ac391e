using System.Reflection;
using System.Text;
using Switchback.Protocol.Messages;

namespace Switchback.Protocol.Tests.Messages;

/// <summary>
/// Fills a generated message with random values that are valid for one version, driven by the generated field
/// schema: absent fields stay default, null appears only where the version allows it, tagged fields are sometimes
/// left at their default, and flexible structs sometimes carry unknown tagged fields.
/// </summary>
public sealed class RandomMessageBuilder(int seed)
{
    private const string Alphabet = "abcXYZ019-_. é漢";
    private readonly Random _random = new(seed);

    public T Populate<T>(T message, short version, bool flexible)
        where T : class
    {
        PopulateObject(message, version, flexible, depth: 0);
        return message;
    }

    private void PopulateObject(object target, short version, bool flexible, int depth)
    {
        var type = target.GetType();
        var schema = (KafkaFieldSchema[])type.GetField("FieldSchema", BindingFlags.NonPublic | BindingFlags.Static)!.GetValue(null)!;
        foreach (var field in schema)
        {
            if (!field.IsPresent(version))
            {
                continue;
            }
            if (field.IsTagged(version) && _random.Next(3) == 0)
            {
                continue;
            }
            var property = type.GetProperty(field.Property)!;
            var nullable = field.IsNullable(version);
            if (nullable && _random.Next(5) == 0)
            {
                property.SetValue(target, null);
                continue;
            }
            property.SetValue(target, RandomValue(property.PropertyType, version, flexible, depth));
        }
        var unknown = type.GetProperty("UnknownTaggedFields");
        if (unknown is not null && flexible && _random.Next(4) == 0)
        {
            var fields = new List<RawTaggedField>();
            var tag = 100u + (uint)_random.Next(50);
            for (var i = _random.Next(1, 3); i > 0; i--)
            {
                fields.Add(new RawTaggedField(tag, RandomBytes(_random.Next(0, 6))));
                tag += 1 + (uint)_random.Next(200);
            }
            unknown.SetValue(target, fields);
        }
    }

    private object RandomValue(Type type, short version, bool flexible, int depth)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        if (underlying == typeof(bool)) return _random.Next(2) == 0;
        if (underlying == typeof(sbyte)) return (sbyte)_random.Next(sbyte.MinValue, sbyte.MaxValue + 1);
        if (underlying == typeof(short)) return (short)_random.Next(short.MinValue, short.MaxValue + 1);
        if (underlying == typeof(ushort)) return (ushort)_random.Next(ushort.MaxValue + 1);
        if (underlying == typeof(int)) return _random.Next(3) == 0 ? -1 : _random.Next(int.MinValue, int.MaxValue);
        if (underlying == typeof(uint)) return (uint)_random.NextInt64(uint.MaxValue + 1L);
        if (underlying == typeof(long)) return _random.NextInt64(long.MinValue, long.MaxValue);
        if (underlying == typeof(double)) return Math.Round(_random.NextDouble() * 1000, 3);
        if (underlying == typeof(Guid)) return _random.Next(4) == 0 ? Guid.Empty : Guid.NewGuid();
        if (underlying == typeof(string)) return RandomString();
        if (underlying == typeof(ReadOnlyMemory<byte>)) return new ReadOnlyMemory<byte>(RandomBytes(_random.Next(0, 20)));
        if (underlying.IsGenericType && underlying.GetGenericTypeDefinition() == typeof(List<>))
        {
            var element = underlying.GetGenericArguments()[0];
            var list = (System.Collections.IList)Activator.CreateInstance(underlying)!;
            var count = depth > 3 || _random.Next(5) == 0 ? 0 : _random.Next(1, 4);
            for (var i = 0; i < count; i++)
            {
                list.Add(RandomValue(element, version, flexible, depth + 1));
            }
            return list;
        }
        if (underlying.IsClass)
        {
            var nested = Activator.CreateInstance(underlying)!;
            PopulateObject(nested, version, flexible, depth + 1);
            return nested;
        }
        throw new NotSupportedException($"No random value for {type}.");
    }

    private string RandomString()
    {
        var length = _random.Next(0, 8);
        var sb = new StringBuilder(length);
        for (var i = 0; i < length; i++)
        {
            sb.Append(Alphabet[_random.Next(Alphabet.Length)]);
        }
        return sb.ToString();
    }

    private byte[] RandomBytes(int length)
    {
        var bytes = new byte[length];
        _random.NextBytes(bytes);
        return bytes;
    }
}
