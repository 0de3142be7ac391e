using System.Buffers.Binary;

namespace Switchback.Proxy.Tests.Fuzzing.Harness;

/// <summary>
/// Turns a sequence of captured request frames (bodies without their size prefix) into the bytes of one hostile
/// client connection: frames mutated in their header, body or size prefix, garbage, repeats, and the whole stream
/// cut into chunks at random points. Deterministic for a given seed, so any finding can be replayed.
/// </summary>
public static class FrameMutator
{
    /// <summary>API keys worth aiming a mutated header at: every key the proxy interprets, plus a few it does not.</summary>
    private static readonly short[] InterestingApiKeys = [0, 1, 2, 3, 8, 9, 10, 12, 13, 14, 18, 19, 22, 24, 25, 26, 28, 32, 36, 60, 75, -1, 1000, short.MaxValue];

    /// <summary>
    /// APIs the fuzzer never sends, because the librdkafka mock cluster aborts the whole process on some malformed
    /// or inconsistent ones where a broker would answer with an error: JoinGroup (assertion in
    /// rd_kafka_mock_cgrp_classic_elect_leader when members name different protocols) and ConsumerGroupHeartbeat
    /// (assertion in validate_subscription). Such frames are left out of the stream.
    /// </summary>
    private static readonly HashSet<short> CrashTheMockUpstream = [11, 68];

    /// <summary>One fuzz case: what is sent, in which chunks, and a short description for reports.</summary>
    public sealed record FuzzCase(long Seed, IReadOnlyList<byte[]> Chunks, string Description);

    public static FuzzCase Build(long seed, IReadOnlyList<IReadOnlyList<byte[]>> conversations, int maxFrameBytes)
    {
        var random = new Random(unchecked((int)seed ^ (int)(seed >> 32)));
        var conversation = conversations[random.Next(conversations.Count)];
        var notes = new List<string>();
        var stream = new List<byte>();

        // A prefix of a real conversation keeps the frames in an order a client would send them.
        var count = Math.Min(conversation.Count, 1 + random.Next(12));
        var start = random.Next(Math.Max(1, conversation.Count - count + 1));
        for (var i = start; i < start + count && i < conversation.Count; i++)
        {
            var body = (byte[])conversation[i].Clone();
            var repeat = 1;
            var lie = (int?)null;
            if (random.NextDouble() < 0.6)
            {
                var kind = random.Next(10);
                switch (kind)
                {
                    case 0:
                        FlipBits(random, body, 1 + random.Next(8));
                        notes.Add($"#{i} bitflips");
                        break;
                    case 1:
                        body = body[..random.Next(body.Length + 1)];
                        notes.Add($"#{i} truncated to {body.Length}");
                        break;
                    case 2:
                        lie = LyingSize(random, body.Length, maxFrameBytes);
                        notes.Add($"#{i} size says {lie} for {body.Length}");
                        break;
                    case 3:
                        if (body.Length >= 8)
                        {
                            MutateHeader(random, body, notes, i);
                        }
                        break;
                    case 4:
                        body = new byte[random.Next(64)];
                        random.NextBytes(body);
                        notes.Add($"#{i} garbage {body.Length}");
                        break;
                    case 5:
                        PlantHugeLength(random, body);
                        notes.Add($"#{i} huge length in body");
                        break;
                    case 6:
                        repeat = 2 + random.Next(100);
                        notes.Add($"#{i} x{repeat}");
                        break;
                    case 7:
                        body = InsertOrDelete(random, body);
                        notes.Add($"#{i} resized to {body.Length}");
                        break;
                    case 8:
                        // Random correlation id, left otherwise intact: must be echoed, never trusted.
                        if (body.Length >= 8)
                        {
                            BinaryPrimitives.WriteInt32BigEndian(body.AsSpan(4), random.Next(int.MinValue, int.MaxValue));
                            notes.Add($"#{i} correlation id");
                        }
                        break;
                    default:
                        FlipBits(random, body, 1);
                        MutateHeader(random, body, notes, i);
                        break;
                }
            }
            if (body.Length >= 2 && CrashTheMockUpstream.Contains(BinaryPrimitives.ReadInt16BigEndian(body)))
            {
                continue;
            }
            for (var r = 0; r < repeat; r++)
            {
                var prefix = new byte[4];
                BinaryPrimitives.WriteInt32BigEndian(prefix, lie ?? body.Length);
                stream.AddRange(prefix);
                stream.AddRange(body);
            }
        }
        if (random.NextDouble() < 0.05)
        {
            var tail = new byte[random.Next(1, 16)];
            random.NextBytes(tail);
            stream.AddRange(tail);
            notes.Add($"trailing garbage {tail.Length}");
        }
        var chunks = Split(random, [.. stream]);
        notes.Add($"{chunks.Count} chunks");
        return new FuzzCase(seed, chunks, string.Join(", ", notes));
    }

