namespace Switchback.Proxy;

/// <summary>The <c>switchback</c> executable.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("switchback: not yet implemented");
        return 1;
    }
}
