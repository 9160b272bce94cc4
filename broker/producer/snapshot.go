package producer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// Snapshot format constants (see doc.go). Part of the format: do not change.
const (
	snapshotMagic      = "STRATAPS"
	snapshotVersion    = 2                          // written; version 1 (no transactions) is still read
	snapshotHeaderSize = len(snapshotMagic) + 2 + 4 // magic, version, producer count
	entryHeaderSizeV1  = 8 + 2 + 8 + 1              // producer id, epoch, last timestamp, batch count
	batchSizeV1        = 4 + 4 + 8 + 8 + 8          // first seq, last seq, first offset, last offset, max timestamp
	// Version 2 adds the coordinator epoch and the open transaction's first
	// offset before the batch count, and a flags byte after each batch.
	entryHeaderSizeV2  = 8 + 2 + 8 + 4 + 8 + 1
	batchSizeV2        = batchSizeV1 + 1
	batchTransactional = 1 // batch flags bit 0
	crcSize            = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// WriteSnapshot writes the state to w in the snapshot format (see doc.go),
// streaming: memory use does not grow with the number of producers beyond
// sorting their ids. The caller syncs and renames.
func (s *State) WriteSnapshot(w io.Writer) error {
	checksum := crc32.New(crcTable)
	out := bufio.NewWriterSize(io.MultiWriter(w, checksum), 32<<10)
	ids := s.sortedIDs()
	header := make([]byte, 0, snapshotHeaderSize)
	header = append(header, snapshotMagic...)
	header = binary.BigEndian.AppendUint16(header, snapshotVersion)
	header = binary.BigEndian.AppendUint32(header, uint32(len(ids)))
	if _, err := out.Write(header); err != nil {
		return fmt.Errorf("write producer snapshot header: %w", err)
	}
	record := make([]byte, 0, entryHeaderSizeV2+CachedBatches*batchSizeV2)
	for _, id := range ids {
		e := s.producers[id]
		record = binary.BigEndian.AppendUint64(record[:0], uint64(id))
		record = binary.BigEndian.AppendUint16(record, uint16(e.epoch))
		record = binary.BigEndian.AppendUint64(record, uint64(e.lastTimestamp))
		record = binary.BigEndian.AppendUint32(record, uint32(e.coordinatorEpoch))
		record = binary.BigEndian.AppendUint64(record, uint64(e.txnFirstOffset))
		record = append(record, uint8(e.count))
		for _, b := range e.batches[:e.count] {
			record = binary.BigEndian.AppendUint32(record, uint32(b.FirstSeq))
			record = binary.BigEndian.AppendUint32(record, uint32(b.LastSeq))
			record = binary.BigEndian.AppendUint64(record, uint64(b.FirstOffset))
			record = binary.BigEndian.AppendUint64(record, uint64(b.LastOffset))
			record = binary.BigEndian.AppendUint64(record, uint64(b.MaxTimestamp))
			flags := byte(0)
			if b.Transactional {
				flags |= batchTransactional
			}
			record = append(record, flags)
		}
		if _, err := out.Write(record); err != nil {
			return fmt.Errorf("write producer %d: %w", id, err)
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write producer snapshot: %w", err)
	}
	// The CRC covers everything before it, so it goes to w alone.
	if _, err := w.Write(binary.BigEndian.AppendUint32(nil, checksum.Sum32())); err != nil {
		return fmt.Errorf("write producer snapshot checksum: %w", err)
	}
	return nil
}

// snapshotReader reads exact-size fields and checksums them.
type snapshotReader struct {
	in       *bufio.Reader
	checksum hash.Hash32
	scratch  [entryHeaderSizeV2 + CachedBatches*batchSizeV2]byte
}

// read returns the next n bytes (n <= len(scratch)), checksummed.
func (r *snapshotReader) read(n int, what string) ([]byte, error) {
	b := r.scratch[:n]
	if _, err := io.ReadFull(r.in, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated in %s", ErrCorruptSnapshot, what)
		}
		return nil, fmt.Errorf("read producer snapshot %s: %w", what, err)
	}
	r.checksum.Write(b)
	return b, nil
}

// ReadSnapshot reads a snapshot written by WriteSnapshot. A snapshot that
// does not check out is ErrCorruptSnapshot (IsCorruptSnapshot); errors from
// r itself are returned wrapped.
func ReadSnapshot(r io.Reader) (*State, error) {
	in := &snapshotReader{in: bufio.NewReaderSize(r, 32<<10), checksum: crc32.New(crcTable)}
	header, err := in.read(snapshotHeaderSize, "header")
	if err != nil {
		return nil, err
	}
	if string(header[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorruptSnapshot, header[:len(snapshotMagic)])
	}
	version := binary.BigEndian.Uint16(header[len(snapshotMagic):])
	entryHeaderSize, batchSize := entryHeaderSizeV2, batchSizeV2
	switch version {
	case snapshotVersion:
	case 1:
		entryHeaderSize, batchSize = entryHeaderSizeV1, batchSizeV1
	default:
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorruptSnapshot, version)
	}
	count := binary.BigEndian.Uint32(header[len(snapshotMagic)+2:])
	// The count is not trusted until the CRC is: the map grows as entries
	// actually arrive.
	state := &State{producers: make(map[int64]*entry, min(count, 1024)), open: map[int64]int64{}}
	previous := int64(-1)
	for i := uint32(0); i < count; i++ {
		record, err := in.read(entryHeaderSize, "producer entry")
		if err != nil {
			return nil, err
		}
		id := int64(binary.BigEndian.Uint64(record))
		if id <= previous {
			return nil, fmt.Errorf("%w: producer id %d after %d", ErrCorruptSnapshot, id, previous)
		}
		previous = id
		e := newEntry(int16(binary.BigEndian.Uint16(record[8:])))
		e.lastTimestamp = int64(binary.BigEndian.Uint64(record[10:]))
		if version == 1 {
			e.count = int(record[18])
		} else {
			e.coordinatorEpoch = int32(binary.BigEndian.Uint32(record[18:]))
			e.txnFirstOffset = int64(binary.BigEndian.Uint64(record[22:]))
			e.count = int(record[30])
			if e.txnFirstOffset < -1 {
				return nil, fmt.Errorf("%w: producer %d has an open transaction at offset %d", ErrCorruptSnapshot, id, e.txnFirstOffset)
			}
		}
		if e.count > CachedBatches {
			return nil, fmt.Errorf("%w: producer %d has %d batches, at most %d fit", ErrCorruptSnapshot, id, e.count, CachedBatches)
		}
		batches, err := in.read(e.count*batchSize, "batches")
		if err != nil {
			return nil, err
		}
		for j := range e.count {
			b := batches[j*batchSize:]
			e.batches[j] = BatchMeta{
				ProducerID:   id,
				Epoch:        e.epoch,
				FirstSeq:     int32(binary.BigEndian.Uint32(b)),
				LastSeq:      int32(binary.BigEndian.Uint32(b[4:])),
				FirstOffset:  int64(binary.BigEndian.Uint64(b[8:])),
				LastOffset:   int64(binary.BigEndian.Uint64(b[16:])),
				MaxTimestamp: int64(binary.BigEndian.Uint64(b[24:])),
			}
			if version != 1 {
				e.batches[j].Transactional = b[32]&batchTransactional != 0
			}
		}
		state.producers[id] = e
		if e.txnFirstOffset >= 0 {
			state.open[id] = e.txnFirstOffset
		}
	}
	computed := in.checksum.Sum32()
	trailer, err := in.read(crcSize, "checksum")
	if err != nil {
		return nil, err
	}
	if stored := binary.BigEndian.Uint32(trailer); stored != computed {
		return nil, fmt.Errorf("%w: CRC mismatch: stored %#08x, computed %#08x", ErrCorruptSnapshot, stored, computed)
	}
	if _, err := in.in.ReadByte(); err == nil {
		return nil, fmt.Errorf("%w: bytes after the checksum", ErrCorruptSnapshot)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read producer snapshot: %w", err)
	}
	return state, nil
}
