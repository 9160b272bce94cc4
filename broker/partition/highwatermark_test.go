package partition

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestHighWatermarkCheckpoint: the checkpoint's format is pinned (Kafka's
// replication-offset-checkpoint text with one entry); a replica reopened
// after a clean stop, or after a crash past the last periodic checkpoint,
// starts its high watermark there — not at the log start — within the
// recovered log; a truncation that lowers it is checkpointed at once; a
// checkpoint that does not parse or names another partition is ignored.
func TestHighWatermarkCheckpoint(t *testing.T) {
	if got := string(encodeHighWatermarkCheckpoint("orders", 3, 1234)); got != "0\n1\norders 3 1234\n" {
		t.Fatalf("checkpoint %q", got)
	}
	dir := t.TempDir()
	leader := replica(t, dir, 1, nil)
	leader.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
	for range 3 {
		mustAppend(t, leader, batch(t, recordbatch.BuildOptions{}, "a", 2))
	}
	if _, err := leader.FollowerFetched(2, 4, t0); err != nil {
		t.Fatal(err)
	}
	if leader.HighWatermark() != 4 {
		t.Fatalf("high watermark %d, want 4", leader.HighWatermark())
	}
	// The periodic checkpoint, then more progress a crash loses.
	leader.Maintain(t0, Maintenance{CheckpointHighWatermark: true})
	data, err := os.ReadFile(filepath.Join(dir, highWatermarkCheckpoint))
	if err != nil || string(data) != "0\n1\norders 0 4\n" {
		t.Fatalf("checkpoint %q (%v)", data, err)
	}
	if _, err := leader.FollowerFetched(2, 6, t0); err != nil {
		t.Fatal(err)
	}
	// A copy of the directory now is what a crash leaves.
	crashDir := filepath.Join(t.TempDir(), "orders-0")
	if err := os.CopyFS(crashDir, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	crashed := replica(t, crashDir, 1, nil)
	if crashed.HighWatermark() != 4 {
		t.Fatalf("after a crash: high watermark %d, want the checkpointed 4", crashed.HighWatermark())
	}
	crashed.Close()
	// A clean stop checkpoints the latest.
	leader.Close()
	reopened := replica(t, dir, 1, nil)
	if reopened.HighWatermark() != 6 {
		t.Fatalf("after a clean stop: high watermark %d, want 6", reopened.HighWatermark())
	}
	// A follower's truncation below it is checkpointed at once.
	reopened.ApplyAssignment(assignment(2, 2, []int32{1, 2}, []int32{2}), t0)
	if err := reopened.TruncateTo(2); err != nil {
		t.Fatal(err)
	}
	if hw, ok := readHighWatermarkCheckpoint(dir, "orders", 0); !ok || hw != 2 {
		t.Fatalf("checkpoint after truncation: %d (%v), want 2", hw, ok)
	}
	reopened.Close()
	// Past the recovered log end (a lost tail), it is cut to the end.
	os.WriteFile(filepath.Join(dir, highWatermarkCheckpoint), encodeHighWatermarkCheckpoint("orders", 0, 100), 0o644)
	if cut := replica(t, dir, 1, nil); cut.HighWatermark() != 2 {
		t.Fatalf("checkpoint past the log end: high watermark %d, want the log end 2", cut.HighWatermark())
	} else {
		cut.Close()
	}
	for _, bad := range []string{"", "1\n1\norders 0 2\n", "0\n1\nother 0 2\n", "0\n1\norders 1 2\n", "0\n1\norders 0 x\n", "0\n2\norders 0 2\n"} {
		os.WriteFile(filepath.Join(dir, highWatermarkCheckpoint), []byte(bad), 0o644)
		if _, ok := readHighWatermarkCheckpoint(dir, "orders", 0); ok {
			t.Errorf("checkpoint %q accepted", bad)
		}
	}
}

// TestOffsetsAvailableFromLeaderStart (KIP-207): a replica that starts
// leading — a new term, or the first one after a restart — has its
// offsets available only once its high watermark reaches the log end it
// had then.
func TestOffsetsAvailableFromLeaderStart(t *testing.T) {
	dir := t.TempDir()
	p := replica(t, dir, 1, nil)
	p.ApplyAssignment(assignment(2, 1, []int32{1, 2}, []int32{1, 2}), t0)
	data := batch(t, recordbatch.BuildOptions{PartitionLeaderEpoch: 1}, "a", 4)
	if err := p.AppendReplicated(data, 2, 1); err != nil {
		t.Fatal(err)
	}
	p.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1, 2}), t0)
	if p.OffsetsAvailable() || p.HighWatermark() != 2 {
		t.Fatalf("new leader at high watermark %d below its start 4: available %v", p.HighWatermark(), p.OffsetsAvailable())
	}
	if _, err := p.FollowerFetched(2, 4, t0); err != nil {
		t.Fatal(err)
	}
	if !p.OffsetsAvailable() {
		t.Fatal("high watermark at the leader's start: offsets not available")
	}
	// Restarted, still the leader at the same epoch: the high watermark
	// starts at its checkpoint, offsets wait for the followers again past
	// the log end at restart.
	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 2))
	p.Close()
	restarted := replica(t, dir, 1, nil)
	restarted.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1, 2}), t0)
	if restarted.HighWatermark() != 4 || restarted.OffsetsAvailable() {
		t.Fatalf("restarted leader: high watermark %d, available %v; want 4 and false", restarted.HighWatermark(), restarted.OffsetsAvailable())
	}
	if _, err := restarted.FollowerFetched(2, 6, t0); err != nil || !restarted.OffsetsAvailable() {
		t.Fatalf("after the follower caught up: available %v (%v)", restarted.OffsetsAvailable(), err)
	}
}
