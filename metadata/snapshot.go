package metadata

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
)

// Snapshot format constants (see doc.go). Part of the format: do not change.
const (
	snapshotMagic   = "STRATAMS"
	snapshotVersion = 1
	// snapshotHeaderSize is the magic plus the version.
	snapshotHeaderSize = len(snapshotMagic) + 2
	// recordHeaderSize is the record type plus the payload length.
	recordHeaderSize = 1 + 4
	// recordTrailerSize is the CRC-32C after the payload.
	recordTrailerSize = 4
	// maxRecordPayload bounds a record so that a corrupt length cannot
	// drive a huge allocation.
	maxRecordPayload = 64 << 20

	recordCluster = 0x01
	recordTopic   = 0x02
	recordBroker  = 0x03
	// recordSegments is read only: recordSegmentsWithTxnIndex replaced it
	// when manifest entries gained their txn index state.
	recordSegments = 0x04
	// recordSegmentsWithTxnIndex is what recordSegments holds with each
	// entry's txn index state after its segment (encodeSegment).
	recordSegmentsWithTxnIndex = 0x0a
	// recordBrokerWithDirectory replaced recordBroker (which is still
	// read) when registrations gained a directory id.
	recordBrokerWithDirectory = 0x05
	// recordScramCredential is one SCRAM credential: the payload of
	// encodeScramCredential (string user, uint8 mechanism, string salt,
	// int32 iterations, string stored key, string server key), in
	// (user, mechanism) order.
	recordScramCredential = 0x06
	// recordACL is one ACL binding (encodeACLBinding).
	recordACL = 0x07
	// recordClientQuota is one entity's client quotas
	// (encodeClientQuotaRecord), in the order of their entity encodings.
	recordClientQuota = 0x08
	// recordExtension is a record whose first byte says what it holds:
	// extensionReassignment, a partition's reassignment in progress
	// (encodeReassignmentRecord; after every topic record), or
	// extensionBrokerConfigs, one broker's dynamic configs
	// (encodeBrokerConfigsRecord).
	recordExtension = 0x0b
	// recordLogStart is one partition's log start offset set in the
	// quorum (commands_log_start.go: topic id, int32 partition, int64
	// offset), in (topic id, partition) order.
	recordLogStart = 0x09
	recordEnd      = 0x7f
	// recordIgnoreUnknown, set in a record type, lets a reader that does
	// not know the type skip the record.
	recordIgnoreUnknown = 0x80
)

// recordExtension kinds. Part of the format: do not change.
const (
	extensionReassignment  uint8 = 1
	extensionBrokerConfigs uint8 = 2
)

// crcTable is CRC-32C (Castagnoli), as Kafka's record batches use.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// snapshotWriter frames records onto a buffered writer.
type snapshotWriter struct {
	writer  *bufio.Writer
	payload encoder
	records uint64
}

// record frames the payload accumulated in w.payload as one record of the
// given type, then resets the payload buffer.
func (w *snapshotWriter) record(recordType uint8) error {
	payload := w.payload.buffer
	if len(payload) > maxRecordPayload {
		return fmt.Errorf("record type %#x of %d bytes exceeds the %d-byte limit", recordType, len(payload), maxRecordPayload)
	}
	var header [recordHeaderSize]byte
	header[0] = recordType
	binary.BigEndian.PutUint32(header[1:], uint32(len(payload)))
	checksum := crc32.Update(crc32.Checksum(header[:], crcTable), crcTable, payload)
	var trailer [recordTrailerSize]byte
	binary.BigEndian.PutUint32(trailer[:], checksum)
	for _, part := range [][]byte{header[:], payload, trailer[:]} {
		if _, err := w.writer.Write(part); err != nil {
			return err
		}
	}
	w.records++
	w.payload.buffer = payload[:0]
	return nil
}

