package partition

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// TestEpochCache: OffsetForLeaderEpoch answers as Kafka's leader-epoch
// cache does, truncation drops later epochs, and the checkpoint (Kafka's
// format) round-trips and refuses garbage.
func TestEpochCache(t *testing.T) {
	var c epochCache
	for _, e := range []epochEntry{{0, 0}, {2, 100}, {5, 250}} {
		if !c.assign(e.epoch, e.start) {
			t.Fatalf("assign %+v refused", e)
		}
	}
	if c.assign(4, 300) || c.assign(5, 300) || c.assign(-1, 400) {
		t.Fatal("an older, equal or undefined epoch was assigned")
	}
	for _, tc := range []struct {
		requested, epoch int32
		end              int64
	}{
		{0, 0, 100}, {1, 0, 100}, {2, 2, 250}, {4, 2, 250}, {5, 5, 400}, {9, 5, 400}, {-1, -1, -1},
	} {
		if epoch, end := c.endOffsetFor(tc.requested, 400); epoch != tc.epoch || end != tc.end {
			t.Errorf("endOffsetFor(%d) = %d, %d; want %d, %d", tc.requested, epoch, end, tc.epoch, tc.end)
		}
	}
	dir := t.TempDir()
	if err := c.write(dir); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, leaderEpochCheckpoint))
	if string(data) != "0\n3\n0 0\n2 100\n5 250\n" {
		t.Fatalf("checkpoint %q", data)
	}
	read, ok := readEpochCache(dir)
	if !ok || !reflect.DeepEqual(read.entries, c.entries) {
		t.Fatalf("read back %+v %v", read.entries, ok)
	}
	if !c.truncateFromEnd(250) || c.latest() != 2 {
		t.Fatalf("after truncating at 250: %+v", c.entries)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n2\n0 0\n", "0\n1\nx 0\n", "0\n2\n3 10\n2 20\n"} {
		os.WriteFile(filepath.Join(dir, leaderEpochCheckpoint), []byte(bad), 0o644)
		if _, ok := readEpochCache(dir); ok {
			t.Errorf("checkpoint %q accepted", bad)
		}
	}
}

// TestAppendReplicatedLargerThanSegment: a follower appends what one fetch
// brought — more than segment.bytes — in runs that fit, rolling segments,
// with every batch at its offset.
func TestAppendReplicatedLargerThanSegment(t *testing.T) {
	values := topicconfig.Typed(nil, map[string]string{"segment.bytes": "4096"})
	p, err := Open(Config{Dir: t.TempDir(), Topic: "t", TopicID: [16]byte{1}, Index: 0, Self: 2, Values: values, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.ApplyAssignment(metadata.Partition{Index: 0, Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}, time.Now())
	var data []byte
	for i := range 10 { // 10 batches of ~1 KiB: 2.5 segments
		batch, err := recordbatch.Build(recordbatch.BuildOptions{BaseOffset: int64(i)}, []recordbatch.Record{{Timestamp: 1, Value: bytes.Repeat([]byte{byte(i)}, 1000)}})
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, batch...)
	}
	if err := p.AppendReplicated(data, 10); err != nil {
		t.Fatal(err)
	}
	if end := p.segments.EndOffset(); end != 10 {
		t.Fatalf("log end %d, want 10", end)
	}
	if n := len(p.Segments()); n < 3 {
		t.Fatalf("%d segments, want the 10 KiB over at least 3 of 4 KiB", n)
	}
	got, err := p.Read(0, 1<<20, 10, true)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want the %d appended", len(got), err, len(data))
	}
}
