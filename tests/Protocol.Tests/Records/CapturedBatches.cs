namespace Switchback.Protocol.Tests.Records;

/// <summary>Record batches as written by a Kafka 0.11 broker (bytes and CRCs produced outside this codebase).</summary>
internal static class CapturedBatches
{
    /// <summary>One record, value "123", base offset 0, leader epoch 1, CRC 0x0318A270.</summary>
    public static byte[] SingleRecord => Convert.FromHexString(
        "00000000000000000000003B00000001020318A2700000000000000000015DFF7B063C0000015DFF7B063C" +
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFF0000000112000000010631323300");

    /// <summary>Two records with empty values, base offset 1, leader epoch 2, CRC 0xC85CBD23.</summary>
    public static byte[] TwoRecords => Convert.FromHexString(
        "0000000000000001000000400000000202C85CBD230000000000010000015DFF7CDD6C0000015DFF7CDE14" +
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFF000000020C0000000100000E00D00202010000");

    public static byte[] Both => [.. SingleRecord, .. TwoRecords];
}
