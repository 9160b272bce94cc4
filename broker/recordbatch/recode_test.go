package recordbatch

import (
	"errors"
	"testing"
)

// TestRecode re-encodes batches from every codec to every codec: the header
// is the original's but for the codec bits and the CRC, the records are the
// same, and the result is a valid batch a client (franz-go) decodes.
func TestRecode(t *testing.T) {
	records := makeRecords(40, 300, 7)
	records[5].Value = nil // a tombstone
	records[6].Value = []byte{}
	opts := BuildOptions{
		BaseOffset: 1234, PartitionLeaderEpoch: 5, Transactional: true,
		Idempotent: true, ProducerID: 77, ProducerEpoch: 3, BaseSequence: 1000,
	}
	for _, from := range codecCases {
		for _, to := range codecCases {
			if to.xerial {
				continue // Recode writes raw snappy
			}
			t.Run(from.name+"-to-"+to.name, func(t *testing.T) {
				opts := opts
				opts.Codec, opts.XerialSnappy = from.codec, from.xerial
				batch := mustBuild(t, opts, records)
				before, err := ParseHeader(batch)
				if err != nil {
					t.Fatal(err)
				}
				recoded, err := Recode(batch, to.codec)
				if err != nil {
					t.Fatalf("Recode: %v", err)
				}
				h, err := Validate(recoded, Limits{})
				if err != nil {
					t.Fatalf("Validate of the re-encoded batch: %v", err)
				}
				if h.Codec() != to.codec {
					t.Fatalf("codec %v, want %v", h.Codec(), to.codec)
				}
				want := before
				want.Attributes = before.Attributes&^codecMask | int16(to.codec)
				want.CRC, want.Length = h.CRC, h.Length
				if h != want {
					t.Fatalf("header %+v, want %+v", h, want)
				}
				got, err := Records(recoded)
				if err != nil {
					t.Fatal(err)
				}
				equalRecords(t, got, records, opts.BaseOffset)
				parsed, franz := franzRecords(t, recoded)
				if len(franz) != len(records) || parsed.ProducerID != 77 || parsed.FirstSequence != 1000 {
					t.Fatalf("franz-go reads %d records, producer %d sequence %d", len(franz), parsed.ProducerID, parsed.FirstSequence)
				}
			})
		}
	}
}

// TestRecodeKeepsLogAppendTimeAndControl re-encodes a LogAppendTime batch
// (its max timestamp kept) and a control batch (decoded like any other).
func TestRecodeKeepsLogAppendTimeAndControl(t *testing.T) {
	batch := mustBuild(t, BuildOptions{Codec: Gzip, LogAppendTime: true}, makeRecords(3, 10, 1))
	SetLogAppendTime(batch, 1_800_000_000_000)
	recoded, err := Recode(batch, Zstd)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Validate(recoded, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !h.LogAppendTime() || h.MaxTimestamp != 1_800_000_000_000 || h.Codec() != Zstd {
		t.Fatalf("header %+v", h)
	}
	marker := mustBuild(t, BuildOptions{Control: true, Transactional: true, Idempotent: true, ProducerID: 1, ProducerEpoch: 2, BaseSequence: -1}, []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}})
	recoded, err = Recode(marker, Snappy)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := ParseHeader(recoded); err != nil || !h.IsControl() || h.Codec() != Snappy || VerifyChecksum(recoded) != nil {
		t.Fatalf("control batch: %+v %v", h, err)
	}
}

func TestRecodeRejects(t *testing.T) {
	batch := mustBuild(t, BuildOptions{}, makeRecords(2, 10, 1))
	if _, err := Recode(batch, 6); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("codec 6: %v", err)
	}
	if _, err := Recode(batch[:HeaderSize+3], Gzip); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
}
