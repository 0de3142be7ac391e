using Switchback.Protocol.Messages;
using Switchback.Protocol.Records;
using Switchback.Protocol.Tests.Captures;

namespace Switchback.Protocol.Tests.Records;

/// <summary>The batch enumerator over the records of Fetch responses served to real clients.</summary>
public class CapturedFetchResponseTests
{
    public static TheoryData<string> Clients => [.. CaptureFile.Clients];

    [Theory]
    [MemberData(nameof(Clients))]
    public void Enumerator_FetchResponseRecords_WalksBatchesWithValidCrcs(string client)
    {
        var batches = 0;
        foreach (var frame in CaptureFile.Load(client).Where(f =>
                     f.Direction == CaptureDirection.Response && f.ApiKey == (short)ApiKey.Fetch && f.ApiVersion >= 0))
        {
            var reader = new KafkaReader(frame.Bytes.AsMemory());
            default(ResponseHeader).Read(ref reader, frame.ApiVersion >= 12 ? (short)1 : (short)0);
            var response = new FetchResponse();
            response.Read(ref reader, frame.ApiVersion);
            foreach (var topic in response.Responses)
            {
                foreach (var partition in topic.Partitions)
                {
                    if (partition.Records is not { } records)
                    {
                        continue;
                    }
                    var walked = 0;
                    foreach (var entry in new RecordBatchEnumerator(records, RecordsSource.Fetch))
                    {
                        Assert.Equal(walked, entry.Offset);
                        walked += entry.Length;
                        if (entry.Kind != RecordBatchKind.RecordBatch)
                        {
                            continue;
                        }
                        var header = entry.Header;
                        Assert.Equal(Crc32CReference.Compute(entry.Memory.Span[RecordBatchLayout.CrcStart..]), header.ComputeCrc());
                        if (header.IsControl && header.Crc == 0)
                        {
                            // The librdkafka mock cluster writes its transaction markers without a CRC; a broker
                            // would not, so only data batches are required to validate.
                            continue;
                        }
                        Assert.True(CrcValidation.IsValid(header), $"{frame}: CRC mismatch");
                        batches++;
                    }
                    Assert.Equal(records.Length, walked);
                }
            }
        }
        Assert.True(batches > 0, $"{client}: no magic-2 batch in a captured Fetch response");
    }
}
