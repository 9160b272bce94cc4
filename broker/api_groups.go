package broker

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/group"
)

// Group membership APIs of the classic rebalance protocol, served by the
// coordinator shard of each group's __consumer_offsets partition (see
// groups.go). ConsumerGroupHeartbeat (KIP-848) is not served.
func init() {
	register(0, 9, handleJoinGroup)
	register(0, 5, handleSyncGroup)
	register(0, 4, handleHeartbeat)
	register(0, 5, handleLeaveGroup)
	register(0, 5, handleDescribeGroups)
	register(0, 4, handleListGroups)
	register(0, 2, handleDeleteGroups)
}

func strPtr(s string) *string { return &s }

func nonEmptyPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// clientHost is a group member's client host as Kafka shows it: "/IP".
func clientHost(c *clientConn) string {
	if ip, ok := c.remoteIP(); ok {
		return "/" + ip
	}
	return c.nc.RemoteAddr().String()
}

func handleJoinGroup(c *clientConn, h requestHeader, req *kmsg.JoinGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	answer := func(res group.JoinResult) kmsg.Response {
		resp.ErrorCode = group.ErrorCode(res.Err)
		resp.Generation = res.GenerationID
		resp.MemberID = res.MemberID
		resp.LeaderID = res.LeaderID
		resp.SkipAssignment = res.SkipAssignment
		if res.Err == nil {
			resp.ProtocolType = strPtr(res.ProtocolType)
			resp.Protocol = strPtr(res.ProtocolName)
		}
		for _, m := range res.Members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID = m.MemberID
			rm.InstanceID = nonEmptyPtr(m.GroupInstanceID)
			rm.ProtocolMetadata = m.Metadata
			resp.Members = append(resp.Members, rm)
		}
		return resp
	}
	if !c.authorized(authz.OpRead, authz.ResourceGroup, req.Group) {
		return answer(group.JoinResult{Err: kerr.GroupAuthorizationFailed, MemberID: req.MemberID, GenerationID: -1}), nil
	}
	sh, kerrCode := c.server.groups.ShardFor(req.Group)
	if kerrCode != nil {
		return answer(group.JoinResult{Err: kerrCode, MemberID: req.MemberID, GenerationID: -1}), nil
	}
	jr := group.JoinRequest{
		GroupID:                req.Group,
		MemberID:               req.MemberID,
		GroupInstanceID:        deref(req.InstanceID),
		ClientID:               h.clientID,
		ClientHost:             clientHost(c),
		ProtocolType:           req.ProtocolType,
		SessionTimeout:         time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RequireKnownMemberID:   req.Version >= 4,
		SupportsSkipAssignment: req.Version >= 9,
	}
	if req.Version >= 1 {
		jr.RebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	// The join waits for the rebalance (the initial delay, the other
	// members' joins, up to the rebalance timeout the client chose): as a
	// Produce waiting for acks=all, it gives its request memory (the frame
	// and its element charge) back first, so that a waiting join does not
	// keep other connections' requests from being read.
	c.releaseRequestMemory()
	done := make(chan group.JoinResult, 1)
	sh.Coordinator().Join(jr, func(res group.JoinResult) { done <- res })
	select {
	case res := <-done:
		return answer(res), nil
	case <-c.server.ctx.Done():
		return answer(group.JoinResult{Err: kerr.NotCoordinator, MemberID: req.MemberID, GenerationID: -1}), nil
	}
}

func handleSyncGroup(c *clientConn, h requestHeader, req *kmsg.SyncGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	answer := func(res group.SyncResult) kmsg.Response {
		resp.ErrorCode = group.ErrorCode(res.Err)
		if res.Err == nil {
			resp.ProtocolType = strPtr(res.ProtocolType)
			resp.Protocol = strPtr(res.ProtocolName)
			resp.MemberAssignment = res.Assignment
		}
		if resp.MemberAssignment == nil {
			resp.MemberAssignment = []byte{}
		}
		return resp
	}
	if !c.authorized(authz.OpRead, authz.ResourceGroup, req.Group) {
		return answer(group.SyncResult{Err: kerr.GroupAuthorizationFailed}), nil
	}
	sh, kerrCode := c.server.groups.ShardFor(req.Group)
	if kerrCode != nil {
		return answer(group.SyncResult{Err: kerrCode}), nil
	}
	sr := group.SyncRequest{
		GroupID:         req.Group,
		GenerationID:    req.Generation,
		MemberID:        req.MemberID,
		GroupInstanceID: deref(req.InstanceID),
		ProtocolType:    deref(req.ProtocolType),
		ProtocolName:    deref(req.Protocol),
	}
	for _, a := range req.GroupAssignment {
		sr.Assignments = append(sr.Assignments, group.MemberAssignment{MemberID: a.MemberID, Assignment: a.MemberAssignment})
	}
	// A follower's sync waits for the leader's assignment: its request
	// memory is given back first, as a join's is.
	c.releaseRequestMemory()
	done := make(chan group.SyncResult, 1)
	sh.Coordinator().Sync(sr, func(res group.SyncResult) { done <- res })
	select {
	case res := <-done:
		return answer(res), nil
	case <-c.server.ctx.Done():
		return answer(group.SyncResult{Err: kerr.NotCoordinator}), nil
	}
}

