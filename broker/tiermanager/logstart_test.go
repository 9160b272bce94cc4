package tiermanager

import (
	"testing"
	"time"

	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// TestLocalLogStartFollowsTheQuorum: a replica that missed a DeleteRecords
// (down, or out of the ISR, when its leader moved the log start) and then
// leads holds records below the log start committed in the quorum. Its
// local log start moves up to the quorum's when its term starts and on
// every tier manager pass, never past its high watermark (as DeleteRecords
// never goes past it): no record below the log start is kept or served,
// and ListOffsets EARLIEST_LOCAL (-4) is never below EARLIEST.
func TestLocalLogStartFollowsTheQuorum(t *testing.T) {
	f := newFixture(t, 20, 2) // offsets 0..99, follower 2
	f.followerAt(2, 30)
	// An earlier leader, whose high watermark was further, committed 40.
	if _, err := f.store.SetLogStartOffset(f.ctx, f.topic.ID, 0, f.part.LeaderEpoch(), 40); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want int64) {
		t.Helper()
		starts := f.part.ReadLogStarts(f.store.State)
		if starts.Local != want || starts.Log != 40 {
			t.Fatalf("%s: local log start %d, log start %d; want %d and 40", when, starts.Local, starts.Log, want)
		}
	}

	// This replica's term starts: its local log start goes up to its
	// high watermark, short of the quorum's.
	topic, _ := f.store.State().TopicByID(f.topic.ID)
	if _, err := f.store.ChangePartition(f.ctx, metadata.PartitionChange{TopicID: f.topic.ID, Partition: 0,
		PartitionEpoch: topic.Partitions[0].PartitionEpoch, Leader: metadatatest.NodeID, ISR: topic.Partitions[0].ISR, BumpLeaderEpoch: true}); err != nil {
		t.Fatal(err)
	}
	topic, _ = f.store.State().TopicByID(f.topic.ID)
	f.part.ApplyAssignmentAfterRemote(topic.Partitions[0], time.Now(), f.store.State())
	check("at the start of the term, high watermark 30", 30)

	// The high watermark passes the quorum's log start: the next pass
	// moves the local one there.
	f.followerAt(2, 60)
	f.pass()
	check("after a pass, high watermark 60", 40)
}
