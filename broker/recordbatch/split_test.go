package recordbatch

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	first := mustBuild(t, BuildOptions{}, makeRecords(3, 10, 20))
	second := mustBuild(t, BuildOptions{Codec: Gzip}, makeRecords(7, 30, 21))
	both := append(append([]byte{}, first...), second...)
	tests := []struct {
		name    string
		records []byte
		want    []Span
		err     error
	}{
		{"one batch", first, []Span{{0, int32(len(first))}}, nil},
		{"two batches", both, []Span{{0, int32(len(first))}, {int32(len(first)), int32(len(second))}}, nil},
		{"empty", nil, nil, ErrInvalidRecord},
		{"truncated batch", both[:len(both)-1], nil, ErrCorrupt},
		{"trailing bytes too few for a length", append(append([]byte{}, first...), 0, 0, 0), nil, ErrCorrupt},
		{"length shorter than a header", func() []byte {
			b := append([]byte{}, first...)
			binary.BigEndian.PutUint32(b[lengthPosition:], minimumBatchLength-1)
			return b
		}(), nil, ErrCorrupt},
		{"negative length", func() []byte {
			b := append([]byte{}, first...)
			binary.BigEndian.PutUint32(b[lengthPosition:], 0x80000000)
			return b
		}(), nil, ErrCorrupt},
		{"length past the end", func() []byte {
			b := append([]byte{}, first...)
			binary.BigEndian.PutUint32(b[lengthPosition:], 0x7fffffff)
			return b
		}(), nil, ErrCorrupt},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			spans, err := Split(test.records)
			if !errors.Is(err, test.err) || (test.err == nil) != (err == nil) {
				t.Fatalf("Split: %v, want %v", err, test.err)
			}
			if !slices.Equal(spans, test.want) {
				t.Fatalf("Split = %v, want %v", spans, test.want)
			}
		})
	}
}
