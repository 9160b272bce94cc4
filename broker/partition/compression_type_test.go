package partition

import (
	"bytes"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestCompressionTypeLeaderRecodesFollowerCopies: the leader stores a
// produced batch with the topic's compression.type (a gzip batch on a
// zstd topic is stored as zstd, same header and records); a follower
// appends the leader's bytes unchanged, whatever its own config says.
func TestCompressionTypeLeaderRecodesFollowerCopies(t *testing.T) {
	replicas := []int32{1, 2}
	leader := replica(t, t.TempDir(), 1, map[string]string{"compression.type": "zstd"})
	leader.ApplyAssignment(assignment(1, 3, replicas, replicas), t0)
	produced := batch(t, recordbatch.BuildOptions{Codec: recordbatch.Gzip, Idempotent: true, ProducerID: 9, ProducerEpoch: 1, BaseSequence: 0}, "g", 4)
	mustAppend(t, leader, produced)
	stored, err := leader.Read(0, 1<<20, leader.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	h, err := recordbatch.Validate(stored, recordbatch.Limits{})
	if err != nil {
		t.Fatalf("stored batch: %v", err)
	}
	if h.Codec() != recordbatch.Zstd || h.NumRecords != 4 || h.ProducerID != 9 || h.BaseSequence != 0 || h.PartitionLeaderEpoch != 3 {
		t.Fatalf("stored header %+v (codec %v), want zstd, 4 records of producer 9 from sequence 0 at epoch 3", h, h.Codec())
	}
	want, _ := recordbatch.Records(produced)
	got, _ := recordbatch.Records(stored)
	if len(got) != len(want) {
		t.Fatalf("%d records stored, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Offset != want[i].Offset || got[i].Timestamp != want[i].Timestamp || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	follower := replica(t, t.TempDir(), 2, map[string]string{"compression.type": "uncompressed"})
	follower.ApplyAssignment(assignment(1, 3, replicas, replicas), t0)
	if err := follower.AppendReplicated(stored, leader.HighWatermark(), 3); err != nil {
		t.Fatal(err)
	}
	copied, err := follower.Read(0, 1<<20, follower.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copied, stored) {
		t.Fatal("the follower did not store the leader's bytes unchanged")
	}
}
