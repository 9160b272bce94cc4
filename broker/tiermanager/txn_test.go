package tiermanager

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
)

// TestUploadStopsAtLastStableOffset: a pass uploads no segment holding
// (part of) an open transaction, even sealed and below the high
// watermark; once the transaction is aborted the rest goes, and the
// segment holding the ABORT marker carries its .txnindex entry.
func TestUploadStopsAtLastStableOffset(t *testing.T) {
	f := newFixture(t, 4)
	const pid = 77
	f.part.StartTxnVerification(pid, 0)
	first := f.part.LogEndOffset()
	records := make([]recordbatch.Record, 5)
	for i := range records {
		records[i] = recordbatch.Record{Timestamp: baseTimestamp + first + int64(i), Key: []byte("txn"), Value: bytes.Repeat([]byte{1}, 400)}
	}
	batch, err := recordbatch.Build(recordbatch.BuildOptions{Idempotent: true, Transactional: true, ProducerID: pid}, records)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.part.Append(batch, 9, time.Now()); err != nil {
		t.Fatal(err)
	}
	appendBatches(t, f.part, 8, -1)
	if lso, hw := f.part.LastStableOffset(), f.part.HighWatermark(); lso != first || hw <= first {
		t.Fatalf("last stable offset %d, high watermark %d; want the transaction's first offset %d below the high watermark", lso, hw, first)
	}
	var below []segment.SegmentInfo
	for _, info := range f.sealed() {
		if info.EndOffset <= first {
			below = append(below, info)
		}
	}
	if len(below) == 0 || len(below) == len(f.sealed()) {
		t.Fatalf("sealed segments %+v: want some entirely below the transaction at %d and some not", f.sealed(), first)
	}
	epoch := f.topic.Partitions[0].LeaderEpoch
	f.pass()
	f.checkCoversSealed(below, epoch)

	marker, err := f.part.AppendMarker(partition.Marker{ProducerID: pid, CoordinatorEpoch: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	appendBatches(t, f.part, 4, -1)
	f.pass()
	f.checkCoversSealed(f.sealed(), epoch)
	var found []segment.AbortedTxn
	for _, e := range f.entries() {
		entries, err := f.tier.ReadAbortedTxns(f.ctx, f.part.Name(), e)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > 0 && (marker < e.BaseOffset || marker > e.LastOffset) {
			t.Fatalf("segment %d..%d lists %+v, whose marker %d is elsewhere", e.BaseOffset, e.LastOffset, entries, marker)
		}
		found = append(found, entries...)
	}
	want := []segment.AbortedTxn{{ProducerID: pid, FirstOffset: first, LastOffset: marker, LastStableOffset: marker + 1}}
	if !reflect.DeepEqual(found, want) {
		t.Fatalf("uploaded aborted transactions %+v, want %+v", found, want)
	}
}
