package group

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestExpiryGoesOnPastAFailingGroup: an expiry pass whose tombstones of
// one group cannot be written must still expire the other groups' offsets
// (Kafka's GroupMetadataManager.cleanupGroupMetadata handles each group on
// its own), log the failing group, and expire it on the next pass. The
// pass stopped at the first failing group, so while that group kept
// failing no group sorted after it ever had its expired offsets removed.
func TestExpiryGoesOnPastAFailingGroup(t *testing.T) {
	log, clock := newMemLog(), newFakeClock()
	var logged bytes.Buffer
	sh, err := NewShard(ShardConfig{Partition: 3, Log: log, Coordinator: Config{Clock: clock, InitialRebalanceDelay: -1}, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sh.Close)
	sh.Load()
	c := sh.Coordinator()
	const retention = time.Hour
	for _, id := range []string{"a", "b"} {
		wantErr(t, "commit "+id, c.ValidateOffsetCommit(OffsetCommitRequest{GroupID: id, GenerationID: -1}), nil)
		if err := sh.CommitOffsets(standalone(id), map[TopicPartition]CommittedOffset{tp("t", 0): {Offset: 7, Timestamp: clock.Now().UnixMilli()}}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * retention)

	// Group "a" (listed first) cannot have its tombstones written.
	sh.beforeExpiring = func(id string) {
		log.set(func(l *memLog) {
			l.fail = nil
			if id == "a" {
				l.fail = kerr.KafkaStorageError
			}
		})
	}
	offsets, _, err := sh.ExpireOffsets(clock.Now(), retention, func(TopicPartition) bool { return true })
	wantErr(t, "first pass", err, kerr.KafkaStorageError)
	if offsets != 1 {
		t.Errorf("first pass expired %d offsets, want 1 (group b's)", offsets)
	}
	wantOffset(t, sh, "a", tp("t", 0), 7)
	wantOffset(t, sh, "b", tp("t", 0), -1)
	if out := logged.String(); !strings.Contains(out, "group=a") || !strings.Contains(out, kerr.KafkaStorageError.Message) {
		t.Errorf("log of the first pass does not name the failing group and its error:\n%s", out)
	}

	// The next pass, once the write succeeds, expires group "a".
	sh.beforeExpiring = nil
	log.set(func(l *memLog) { l.fail = nil })
	if _, _, err := sh.ExpireOffsets(clock.Now(), retention, func(TopicPartition) bool { return true }); err != nil {
		t.Fatalf("second pass: %v", err)
	}
	for _, s := range []*Shard{sh, loadedShard(t, log, clock)} {
		wantOffset(t, s, "a", tp("t", 0), -1)
		wantOffset(t, s, "b", tp("t", 0), -1)
	}
}