    private static void FlipBits(Random random, byte[] body, int flips)
    {
        if (body.Length == 0)
        {
            return;
        }
        for (var f = 0; f < flips; f++)
        {
            body[random.Next(body.Length)] ^= (byte)(1 << random.Next(8));
        }
    }

    private static void MutateHeader(Random random, byte[] body, List<string> notes, int index)
    {
        if (body.Length < 8)
        {
            return;
        }
        switch (random.Next(3))
        {
            case 0:
                var apiKey = InterestingApiKeys[random.Next(InterestingApiKeys.Length)];
                BinaryPrimitives.WriteInt16BigEndian(body, apiKey);
                notes.Add($"#{index} api key {apiKey}");
                break;
            case 1:
                var version = (short)(random.Next(3) == 0 ? random.Next(short.MinValue, short.MaxValue) : random.Next(-1, 20));
                BinaryPrimitives.WriteInt16BigEndian(body.AsSpan(2), version);
                notes.Add($"#{index} api version {version}");
                break;
            default:
                // The client id length: a lie here makes every later offset wrong.
                if (body.Length >= 10)
                {
                    var length = (short)random.Next(short.MinValue, short.MaxValue);
                    BinaryPrimitives.WriteInt16BigEndian(body.AsSpan(8), length);
                    notes.Add($"#{index} client id length {length}");
                }
                break;
        }
    }

    private static int LyingSize(Random random, int actual, int maxFrameBytes) => random.Next(6) switch
    {
        0 => -1 - random.Next(1000),
        1 => random.Next(4),
        2 => Math.Max(0, actual - 1 - random.Next(Math.Max(1, actual))),
        3 => actual + 1 + random.Next(64),
        4 => maxFrameBytes - random.Next(16),
        _ => int.MaxValue - random.Next(16),
    };

    private static void PlantHugeLength(Random random, byte[] body)
    {
        // Past the fixed header (api key, version, correlation id), any offset may hold a length or count field.
        if (body.Length < 12)
        {
            return;
        }
        var at = 8 + random.Next(body.Length - 8);
        switch (random.Next(4))
        {
            case 0 when at + 4 <= body.Length:
                BinaryPrimitives.WriteInt32BigEndian(body.AsSpan(at), random.Next(2) == 0 ? int.MaxValue : 0x0FFF_FFFF);
                break;
            case 1 when at + 2 <= body.Length:
                BinaryPrimitives.WriteInt16BigEndian(body.AsSpan(at), short.MaxValue);
                break;
            case 2 when at + 5 <= body.Length:
                // An unsigned varint of 2^32 - 1: the compact length that claims the most.
                body[at] = 0xFF;
                body[at + 1] = 0xFF;
                body[at + 2] = 0xFF;
                body[at + 3] = 0xFF;
                body[at + 4] = 0x0F;
                break;
            default:
                if (at + 4 <= body.Length)
                {
                    BinaryPrimitives.WriteInt32BigEndian(body.AsSpan(at), -2 - random.Next(1000));
                }
                break;
        }
    }

    private static byte[] InsertOrDelete(Random random, byte[] body)
    {
        var list = body.ToList();
        var edits = 1 + random.Next(4);
        for (var e = 0; e < edits; e++)
        {
            if (list.Count > 0 && random.Next(2) == 0)
            {
                list.RemoveAt(random.Next(list.Count));
            }
            else
            {
                list.Insert(random.Next(list.Count + 1), (byte)random.Next(256));
            }
        }
        return [.. list];
    }

    private static List<byte[]> Split(Random random, byte[] stream)
    {
        var chunks = new List<byte[]>();
        if (stream.Length == 0)
        {
            return chunks;
        }
        var mode = random.Next(4);
        if (mode == 0)
        {
            chunks.Add(stream); // everything at once
            return chunks;
        }
        var offset = 0;
        while (offset < stream.Length)
        {
            var length = mode switch
            {
                1 => 1 + random.Next(8), // dribbled
                _ => 1 + random.Next(Math.Max(1, stream.Length / 3)),
            };
            length = Math.Min(length, stream.Length - offset);
            chunks.Add(stream[offset..(offset + length)]);
            offset += length;
            if (chunks.Count > 4096)
            {
                chunks.Add(stream[offset..]);
                break;
            }
        }
        return chunks;
    }
}
