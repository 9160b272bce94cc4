package tiering

import (
	"bytes"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
)

// A batch the log cleaner stamped with its delete horizon (KIP-534) holds
// the horizon in firstTimestamp: the manifest's FirstTimestamp does not
// take it for a record's time.
func TestDescribeSegmentSkipsDeleteHorizon(t *testing.T) {
	build := func(offset, ts int64) []byte {
		batch, err := recordbatch.Build(recordbatch.BuildOptions{BaseOffset: offset}, []recordbatch.Record{{Key: []byte("k"), Timestamp: ts}})
		if err != nil {
			t.Fatal(err)
		}
		return batch
	}
	stamped := build(0, 1000)
	h, err := recordbatch.ParseHeader(stamped)
	if err != nil {
		t.Fatal(err)
	}
	// A horizon below the other batch's time, which the manifest would
	// take; the records are not read here, so the payload is left as is.
	stamped = recordbatch.Assemble(h.WithDeleteHorizon(500), stamped[recordbatch.HeaderSize:])
	log := append(stamped, build(1, 2000)...)
	segment, err := describeSegment(bytes.NewReader(log), int64(len(log)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if segment.FirstTimestamp != 2000 || segment.MaxTimestamp != 2000 || segment.LastOffset != 1 {
		t.Fatalf("manifest %+v, want first and max timestamp 2000, last offset 1", segment)
	}
}
