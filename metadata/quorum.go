package metadata

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// QuorumReplica is one member of the metadata quorum as its leader sees it
// (Kafka's DescribeQuorum: voters and observers).
type QuorumReplica struct {
	NodeID int32
	// Voter is false for an observer: a registered broker that follows
	// the log without a vote.
	Voter bool
	// LogEndOffset is the Raft index the replica last reported it had
	// applied (its own last index for the leader); -1 when unknown.
	LogEndOffset int64
	// LastFetchMillis is when the replica last heartbeated to the leader,
	// LastCaughtUpMillis when it last did so having applied everything
	// committed (Unix milliseconds; -1: unknown).
	LastFetchMillis    int64
	LastCaughtUpMillis int64
	// Address is a voter's controller address (host:port).
	Address string
}

// QuorumDescription is the metadata quorum as its leader sees it.
type QuorumDescription struct {
	LeaderID int32
	// LeaderEpoch is the Raft term.
	LeaderEpoch int64
	// HighWatermark is the Raft commit index.
	HighWatermark int64
	Voters        []QuorumReplica
	Observers     []QuorumReplica
}

// DescribeQuorum describes the quorum as its leader sees it: only the
// leader knows where each member is, so another node asks the leader
// (controller RPC 9). Members report their position with their broker
// heartbeats, so a voter that is not a registered broker has an unknown
// log end offset.
func (s *Store) DescribeQuorum(ctx context.Context) (QuorumDescription, error) {
	if !s.IsLeader() {
		response, err := s.forward(ctx, []byte{rpcDescribeQuorum})
		if err != nil {
			return QuorumDescription{}, err
		}
		return decodeQuorumDescription([]byte(response.message))
	}
	voters, err := s.Voters()
	if err != nil {
		return QuorumDescription{}, err
	}
	d := QuorumDescription{
		LeaderID:      s.config.NodeID,
		LeaderEpoch:   int64(s.raft.CurrentTerm()),
		HighWatermark: int64(s.raft.CommitIndex()),
	}
	c := s.controller
	c.mu.Lock()
	defer c.mu.Unlock()
	state := s.State()
	// Members report the applied index of their State, which only command
	// and configuration entries advance: the no-op of each new term and
	// barriers are committed without reaching it. A member is caught up
	// once it is where this leader's State is, not at the commit index,
	// which it would not reach while the last entries are of those kinds.
	caughtUp := int64(state.AppliedIndex())
	describe := func(id int32, voter bool) QuorumReplica {
		r := QuorumReplica{NodeID: id, Voter: voter, LogEndOffset: -1, LastFetchMillis: -1, LastCaughtUpMillis: -1}
		if id == s.config.NodeID {
			now := time.Now().UnixMilli()
			r.LogEndOffset, r.LastFetchMillis, r.LastCaughtUpMillis = int64(s.raft.LastIndex()), now, now
			return r
		}
		b, registered := state.Broker(id)
		if position, ok := c.applied[id]; ok && registered && position.brokerEpoch == b.Epoch {
			r.LogEndOffset = int64(position.index)
		}
		if seen, ok := c.lastSeen[id]; ok {
			r.LastFetchMillis = seen.UnixMilli()
			if r.LogEndOffset >= caughtUp {
				r.LastCaughtUpMillis = r.LastFetchMillis
			}
		}
		return r
	}
	isVoter := map[int32]bool{}
	for _, v := range voters {
		isVoter[v.NodeID] = v.Voting
		if v.Voting {
			r := describe(v.NodeID, true)
			r.Address = v.Address
			d.Voters = append(d.Voters, r)
		}
	}
	for _, b := range state.Brokers() {
		if !isVoter[b.ID] {
			d.Observers = append(d.Observers, describe(b.ID, false))
		}
	}
	slices.SortFunc(d.Voters, func(a, b QuorumReplica) int { return int(a.NodeID - b.NodeID) })
	return d, nil
}

// encodeQuorumDescription is the payload of controller RPC 9's answer
// (doc.go, "Controller RPCs"). Part of the format.
func encodeQuorumDescription(d QuorumDescription) []byte {
	e := encoder{}
	e.int32(d.LeaderID)
	e.int64(d.LeaderEpoch)
	e.int64(d.HighWatermark)
	for _, replicas := range [][]QuorumReplica{d.Voters, d.Observers} {
		e.uvarint(uint64(len(replicas)))
		for _, r := range replicas {
			e.int32(r.NodeID)
			e.int64(r.LogEndOffset)
			e.int64(r.LastFetchMillis)
			e.int64(r.LastCaughtUpMillis)
			e.string(r.Address)
		}
	}
	return e.buffer
}

// minimumQuorumReplicaSize is the fewest bytes an encoded replica takes.
const minimumQuorumReplicaSize = 4 + 3*8 + 1

func decodeQuorumDescription(data []byte) (QuorumDescription, error) {
	d := decoder{data: data}
	q := QuorumDescription{LeaderID: d.int32(), LeaderEpoch: d.int64(), HighWatermark: d.int64()}
	for i, voter := range []bool{true, false} {
		n := d.length(minimumQuorumReplicaSize)
		replicas := make([]QuorumReplica, 0, n)
		for range n {
			replicas = append(replicas, QuorumReplica{NodeID: d.int32(), Voter: voter, LogEndOffset: d.int64(),
				LastFetchMillis: d.int64(), LastCaughtUpMillis: d.int64(), Address: d.string()})
		}
		if i == 0 {
			q.Voters = replicas
		} else {
			q.Observers = replicas
		}
	}
	if err := d.finish(); err != nil {
		return QuorumDescription{}, fmt.Errorf("metadata: describe quorum answer: %w", err)
	}
	return q, nil
}