// writeSnapshot streams state to out record by record: memory use is one
// record, whatever the size of the state.
func writeSnapshot(out io.Writer, state *State) error {
	w := &snapshotWriter{writer: bufio.NewWriterSize(out, 64<<10)}
	var header [snapshotHeaderSize]byte
	copy(header[:], snapshotMagic)
	binary.BigEndian.PutUint16(header[len(snapshotMagic):], snapshotVersion)
	if _, err := w.writer.Write(header[:]); err != nil {
		return fmt.Errorf("write header: %w", err)
	}

	w.payload.uint64(state.appliedIndex)
	w.payload.string(state.clusterID)
	w.payload.int64(state.nextProducerID)
	if err := w.record(recordCluster); err != nil {
		return fmt.Errorf("write cluster record: %w", err)
	}

	iterator := state.topics.Root().Iterator()
	for _, topic, ok := iterator.Next(); ok; _, topic, ok = iterator.Next() {
		encodeTopic(&w.payload, topic)
		if err := w.record(recordTopic); err != nil {
			return fmt.Errorf("write topic %q: %w", topic.Name, err)
		}
	}

	brokers := state.brokers.Root().Iterator()
	for _, broker, ok := brokers.Next(); ok; _, broker, ok = brokers.Next() {
		encodeBroker(&w.payload, broker)
		if err := w.record(recordBrokerWithDirectory); err != nil {
			return fmt.Errorf("write broker %d: %w", broker.ID, err)
		}
	}

	segments := state.segments.Root().Iterator()
	for key, partition, ok := segments.Next(); ok; key, partition, ok = segments.Next() {
		topicID, partitionIndex := parseSegmentPartitionKey(key)
		for _, chunk := range partition.chunks {
			w.payload.uuid(topicID)
			w.payload.int32(partitionIndex)
			w.payload.uvarint(uint64(len(chunk)))
			for i := range chunk {
				w.payload.uint8(uint8(chunk[i].State))
				encodeSegment(&w.payload, &chunk[i])
			}
			if err := w.record(recordSegmentsWithTxnIndex); err != nil {
				return fmt.Errorf("write tiered segments of topic id %s partition %d: %w", formatTopicID(topicID), partitionIndex, err)
			}
		}
	}

	scram := state.scram.Root().Iterator()
	for _, c, ok := scram.Next(); ok; _, c, ok = scram.Next() {
		encodeScramCredential(&w.payload, c)
		if err := w.record(recordScramCredential); err != nil {
			return fmt.Errorf("write SCRAM credential of %q: %w", c.User, err)
		}
	}

	acls := state.acls.Root().Iterator()
	for _, binding, ok := acls.Next(); ok; _, binding, ok = acls.Next() {
		encodeACLBinding(&w.payload, binding)
		if err := w.record(recordACL); err != nil {
			return fmt.Errorf("write ACL binding %s: %w", binding, err)
		}
	}

	quotas := state.quotas.Root().Iterator()
	for _, q, ok := quotas.Next(); ok; _, q, ok = quotas.Next() {
		encodeClientQuotaRecord(&w.payload, q)
		if err := w.record(recordClientQuota); err != nil {
			return fmt.Errorf("write client quotas of %s: %w", q.Entity, err)
		}
	}
	if err := writeExtensionRecords(w, state); err != nil {
		return err
	}
	if err := writeLogStarts(w, state); err != nil {
		return err
	}

	w.payload.uint64(w.records)
	if err := w.record(recordEnd); err != nil {
		return fmt.Errorf("write end record: %w", err)
	}
	if err := w.writer.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// corruptf returns an error wrapping ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// readSnapshot decodes a snapshot written by writeSnapshot, verifying the
// magic, version, every record's checksum, the record order and count, and
// that nothing follows the end record.
func readSnapshot(in io.Reader) (*State, error) {
	reader := bufio.NewReaderSize(in, 64<<10)
	var header [snapshotHeaderSize]byte
	if _, err := io.ReadFull(reader, header[:]); err != nil {
		return nil, corruptf("snapshot header: %v", err)
	}
	if string(header[:len(snapshotMagic)]) != snapshotMagic {
		return nil, corruptf("snapshot magic %q, want %q", header[:len(snapshotMagic)], snapshotMagic)
	}
	if version := binary.BigEndian.Uint16(header[len(snapshotMagic):]); version != snapshotVersion {
		return nil, fmt.Errorf("%w: snapshot version %d is not supported (this build reads version %d)", ErrCorrupt, version, snapshotVersion)
	}

	state := emptyState()
	topics := state.topics.Txn()
	topicNames := iradix.New[string]().Txn()
	brokers := state.brokers.Txn()
	segments := newSegmentsRestorer()
	scram := state.scram.Txn()
	var lastScramKey []byte
	acls := state.acls.Txn()
	quotas := state.quotas.Txn()
	brokerConfigs := state.brokerConfigs.Txn()
	logStarts := state.logStarts.Txn()
	var (
		records      uint64
		seenCluster  bool
		payload      []byte
		lastBrokerID int32 = -1
	)
	for {
		var recordHeader [recordHeaderSize]byte
		if _, err := io.ReadFull(reader, recordHeader[:]); err != nil {
			return nil, corruptf("record %d: header: %v (snapshot truncated?)", records, err)
		}
		recordType := recordHeader[0]
		length := binary.BigEndian.Uint32(recordHeader[1:])
		if length > maxRecordPayload {
			return nil, corruptf("record %d: length %d exceeds the %d-byte limit", records, length, maxRecordPayload)
		}
		if cap(payload) < int(length)+recordTrailerSize {
			payload = make([]byte, int(length)+recordTrailerSize)
		}
		payload = payload[:int(length)+recordTrailerSize]
		if _, err := io.ReadFull(reader, payload); err != nil {
			return nil, corruptf("record %d: payload: %v (snapshot truncated?)", records, err)
		}
		body := payload[:length]
		checksum := crc32.Update(crc32.Checksum(recordHeader[:], crcTable), crcTable, body)
		if stored := binary.BigEndian.Uint32(payload[length:]); stored != checksum {
			return nil, corruptf("record %d: checksum %#08x, computed %#08x", records, stored, checksum)
		}

		d := &decoder{data: body}
		switch {
		case recordType == recordCluster:
			if records != 0 {
				return nil, corruptf("record %d: cluster record is not first", records)
			}
			seenCluster = true
			state.appliedIndex = d.uint64()
			state.clusterID = d.string()
			state.nextProducerID = d.int64()
		case !seenCluster:
			return nil, corruptf("record %d: type %#x before the cluster record", records, recordType)
		case recordType == recordTopic:
			topic := decodeTopic(d)
			if err := d.finish(); err != nil {
				return nil, fmt.Errorf("record %d: topic: %w", records, err)
			}
			if _, exists := topics.Get([]byte(topic.Name)); exists {
				return nil, corruptf("record %d: topic %q appears twice", records, topic.Name)
			}
			if _, exists := topicNames.Get(topic.ID[:]); exists {
				return nil, corruptf("record %d: topic id %s appears twice", records, formatTopicID(topic.ID))
			}
			topics.Insert([]byte(topic.Name), topic)
			topicNames.Insert(topic.ID[:], topic.Name)
		case recordType == recordBroker || recordType == recordBrokerWithDirectory:
			broker := decodeBroker(d, recordType == recordBrokerWithDirectory)
			if err := d.finish(); err != nil {
				return nil, fmt.Errorf("record %d: broker: %w", records, err)
			}
			if broker.ID <= lastBrokerID {
				return nil, corruptf("record %d: broker %d follows broker %d", records, broker.ID, lastBrokerID)
			}
			lastBrokerID = broker.ID
			brokers.Insert(brokerKey(broker.ID), broker)
		case recordType == recordSegments || recordType == recordSegmentsWithTxnIndex:
			if err := segments.restoreRecord(d, recordType == recordSegmentsWithTxnIndex); err != nil {
				return nil, fmt.Errorf("record %d: tiered segments: %w", records, err)
			}
		case recordType == recordScramCredential:
			c := decodeScramCredential(d)
			if err := d.finish(); err != nil {
				return nil, fmt.Errorf("record %d: SCRAM credential: %w", records, err)
			}
			if err := c.validate(); err != nil {
				return nil, corruptf("record %d: %v", records, err)
			}
			key := scramKey(c.User, c.Mechanism)
			if lastScramKey != nil && bytes.Compare(key, lastScramKey) <= 0 {
				return nil, corruptf("record %d: SCRAM credentials out of order", records)
			}
			lastScramKey = key
			scram.Insert(key, c)
		case recordType == recordACL:
			if err := restoreACL(acls, d); err != nil {
				return nil, fmt.Errorf("record %d: ACL binding: %w", records, err)
			}
		case recordType == recordClientQuota:
			if err := restoreClientQuota(quotas, d); err != nil {
				return nil, fmt.Errorf("record %d: client quota: %w", records, err)
			}
		case recordType == recordExtension:
			if err := restoreExtension(d, topics, topicNames, brokerConfigs); err != nil {
				return nil, fmt.Errorf("record %d: %w", records, err)
			}
		case recordType == recordLogStart:
			if err := restoreLogStart(logStarts, d); err != nil {
				return nil, fmt.Errorf("record %d: log start: %w", records, err)
			}
		case recordType == recordEnd:
			count := d.uint64()
			if err := d.finish(); err != nil {
				return nil, fmt.Errorf("record %d: end: %w", records, err)
			}
			if count != records {
				return nil, corruptf("end record counts %d records, read %d", count, records)
			}
			if _, err := reader.ReadByte(); !errors.Is(err, io.EOF) {
				return nil, corruptf("data after the end record")
			}
			state.topics = topics.CommitOnly()
			state.topicNames = topicNames.CommitOnly()
			state.brokers = brokers.CommitOnly()
			state.segments, state.segmentCount = segments.finish()
			state.scram = scram.CommitOnly()
			state.acls = acls.CommitOnly()
			state.quotas = quotas.CommitOnly()
			state.brokerConfigs = brokerConfigs.CommitOnly()
			state.logStarts = logStarts.CommitOnly()
			return state, nil
		case recordType&recordIgnoreUnknown != 0:
			// A newer writer's optional record: skip it.
			records++
			continue
		default:
			return nil, corruptf("record %d: unknown record type %#x", records, recordType)
		}
		if err := d.finish(); err != nil {
			return nil, fmt.Errorf("record %d: type %#x: %w", records, recordType, err)
		}
		records++
	}
}

// segmentsRestorer rebuilds the tiered-segment manifests from segment
// records, which come in (topic id, partition, base offset) order, one
// partition's entries possibly spread over several records. It chunks them
// itself (segmentChunkSize), whatever the writer's record sizes.
type segmentsRestorer struct {
	tree       *iradix.Txn[*partitionSegments]
	key        []byte // of current; nil before the first record
	current    *partitionSegments
	lastOffset int64 // base offset of current's last entry
	count      int
}

func newSegmentsRestorer() *segmentsRestorer {
	return &segmentsRestorer{tree: iradix.New[*partitionSegments]().Txn()}
}

// restoreRecord restores one segment record: of type
// recordSegmentsWithTxnIndex when withTxnIndex, else recordSegments (its
// entries' txn index state is unknown).
func (r *segmentsRestorer) restoreRecord(d *decoder, withTxnIndex bool) error {
	topicID, partition := d.uuid(), d.int32()
	n := d.length(1 + minimumSegmentSize)
	if err := d.err(); err != nil {
		return err
	}
	if partition < 0 {
		return corruptf("negative partition")
	}
	key := segmentPartitionKey(topicID, partition)
	if n == 0 {
		return corruptf("empty segment record")
	}
	switch compare := bytes.Compare(key, r.key); {
	case r.key != nil && compare < 0:
		return corruptf("partitions out of order")
	case r.key == nil || compare > 0:
		r.flush()
		r.key = key
		r.current = &partitionSegments{}
	}
	for range n {
		var segment SegmentManifest
		segment.State = SegmentState(d.uint8())
		if withTxnIndex {
			decodeSegment(d, &segment)
		} else {
			decodeSegmentV1(d, &segment)
		}
		if err := d.err(); err != nil {
			return err
		}
		if segment.State < SegmentCopyStarted || segment.State > SegmentDeleteStarted {
			return corruptf("segment state %d", segment.State)
		}
		if r.current.count > 0 && segment.BaseOffset <= r.lastOffset {
			return corruptf("segment at base offset %d follows one at %d", segment.BaseOffset, r.lastOffset)
		}
		r.lastOffset = segment.BaseOffset
		chunks := r.current.chunks
		if len(chunks) == 0 || len(chunks[len(chunks)-1]) == segmentChunkSize {
			chunks = append(chunks, make([]SegmentManifest, 0, segmentChunkSize))
		}
		chunks[len(chunks)-1] = append(chunks[len(chunks)-1], segment)
		r.current.chunks = chunks
		r.current.count++
	}
	return d.finish()
}

// flush stores the partition being restored.
func (r *segmentsRestorer) flush() {
	if r.current != nil {
		r.tree.Insert(r.key, r.current)
		r.count += r.current.count
	}
}

// finish returns the restored manifests and their entry count.
func (r *segmentsRestorer) finish() (*iradix.Tree[*partitionSegments], int) {
	r.flush()
	r.current = nil
	return r.tree.CommitOnly(), r.count
}

// writeExtensionRecords writes the recordExtension records: every
// partition reassignment in progress, then every broker's dynamic configs.
// Nothing for a state without either, so older snapshots' bytes stay.
func writeExtensionRecords(w *snapshotWriter, state *State) error {
	iterator := state.topics.Root().Iterator()
	for _, topic, ok := iterator.Next(); ok; _, topic, ok = iterator.Next() {
		for _, p := range topic.Partitions {
			if !p.Reassigning() {
				continue
			}
			encodeReassignmentRecord(&w.payload, topic.ID, p)
			if err := w.record(recordExtension); err != nil {
				return fmt.Errorf("write reassignment of topic %q partition %d: %w", topic.Name, p.Index, err)
			}
		}
	}
	configs := state.brokerConfigs.Root().Iterator()
	for key, values, ok := configs.Next(); ok; key, values, ok = configs.Next() {
		id := int32(binary.BigEndian.Uint32(key))
		encodeBrokerConfigsRecord(&w.payload, id, values)
		if err := w.record(recordExtension); err != nil {
			return fmt.Errorf("write dynamic configs of broker %d: %w", id, err)
		}
	}
	return nil
}

// restoreExtension applies one recordExtension record to the state being
// restored: a reassignment patches its partition, whose topic record came
// before.
func restoreExtension(d *decoder, topics *iradix.Txn[*Topic], topicNames *iradix.Txn[string], brokerConfigs *iradix.Txn[map[string]string]) error {
	switch kind := d.uint8(); kind {
	case extensionReassignment:
		topicID, index := d.uuid(), d.int32()
		adding, removing := d.int32s(), d.int32s()
		if err := d.finish(); err != nil {
			return fmt.Errorf("reassignment: %w", err)
		}
		name, ok := topicNames.Get(topicID[:])
		if !ok {
			return corruptf("reassignment of unknown topic id %s", formatTopicID(topicID))
		}
		topic, _ := topics.Get([]byte(name))
		if !topic.HasPartition(index) {
			return corruptf("reassignment of topic %q partition %d, which it does not have", name, index)
		}
		changed := *topic
		changed.Partitions = slices.Clone(topic.Partitions)
		changed.Partitions[index].AddingReplicas = adding
		changed.Partitions[index].RemovingReplicas = removing
		topics.Insert([]byte(name), &changed)
	case extensionBrokerConfigs:
		id, values := d.int32(), d.stringMap()
		if err := d.finish(); err != nil {
			return fmt.Errorf("broker configs: %w", err)
		}
		brokerConfigs.Insert(brokerConfigKey(id), values)
	default:
		return corruptf("unknown extension record kind %d", kind)
	}
	return nil
}
