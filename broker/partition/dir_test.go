package partition

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
)

// TestAppendTimestampWindow: on a CreateTime topic a record outside
// message.timestamp.before.max.ms / after.max.ms around the append's clock
// is refused with INVALID_TIMESTAMP and appends nothing.
func TestAppendTimestampWindow(t *testing.T) {
	p := replica(t, t.TempDir(), 1, map[string]string{"message.timestamp.before.max.ms": "60000"})
	p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	at := func(ts time.Time) []byte {
		b, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Timestamp: ts.UnixMilli(), Value: []byte("v")}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wantCode(t, "two hours ahead (after.max.ms defaults to one hour)", appendErr(p, at(t0.Add(2*time.Hour)), 9), kerr.InvalidTimestamp)
	wantCode(t, "two minutes old with before.max.ms 60000", appendErr(p, at(t0.Add(-2*time.Minute)), 9), kerr.InvalidTimestamp)
	if p.LogEndOffset() != 0 {
		t.Fatalf("refused batches appended: log end %d", p.LogEndOffset())
	}
	mustAppend(t, p, at(t0.Add(59*time.Minute)))
	mustAppend(t, p, at(t0.Add(-time.Minute)))
}

func openIn(dir string, id byte) (*Partition, error) {
	return Open(Config{Dir: dir, Topic: "orders", TopicID: [16]byte{id}, Index: 0, Self: 1,
		Values: topicconfig.Typed(nil, nil), Logger: slog.New(slog.DiscardHandler)})
}

// TestUnrelatedDirectoriesAreLeftAlone: a partition never adopts a
// directory that is not its own (files without partition.metadata, or
// another topic id's), and Remove deletes a directory recursively only
// while its partition.metadata still names the partition's topic.
func TestUnrelatedDirectoriesAreLeftAlone(t *testing.T) {
	t.Run("existing directory with files", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "orders-0")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644)
		if _, err := openIn(dir, 7); !errors.Is(err, ErrNotOurDirectory) {
			t.Fatalf("opened over an unrelated directory: %v", err)
		}
		if data, err := os.ReadFile(filepath.Join(dir, "precious")); err != nil || string(data) != "x" {
			t.Fatalf("the unrelated file: %q, %v", data, err)
		}
		if _, err := segment.ReadPartitionMetadata(dir); !errors.Is(err, segment.ErrNoPartitionMetadata) {
			t.Fatalf("partition.metadata written into an unrelated directory: %v", err)
		}
	})
	t.Run("another topic id", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "orders-0")
		p, err := openIn(dir, 7)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		if _, err := openIn(dir, 8); !errors.Is(err, ErrNotOurDirectory) {
			t.Fatalf("opened another topic's directory: %v", err)
		}
		if id, err := segment.ReadPartitionMetadata(dir); err != nil || id != [16]byte{7} {
			t.Fatalf("partition.metadata now %x, %v", id, err)
		}
	})
	t.Run("leftovers of a crashed creation", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "orders-0")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "partition.metadata.tmp"), []byte("ver"), 0o644)
		p, err := openIn(dir, 7)
		if err != nil {
			t.Fatalf("a directory holding only a temporary file: %v", err)
		}
		p.Close()
	})
	t.Run("remove checks partition.metadata", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "orders-0")
		p, err := openIn(dir, 7)
		if err != nil {
			t.Fatal(err)
		}
		// Something else took the directory's place meanwhile.
		if err := segment.WritePartitionMetadata(dir, [16]byte{9}); err != nil {
			t.Fatal(err)
		}
		if err := p.Remove(true); !errors.Is(err, ErrNotOurDirectory) {
			t.Fatalf("Remove of a directory naming another topic: %v", err)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("the directory is gone: %v", err)
		}
		q, err := openIn(filepath.Join(t.TempDir(), "orders-0"), 7)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Remove(true); err != nil {
			t.Fatalf("Remove of its own directory: %v", err)
		}
		if _, err := os.Stat(q.dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("its own directory is still there: %v", err)
		}
	})
}
