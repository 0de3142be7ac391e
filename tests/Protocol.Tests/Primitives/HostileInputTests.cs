using CsCheck;
using Switchback.Protocol.Records;
using Switchback.Protocol.Routing;

namespace Switchback.Protocol.Tests.Primitives;

/// <summary>Random bytes fed to every reader may fail only with <see cref="KafkaProtocolException"/>.</summary>
public class HostileInputTests
{
    private static void OnlyProtocolErrors(Action read)
    {
        try
        {
            read();
        }
        catch (KafkaProtocolException)
        {
        }
    }

    private static readonly Gen<byte[]> RandomFrame = Gen.OneOf(
        Gen.Byte.Array[0, 64],
        Gen.Byte[0, 3].Array[0, 64],
        Gen.Int[0, 4].Select(i => new byte[] { 0x00, 0x01, 0x7F, 0x80, 0xFF }[i]).Array[0, 128]);

    [Fact]
    public void KafkaReader_RandomBytes_ThrowOnlyProtocolException() =>
        Gen.Select(RandomFrame, Gen.Int[0, 13].Array[1, 12], Gen.Bool).Sample((frame, ops, flexible) =>
            OnlyProtocolErrors(() =>
            {
                var r = new KafkaReader(frame.AsMemory());
                foreach (var op in ops)
                {
                    switch (op)
                    {
                        case 0: r.ReadInt8(); break;
                        case 1: r.ReadInt16(); break;
                        case 2: r.ReadInt32(); break;
                        case 3: r.ReadInt64(); break;
                        case 4: r.ReadUnsignedVarInt(); break;
                        case 5: r.ReadVarLong(); break;
                        case 6: r.ReadNullableString(flexible); break;
                        case 7: r.ReadString(flexible); break;
                        case 8: r.ReadNullableBytes(flexible); break;
                        case 9: r.ReadBytes(flexible); break;
                        case 10: r.ReadArrayLength(flexible); break;
                        case 11: r.ReadUuid(); break;
                        case 12: TaggedFields.ReadUnknown(ref r); break;
                        default: r.ReadStringSpan(flexible, out _); break;
                    }
                }
            }), iter: 20_000);

    [Fact]
    public void RequestHeader_RandomBytes_ThrowOnlyProtocolException() =>
        Gen.Select(RandomFrame, Gen.Short[0, 2]).Sample((frame, headerVersion) =>
            OnlyProtocolErrors(() =>
            {
                var reader = new KafkaReader(frame.AsMemory());
                new RequestHeader().Read(ref reader, headerVersion);
            }), iter: 20_000);

    [Fact]
    public void RoutingReaders_RandomBytes_ThrowOnlyProtocolException() =>
        Gen.Select(RandomFrame, Gen.Short[0, 17]).Sample((frame, version) =>
        {
            OnlyProtocolErrors(() => new FetchRequestRouting(frame, version).ReadToEnd());
            if (version <= ProduceRequestRouting.MaxVersion)
            {
                OnlyProtocolErrors(() => new ProduceRequestRouting(frame, version).ReadToEnd());
            }
        }, iter: 20_000);

    [Fact]
    public void RecordBatchEnumerator_RandomBytes_ThrowOnlyProtocolException() =>
        Gen.Select(Gen.Byte.Array[0, 200], Gen.Bool).Sample((records, fetch) =>
            OnlyProtocolErrors(() =>
            {
                foreach (var entry in new RecordBatchEnumerator(records, fetch ? RecordsSource.Fetch : RecordsSource.Produce))
                {
                    if (entry.Kind == RecordBatchKind.RecordBatch)
                    {
                        CrcValidation.IsValid(entry.Header);
                    }
                }
            }), iter: 20_000);
}