func handleHeartbeat(c *clientConn, h requestHeader, req *kmsg.HeartbeatRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if !c.authorized(authz.OpRead, authz.ResourceGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	sh, kerrCode := c.server.groups.ShardFor(req.Group)
	if kerrCode == kerr.CoordinatorLoadInProgress {
		// As Kafka's GroupCoordinator.handleHeartbeat: the group is still
		// being loaded, so its members cannot be checked; answer NONE
		// blindly rather than an error that makes a Java consumer mark
		// the coordinator unknown and look it up again at every
		// heartbeat while a large partition loads. The load restores each
		// member with a fresh session timeout anyway.
		return resp, nil
	}
	if kerrCode != nil {
		resp.ErrorCode = kerrCode.Code
		return resp, nil
	}
	resp.ErrorCode = group.ErrorCode(sh.Coordinator().Heartbeat(group.HeartbeatRequest{
		GroupID:         req.Group,
		GenerationID:    req.Generation,
		MemberID:        req.MemberID,
		GroupInstanceID: deref(req.InstanceID),
	}))
	return resp, nil
}

func handleLeaveGroup(c *clientConn, h requestHeader, req *kmsg.LeaveGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if !c.authorized(authz.OpRead, authz.ResourceGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	sh, kerrCode := c.server.groups.ShardFor(req.Group)
	if kerrCode != nil {
		resp.ErrorCode = kerrCode.Code
		return resp, nil
	}
	var members []group.LeaveMember
	if req.Version < 3 {
		members = []group.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			members = append(members, group.LeaveMember{MemberID: m.MemberID, GroupInstanceID: deref(m.InstanceID)})
		}
	}
	res := sh.Coordinator().Leave(req.Group, members)
	if res.Err != nil {
		resp.ErrorCode = group.ErrorCode(res.Err)
		return resp, nil
	}
	if req.Version < 3 {
		// v0-v2: one member, its error at the top level.
		if len(res.Members) > 0 {
			resp.ErrorCode = group.ErrorCode(res.Members[0].Err)
		}
		return resp, nil
	}
	for _, m := range res.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID = m.MemberID
		rm.InstanceID = nonEmptyPtr(m.GroupInstanceID)
		rm.ErrorCode = group.ErrorCode(m.Err)
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}

func handleDescribeGroups(c *clientConn, h requestHeader, req *kmsg.DescribeGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	resp.Groups = make([]kmsg.DescribeGroupsResponseGroup, 0, len(req.Groups)) // one per request entry: no regrowth
	for _, id := range req.Groups {
		g := kmsg.NewDescribeGroupsResponseGroup()
		g.Group = id
		if !c.authorized(authz.OpDescribe, authz.ResourceGroup, id) {
			g.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, g)
			continue
		}
		sh, kerrCode := c.server.groups.ShardFor(id)
		if kerrCode != nil {
			g.ErrorCode = kerrCode.Code
			g.State = group.StateDead.String()
			resp.Groups = append(resp.Groups, g)
			continue
		}
		d, err := sh.Coordinator().Describe(id)
		// Before v6 Kafka describes an unknown group as Dead without error.
		if err != nil && group.ErrorCode(err) != kerr.GroupIDNotFound.Code {
			g.ErrorCode = group.ErrorCode(err)
		}
		g.State = d.State.String()
		g.ProtocolType = d.ProtocolType
		g.Protocol = d.Protocol
		for _, m := range d.Members {
			gm := kmsg.NewDescribeGroupsResponseGroupMember()
			gm.MemberID = m.MemberID
			gm.InstanceID = nonEmptyPtr(m.GroupInstanceID)
			gm.ClientID = m.ClientID
			gm.ClientHost = m.ClientHost
			gm.ProtocolMetadata = m.Metadata
			if gm.ProtocolMetadata == nil {
				gm.ProtocolMetadata = []byte{}
			}
			gm.MemberAssignment = m.Assignment
			if gm.MemberAssignment == nil {
				gm.MemberAssignment = []byte{}
			}
			g.Members = append(g.Members, gm)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}

func handleListGroups(c *clientConn, h requestHeader, req *kmsg.ListGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	var states []group.State
	if req.Version >= 4 {
		for _, name := range req.StatesFilter {
			st, ok := group.ParseState(name)
			if !ok {
				// Kafka: an unknown state matches no group.
				continue
			}
			states = append(states, st)
		}
		if len(req.StatesFilter) > 0 && len(states) == 0 {
			return resp, nil
		}
	}
	shards, allLoaded := c.server.groups.Shards()
	if !allLoaded {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	}
	// Kafka: every group with DESCRIBE on the cluster, else the groups
	// the client may DESCRIBE.
	all := c.authorizedCluster(authz.OpDescribe)
	for _, sh := range shards {
		for _, l := range sh.Coordinator().List(states...) {
			if !all && !c.authorized(authz.OpDescribe, authz.ResourceGroup, l.GroupID) {
				continue
			}
			g := kmsg.NewListGroupsResponseGroup()
			g.Group = l.GroupID
			g.ProtocolType = l.ProtocolType
			g.GroupState = l.State.String()
			resp.Groups = append(resp.Groups, g)
		}
	}
	return resp, nil
}

func handleDeleteGroups(c *clientConn, h requestHeader, req *kmsg.DeleteGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	resp.Groups = make([]kmsg.DeleteGroupsResponseGroup, 0, len(req.Groups)) // one per request entry: no regrowth
	for _, id := range req.Groups {
		g := kmsg.NewDeleteGroupsResponseGroup()
		g.Group = id
		sh, kerrCode := c.server.groups.ShardFor(id)
		switch {
		case !c.authorized(authz.OpDelete, authz.ResourceGroup, id):
			g.ErrorCode = kerr.GroupAuthorizationFailed.Code
		case kerrCode != nil:
			g.ErrorCode = kerrCode.Code
		case id == "":
			g.ErrorCode = kerr.InvalidGroupID.Code
		default:
			if err := sh.DeleteGroup(id); err != nil {
				g.ErrorCode = group.ErrorCode(err)
				break
			}
			c.log.Info("deleted group", "group", id)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}
