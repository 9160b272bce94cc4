package recordbatch

import (
	"encoding/hex"
	"testing"
)

// TestGoldenMarker pins the control batch of a transaction marker
// (Kafka's EndTransactionMarker): if it fails, the format changed.
func TestGoldenMarker(t *testing.T) {
	batch := BuildMarker(MarkerOptions{
		BaseOffset: 42, PartitionLeaderEpoch: 3, ProducerID: 7, ProducerEpoch: 2, Timestamp: 1000,
		Marker: Marker{Type: ControlCommit, CoordinatorEpoch: 5},
	})
	want := "000000000000002a" + // base offset 42
		"00000042" + // batch length 66
		"00000003" + // partition leader epoch
		"02" + // magic
		"f985618b" + // crc
		"0030" + // attributes: control | transactional
		"00000000" + // last offset delta
		"00000000000003e8" + "00000000000003e8" + // first, max timestamp
		"0000000000000007" + "0002" + "ffffffff" + // producer id, epoch, base sequence -1
		"00000001" + // record count
		"20" + "00" + "00" + "00" + // record length 16, attributes, timestamp delta, offset delta
		"08" + "00000001" + // key: version 0, type COMMIT
		"0c" + "000000000005" + // value: version 0, coordinator epoch 5
		"00" // no headers
	if got := hex.EncodeToString(batch); got != want {
		t.Fatalf("marker batch\n got %s\nwant %s", got, want)
	}
	h, err := Validate(batch, Limits{AllowControl: true})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !h.IsControl() || !h.IsTransactional() || h.ProducerID != 7 || h.ProducerEpoch != 2 {
		t.Fatalf("header %+v", h)
	}
	if _, err := Validate(batch, Limits{}); !IsInvalid(err) {
		t.Fatalf("a client's control batch: %v, want INVALID_RECORD", err)
	}
	marker, ok, err := ParseMarker(batch)
	if err != nil || !ok || marker != (Marker{Type: ControlCommit, CoordinatorEpoch: 5}) {
		t.Fatalf("ParseMarker = %+v, %v, %v", marker, ok, err)
	}
	abort := BuildMarker(MarkerOptions{ProducerID: 1, Marker: Marker{Type: ControlAbort, CoordinatorEpoch: -1}})
	if marker, ok, err := ParseMarker(abort); err != nil || !ok || marker != (Marker{Type: ControlAbort, CoordinatorEpoch: -1}) {
		t.Fatalf("ParseMarker(abort) = %+v, %v, %v", marker, ok, err)
	}
}
