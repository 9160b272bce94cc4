package group

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestExpiryDeletesEmptyGroupsWithoutOffsets: as Kafka's offset cleanup
// does (GroupMetadataManager.cleanupGroupMetadata: an Empty group without
// offsets transitions to Dead and its metadata is tombstoned), a group
// that is Empty and has no committed offsets is deleted by an expiry
// pass: one whose members all left without committing, and one a
// standalone consumer's OffsetCommit created (generation -1) whose commit
// was then refused. Without it such groups live for ever, in memory, in
// ListGroups and, through their metadata record, across every reload.
func TestExpiryDeletesEmptyGroupsWithoutOffsets(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	c := sh.Coordinator()

	// A consumer joins, syncs and leaves without committing.
	j := &call[JoinResult]{t: t}
	c.Join(joinReq("left", ""), j.done)
	jr := j.result()
	wantErr(t, "join", jr.Err, nil)
	s := &call[SyncResult]{t: t}
	c.Sync(SyncRequest{GroupID: "left", GenerationID: jr.GenerationID, MemberID: jr.MemberID}, s.done)
	wantErr(t, "sync", s.result().Err, nil)
	if res := c.Leave("left", []LeaveMember{{MemberID: jr.MemberID}}); res.Err != nil || res.Members[0].Err != nil {
		t.Fatalf("leave: %+v", res)
	}
	// A standalone consumer's commit creates a group; its partitions are
	// then refused (unknown topic), so nothing is committed.
	wantErr(t, "standalone commit", c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "standalone", GenerationID: -1}), nil)
	// A group with offsets, to show what is kept.
	wantErr(t, "kept commit", c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: "kept", GenerationID: -1}), nil)
	if err := sh.CommitOffsets(standalone("kept"), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 1, Timestamp: clock.Now().UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"left", "standalone", "kept"} {
		if d, err := c.Describe(id); err != nil || d.State != StateEmpty {
			t.Fatalf("%s before expiry: %+v %v, want Empty", id, d, err)
		}
	}

	_, groups, err := sh.ExpireOffsets(clock.Now(), time.Hour, func(TopicPartition) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"left", "standalone"} {
		if _, err := c.Describe(id); !errors.Is(err, kerr.GroupIDNotFound) {
			t.Errorf("Empty group %s without offsets after an expiry pass: %v, want it deleted", id, err)
		}
	}
	if groups != 2 {
		t.Errorf("expiry deleted %d groups, want 2", groups)
	}
	if d, err := c.Describe("kept"); err != nil || d.State != StateEmpty {
		t.Fatalf("group with a recent offset after expiry: %+v %v, want kept", d, err)
	}
	// And they stay deleted after the partition is loaded again.
	again := loadedShard(t, log, clock)
	if _, err := again.Coordinator().Describe("left"); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("deleted group back after a reload: %v", err)
	}
	if _, err := again.Coordinator().Describe("kept"); err != nil {
		t.Errorf("kept group after a reload: %v", err)
	}
}
