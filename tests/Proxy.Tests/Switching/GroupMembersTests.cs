using Switchback.Proxy.Switching;
using Xunit;

namespace Switchback.Proxy.Tests.Switching;

/// <summary>What the proxy keeps of each group's members per cluster, from the coordinators' answers it relays.</summary>
public sealed class GroupMembersTests
{
    [Fact]
    public void ClassicJoin_NotesTheMemberPerCluster_AndTheLeadersListReplacesWhatWasKnown()
    {
        var members = new GroupMembers();
        members.ClassicJoined("source", "g", "a", null, 1, "range", null);
        members.ClassicJoined("source", "g", "b", "instance-b", 1, "range", null);
        members.ClassicJoined("target", "g", "c", null, 1, "range", null);

        Assert.Equal(["a", "b"], members.On("source", "g").Select(m => m.MemberId).Order());
        Assert.Equal("instance-b", members.On("source", "g").Single(m => m.MemberId == "b").InstanceId);
        Assert.Equal(["c"], members.On("target", "g").Select(m => m.MemberId));
        Assert.Equal((GroupProtocol.Classic, "range"), (members.ProtocolOf("g"), members.ClassicProtocolNameOf("g")));

        // Generation 2 on source: its leader is told the whole membership, and "a" is no longer in it.
        members.ClassicJoined("source", "g", "b", "instance-b", 2, "roundrobin", [("b", "instance-b"), ("d", null)]);

        Assert.Equal([("b", 2), ("d", 2)], members.On("source", "g").Select(m => (m.MemberId, m.Generation)).Order());
        Assert.Equal(["c"], members.On("target", "g").Select(m => m.MemberId));
        Assert.Equal("roundrobin", members.ClassicProtocolNameOf("g"));
    }

    [Fact]
    public void ConsumerHeartbeats_KeepTheLatestEpoch_AndTheInstanceIdLaterHeartbeatsLeaveOut()
    {
        var members = new GroupMembers();
        members.ConsumerHeartbeat("target", "g", "m", "instance-m", 3);
        members.ConsumerHeartbeat("target", "g", "m", null, 5);

        var member = Assert.Single(members.On("target", "g"));
        Assert.Equal(new GroupMember("m", "instance-m", 5, GroupProtocol.Consumer), member);
        Assert.Equal(GroupProtocol.Consumer, members.ProtocolOf("g"));

        members.Gone("target", "g", ["m"]);
        Assert.Empty(members.On("target", "g"));
    }

    [Fact]
    public void UnknownGroup_HasNoMembersAndNoProtocol()
    {
        var members = new GroupMembers();
        Assert.Empty(members.On("source", "nobody"));
        Assert.Equal(GroupProtocol.Unknown, members.ProtocolOf("nobody"));
        Assert.Null(members.ClassicProtocolNameOf("nobody"));
    }

    [Fact]
    public void MembersOfOneGroup_AreBounded()
    {
        var members = new GroupMembers();
        for (var i = 0; i < GroupMembers.MaxMembersPerGroup + 10; i++)
        {
            members.ConsumerHeartbeat("source", "g", $"m{i}", null, 1);
        }
        Assert.Equal(GroupMembers.MaxMembersPerGroup, members.On("source", "g").Count);

        // A known member is still refreshed at the bound.
        members.ConsumerHeartbeat("source", "g", "m0", null, 7);
        Assert.Equal(7, members.On("source", "g").Single(m => m.MemberId == "m0").Generation);
    }

    [Fact]
    public void MembersAReadSwitchMoved_AreMovedUntilTheyAreMembersOfTheClusterAsked_OthersNever()
    {
        var members = new GroupMembers();
        members.ClassicJoined("source", "g", "a", null, 4, "range", null);
        members.ClassicJoined("source", "other", "x", null, 1, "range", null);
        Assert.False(members.IsMovedMember("g", "a", 4, "target"));

        members.ReadsMovedAway("source", ["g"]);
        members.Gone("source", "g", ["a"]); // the switch removed it from the old group

        // Named on either cluster, its membership is one the switch moved; a member of a group that did not move is not.
        Assert.True(members.IsMovedMember("g", "a", 4, "target"));
        Assert.True(members.IsMovedMember("g", "a", 4, "source"));
        Assert.False(members.IsMovedMember("other", "x", 1, "target"));
        Assert.False(members.IsMovedMember("g", "unknown", 4, "target"));

        // The same id admitted on the cluster asked (KIP-848 members keep theirs): at its generation there it is the
        // current membership; at the one it had before the move it is still the moved one.
        members.ConsumerHeartbeat("target", "g", "a", null, 1);
        Assert.False(members.IsMovedMember("g", "a", 1, "target"));
        Assert.True(members.IsMovedMember("g", "a", 4, "target"));
        Assert.True(members.IsMovedMember("g", "a", 1, "source"));
    }

    [Fact]
    public void AGenerationOfAMovedMembership_NamedWithoutAMemberId_IsMoved_UnlessAMemberHasItOnTheClusterAsked()
    {
        var members = new GroupMembers();
        members.ClassicJoined("target", "g", "a", null, 2, "range", null);
        members.ClassicJoined("source", "g", "b", null, 1, "range", null);
        Assert.False(members.IsMovedGeneration("g", 2, "source"));

        // A rollback moves the group's reads away from target; its client, rejoining, has dropped its member id but
        // still names generation 2, which means nothing on source.
        members.ReadsMovedAway("target", ["g"]);
        Assert.True(members.IsMovedGeneration("g", 2, "source"));
        Assert.False(members.IsMovedGeneration("g", 1, "source")); // never a moved generation
        Assert.False(members.IsMovedGeneration("g", -1, "source"));
        Assert.False(members.IsMovedGeneration("other", 2, "source"));

        // Once a member of the group on source has generation 2, a commit naming it is that membership's.
        members.ClassicJoined("source", "g", "c", null, 2, "range", null);
        Assert.False(members.IsMovedGeneration("g", 2, "source"));
        Assert.True(members.IsMovedGeneration("g", 2, "elsewhere"));
    }
}
