package group

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// reformGroup is a consumer re-forming a group: it joins, syncs as the
// leader and commits offset, starting over (as a client does) while the
// coordinator answers COORDINATOR_NOT_AVAILABLE (the group it found was
// being deleted). It returns the member id and generation it ended with.
func reformGroup(sh *Shard, groupID string, offset int64) (string, int32, error) {
	c := sh.Coordinator()
	var last error
	for range 1000 {
		joined := make(chan JoinResult, 1)
		c.Join(joinReq(groupID, ""), func(r JoinResult) { joined <- r })
		jr := <-joined
		if jr.Err != nil {
			last = fmt.Errorf("join: %w", jr.Err)
			if errors.Is(jr.Err, kerr.CoordinatorNotAvailable) {
				time.Sleep(time.Millisecond)
				continue
			}
			return "", 0, last
		}
		synced := make(chan SyncResult, 1)
		c.Sync(SyncRequest{GroupID: groupID, GenerationID: jr.GenerationID, MemberID: jr.MemberID,
			Assignments: []MemberAssignment{{MemberID: jr.MemberID, Assignment: []byte("a")}}}, func(r SyncResult) { synced <- r })
		if err := (<-synced).Err; err != nil {
			return "", 0, fmt.Errorf("sync: %w", err)
		}
		member := OffsetCommitRequest{GroupID: groupID, GenerationID: jr.GenerationID, MemberID: jr.MemberID}
		if err := c.ValidateOffsetCommit(member); err != nil {
			return "", 0, fmt.Errorf("commit: %w", err)
		}
		if err := sh.CommitOffsets(member, map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: offset, LeaderEpoch: -1}}); err != nil {
			return "", 0, fmt.Errorf("commit write: %w", err)
		}
		return jr.MemberID, jr.GenerationID, nil
	}
	return "", 0, last
}

// TestGroupReformedWhileBeingDeletedKeepsItsData: a group is deleted
// (DeleteGroups, or offset expiry deleting an Empty group without
// offsets) while a consumer re-forms it: joins, syncs and commits. Kafka
// deletes a group and tombstones its data under the group's lock, so the
// consumer either finds the old group (Dead: it retries) or forms a new
// one after the tombstones. Strata's coordinator forgot the group
// (Coordinator.Delete) before the tombstones were written
// (Shard.DeleteGroupData), and a consumer that re-formed the group in
// between had its group metadata and its acknowledged commit tombstoned
// afterwards: a live Stable group with a member, whose committed offset
// was gone at once, and which itself was gone after the next coordinator
// load (the member fenced, the consumer reset to auto.offset.reset).
//
// The interleaving is forced with the shard's hook right before the
// tombstones are written: if the coordinator no longer has the group
// there, the consumer re-forms it in that window (it blocks on nothing);
// if it still has it (under its lock, being deleted), the consumer runs
// concurrently, waits for the deletion and retries.
func TestGroupReformedWhileBeingDeletedKeepsItsData(t *testing.T) {
	for _, how := range []string{"DeleteGroups", "expiry"} {
		t.Run(how, func(t *testing.T) {
			log, clock := newMemLog(), newFakeClock()
			sh := loadedShard(t, log, clock)
			c := sh.Coordinator()
			// An Empty group without offsets: a standalone consumer's
			// commit created it, its partitions were refused.
			wantErr(t, "standalone commit", c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "g", GenerationID: -1}), nil)

			type reformed struct {
				member     string
				generation int32
				err        error
			}
			result := make(chan reformed, 1)
			fired, waited := false, false
			sh.beforeTombstones = func(id string) {
				if id != "g" || fired {
					return
				}
				fired = true
				c.mu.Lock()
				_, present := c.groups[id]
				c.mu.Unlock()
				go func() {
					m, gen, err := reformGroup(sh, "g", 77)
					result <- reformed{m, gen, err}
				}()
				if !present {
					// The window is open: nothing stops the consumer.
					waited = true
					r := <-result
					result <- r
				}
			}
			switch how {
			case "DeleteGroups":
				wantErr(t, "delete", sh.DeleteGroup("g"), nil)
			case "expiry":
				if _, groups, err := sh.ExpireOffsets(clock.Now(), time.Hour, func(TopicPartition) bool { return true }); err != nil || groups != 1 {
					t.Fatalf("expiry: %d groups deleted, %v; want 1", groups, err)
				}
			}
			if !fired {
				t.Fatal("the group's tombstones were not written")
			}
			r := <-result
			if r.err != nil {
				t.Fatalf("re-forming the group: %v", r.err)
			}
			t.Logf("consumer re-formed the group in the window: %v", waited)

			check := func(what string, s *Shard) {
				t.Helper()
				d, err := s.Coordinator().Describe("g")
				if err != nil || d.State != StateStable || len(d.Members) != 1 || d.Members[0].MemberID != r.member {
					t.Fatalf("%s: group %+v %v, want Stable with member %s", what, d, err, r.member)
				}
				wantOffset(t, s, "g", tp("t", 0), 77)
				wantErr(t, what+": heartbeat", s.Coordinator().Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: r.member, GenerationID: r.generation}), nil)
			}
			check("live", sh)
			check("after a reload", loadedShard(t, log, clock))
		})
	}
}

// TestCommitValidatedBeforeGroupDeletionIsNotOrphaned: an OffsetCommit is
// validated (handleOffsetCommit: ValidateOffsetCommit), the group is then
// deleted (DeleteGroups) and only then is the commit written
// (Shard.CommitOffsets). Kafka validates and stores a commit under the
// group's lock, so this cannot happen there. In Strata the commit was
// written for a group the coordinator no longer had: its offsets were
// served by OffsetFetch but never expired (expiry only expires offsets of
// groups it can describe), and DeleteGroups answered GROUP_ID_NOT_FOUND,
// so nothing could remove them until a coordinator reload.
func TestCommitValidatedBeforeGroupDeletionIsNotOrphaned(t *testing.T) {
	for _, then := range []string{"expired", "deleted"} {
		t.Run(then, func(t *testing.T) {
			log, clock := newMemLog(), newFakeClock()
			sh := loadedShard(t, log, clock)
			c := sh.Coordinator()
			wantErr(t, "standalone commit", c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "g", GenerationID: -1}), nil)
			wantErr(t, "delete", sh.DeleteGroup("g"), nil)
			if err := sh.CommitOffsets(standalone("g"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 5, LeaderEpoch: -1, Timestamp: clock.Now().UnixMilli()}}); err != nil {
				t.Fatalf("commit write: %v", err)
			}
			wantOffset(t, sh, "g", tp("t", 0), 5)

			switch then {
			case "expired":
				clock.Advance(2 * time.Hour)
				if _, _, err := sh.ExpireOffsets(clock.Now(), time.Hour, func(TopicPartition) bool { return true }); err != nil {
					t.Fatal(err)
				}
			case "deleted":
				wantErr(t, "delete after the commit", sh.DeleteGroup("g"), nil)
			}
			wantOffset(t, sh, "g", tp("t", 0), -1)
			wantOffset(t, loadedShard(t, log, clock), "g", tp("t", 0), -1)
		})
	}
}
