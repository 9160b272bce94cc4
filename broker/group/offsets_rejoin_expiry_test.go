package group

import (
	"testing"
	"time"
)

// TestExpiryKeepsCommitOfRejoinedGroup: a consumer group has been Empty
// for longer than offsets.retention.minutes when an expiry pass starts;
// before the pass gets to it, a consumer rejoins (the group is Stable
// again) and commits. Kafka decides a group's expiry under the group's
// lock, from its state then: a Stable group's offsets are kept. Strata's
// pass described every group first and decided later, without the
// group's lock, so the fresh commit was tombstoned as one of an Empty
// group's: acknowledged, then gone at once and after a reload (the
// consumer re-consumes from auto.offset.reset on its next start or
// rebalance).
//
// The interleaving is forced with the shard's hook between the pass
// listing the group and looking at its offsets.
func TestExpiryKeepsCommitOfRejoinedGroup(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	sh := loadedShard(t, log, clock)
	c := sh.Coordinator()
	const retention = time.Hour

	member, _, err := reformGroup(sh, "g", 10)
	if err != nil {
		t.Fatalf("forming the group: %v", err)
	}
	if res := c.Leave("g", []LeaveMember{{MemberID: member}}); res.Err != nil || res.Members[0].Err != nil {
		t.Fatalf("leave: %+v", res)
	}
	clock.Advance(2 * retention)

	var rejoined string
	var rejoinErr error
	sh.beforeExpiring = func(id string) {
		if id == "g" && rejoined == "" && rejoinErr == nil {
			rejoined, _, rejoinErr = reformGroup(sh, "g", 42)
		}
	}
	if _, _, err := sh.ExpireOffsets(clock.Now(), retention, func(TopicPartition) bool { return true }); err != nil {
		t.Fatalf("expiry: %v", err)
	}
	if rejoinErr != nil || rejoined == "" {
		t.Fatalf("rejoining during the expiry pass: %q %v", rejoined, rejoinErr)
	}
	for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
		wantOffset(t, s, "g", tp("t", 0), 42)
	}
	if d, err := c.Describe("g"); err != nil || d.State != StateStable || len(d.Members) != 1 || d.Members[0].MemberID != rejoined {
		t.Fatalf("group after expiry: %+v %v, want Stable with member %s", d, err, rejoined)
	}
}
