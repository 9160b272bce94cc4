package producer

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/snapshot-v2.golden")

// goldenStateV1 is the state testdata/snapshot-v1.golden holds (written by
// the version before transactions; still read).
func goldenStateV1() *State {
	state := NewState()
	for _, b := range history(7) { // producer 1: five cached batches
		state.Update(b)
	}
	state.Update(BatchMeta{ProducerID: 7, Epoch: 3, FirstSeq: math.MaxInt32 - 1, LastSeq: 1, FirstOffset: 500, LastOffset: 503, MaxTimestamp: -1})
	state.Update(BatchMeta{ProducerID: math.MaxInt64, Epoch: math.MaxInt16, FirstSeq: 0, LastSeq: 0, FirstOffset: 0, LastOffset: 0, MaxTimestamp: 1_700_000_000_000})
	state.producers[9] = newEntry(2) // an epoch without batches
	state.producers[9].lastTimestamp = 5
	return state
}

// goldenState is the state testdata/snapshot-v2.golden holds: v1's plus
// transactions, one open and one completed by a marker.
func goldenState() *State {
	state := goldenStateV1()
	state.Update(BatchMeta{ProducerID: 11, Epoch: 1, FirstSeq: 0, LastSeq: 2, FirstOffset: 600, LastOffset: 602, MaxTimestamp: 9, Transactional: true})
	state.Update(BatchMeta{ProducerID: 12, Epoch: 0, FirstSeq: 0, LastSeq: 0, FirstOffset: 603, LastOffset: 603, MaxTimestamp: 10, Transactional: true})
	state.CompleteTxn(Marker{ProducerID: 12, Epoch: 0, CoordinatorEpoch: 4, Commit: true}, 604, 11)
	return state
}

func snapshotBytes(t *testing.T, state *State) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := state.WriteSnapshot(&out); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return out.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		state *State
	}{
		{"empty", NewState()},
		{"golden state", goldenState()},
		{"many producers", func() *State {
			state := NewState()
			for id := int64(0); id < 3000; id++ {
				state.Update(BatchMeta{ProducerID: id * 7, Epoch: int16(id % 5), FirstSeq: int32(id), LastSeq: int32(id + 2), FirstOffset: id * 3, LastOffset: id*3 + 2, MaxTimestamp: id})
			}
			return state
		}()},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			read, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, test.state)))
			if err != nil {
				t.Fatalf("ReadSnapshot: %v", err)
			}
			if !reflect.DeepEqual(read.Producers(), test.state.Producers()) {
				t.Fatalf("read back %+v\nwant %+v", read.Producers(), test.state.Producers())
			}
			// The read state behaves like the original: a retry of a
			// cached batch is still recognised.
			for _, p := range test.state.Producers() {
				for _, b := range p.Batches {
					if duplicate, err := read.Check(b); err != nil || duplicate == nil || *duplicate != b {
						t.Fatalf("Check(%+v) after reading: %v, %v", b, duplicate, err)
					}
				}
			}
		})
	}
}

// TestSnapshotGolden fails when the format changes by accident. Run with
// -update only when changing it on purpose (and bump the version).
func TestSnapshotGolden(t *testing.T) {
	path := filepath.Join("testdata", "snapshot-v2.golden")
	got := snapshotBytes(t, goldenState())
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("snapshot bytes differ from %s:\n got %x\nwant %x", path, got, want)
	}
	read, err := ReadSnapshot(bytes.NewReader(want))
	if err != nil {
		t.Fatalf("ReadSnapshot(golden): %v", err)
	}
	if !reflect.DeepEqual(read.Producers(), goldenState().Producers()) {
		t.Fatalf("golden decodes to %+v", read.Producers())
	}
	if got := read.OpenTransactions(); !reflect.DeepEqual(got, []OpenTxn{{ProducerID: 11, Epoch: 1, FirstOffset: 600}}) {
		t.Fatalf("golden's open transactions: %+v", got)
	}
}

// TestSnapshotV1StillRead: snapshots written before transactions load,
// with no transaction open and no coordinator epoch.
func TestSnapshotV1StillRead(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.golden"))
	if err != nil {
		t.Fatal(err)
	}
	read, err := ReadSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("ReadSnapshot(v1): %v", err)
	}
	if !reflect.DeepEqual(read.Producers(), goldenStateV1().Producers()) {
		t.Fatalf("v1 golden decodes to %+v\nwant %+v", read.Producers(), goldenStateV1().Producers())
	}
	if len(read.OpenTransactions()) != 0 {
		t.Fatalf("v1 snapshot has open transactions: %+v", read.OpenTransactions())
	}
}

func TestSnapshotCorruption(t *testing.T) {
	valid := snapshotBytes(t, goldenState())
	type corruption struct {
		name  string
		bytes []byte
	}
	var tests []corruption
	for i := range valid {
		flipped := bytes.Clone(valid)
		flipped[i] ^= 0x5a
		tests = append(tests, corruption{"flip byte " + itoa(i), flipped})
	}
	for n := range len(valid) {
		tests = append(tests, corruption{"truncated to " + itoa(n), valid[:n]})
	}
	tests = append(tests,
		corruption{"trailing byte", append(bytes.Clone(valid), 0)},
		corruption{"six batches", func() []byte {
			state := NewState()
			state.producers[1] = &entry{count: 5}
			b := snapshotBytes(t, state)
			b[snapshotHeaderSize+entryHeaderSizeV2-1] = 6
			return b
		}()},
	)
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			state, err := ReadSnapshot(bytes.NewReader(test.bytes))
			if !IsCorruptSnapshot(err) || state != nil {
				t.Fatalf("ReadSnapshot: %v, want a corrupt snapshot error", err)
			}
		})
	}
}

func TestSnapshotIOErrors(t *testing.T) {
	failure := errors.New("disk on fire")
	if err := goldenState().WriteSnapshot(failingWriter{failure}); !errors.Is(err, failure) {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	if _, err := ReadSnapshot(failingReader{failure}); !errors.Is(err, failure) || IsCorruptSnapshot(err) {
		t.Fatalf("ReadSnapshot: %v", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(dst []byte, i int) []byte {
	if i >= 10 {
		dst = appendInt(dst, i/10)
	}
	return append(dst, byte('0'+i%10))
}
