package txn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenTransaction is the Ongoing state the value golden files hold.
func goldenTransaction() *transaction {
	return &transaction{
		id: "payments-7", producerID: 4242, producerEpoch: 3, lastProducerID: -1, lastProducerEpoch: -1, nextProducerID: -1,
		timeoutMillis: 60000, state: kmsg.TransactionStateOngoing,
		partitions: map[group.TopicPartition]struct{}{
			{Topic: "orders", Partition: 2}: {}, {Topic: "orders", Partition: 0}: {}, {Topic: "__consumer_offsets", Partition: 17}: {},
		},
		start: 1_700_000_000_000, lastUpdate: 1_700_000_000_500,
	}
}

func checkGolden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update once to create it)", err)
	}
	if got != nil && !bytes.Equal(got, want) {
		t.Fatalf("%s changed: the __transaction_state format is Kafka's and must not change\ngot  %x\nwant %x", name, got, want)
	}
	return want
}

// TestRecordGolden pins the record encodings (Kafka's TransactionLogKey v0
// and TransactionLogValue v0, which this coordinator wrote before
// Transactions V2 and still reads) and checks the layout field by field
// against the package doc, independently of the encoder.
func TestRecordGolden(t *testing.T) {
	key := checkGolden(t, "key-v0.golden", encodeKey("payments-7"))
	if want := append([]byte{0, 0, 0, 10}, "payments-7"...); !bytes.Equal(key, want) {
		t.Fatalf("key %x, want %x", key, want)
	}
	value := checkGolden(t, "value-v0-ongoing.golden", encodeValueVersion(goldenTransaction(), 0))
	be := binary.BigEndian
	if v := int16(be.Uint16(value[0:])); v != 0 {
		t.Fatalf("value version %d", v)
	}
	if pid, epoch, timeout, status := int64(be.Uint64(value[2:])), int16(be.Uint16(value[10:])), int32(be.Uint32(value[12:])), value[16]; pid != 4242 || epoch != 3 || timeout != 60000 || status != 1 {
		t.Fatalf("fixed fields: pid %d epoch %d timeout %d status %d", pid, epoch, timeout, status)
	}
	if n := int32(be.Uint32(value[17:])); n != 2 {
		t.Fatalf("%d topics, want 2", n)
	}
	tail := value[len(value)-16:]
	if last, start := int64(be.Uint64(tail)), int64(be.Uint64(tail[8:])); last != 1_700_000_000_500 || start != 1_700_000_000_000 {
		t.Fatalf("timestamps: last update %d start %d", last, start)
	}

	empty := goldenTransaction()
	empty.state, empty.partitions, empty.start = kmsg.TransactionStateEmpty, map[group.TopicPartition]struct{}{}, -1
	emptyValue := checkGolden(t, "value-v0-empty.golden", encodeValueVersion(empty, 0))
	if n := int32(be.Uint32(emptyValue[17:])); n != -1 {
		t.Fatalf("Empty's partitions are written as %d, want null (-1) as Kafka writes them", n)
	}

	for _, c := range []struct {
		name  string
		value []byte
		want  *transaction
	}{{"ongoing", value, goldenTransaction()}, {"empty", emptyValue, empty}} {
		id, got, err := decodeRecord(key, c.value)
		if err != nil || id != "payments-7" || !reflect.DeepEqual(got, c.want) {
			t.Fatalf("%s: decoded %q %+v %v, want %+v", c.name, id, got, err, c.want)
		}
	}
	if id, got, err := decodeRecord(key, nil); err != nil || id != "payments-7" || got != nil {
		t.Fatalf("tombstone: %q %+v %v", id, got, err)
	}
}

// TestReadsValueV1 reads a TransactionLogValue version 1 (flexible, with
// the KIP-890 tagged fields) as Kafka 4 writes it with transaction.version 2.
func TestReadsValueV1(t *testing.T) {
	v := kmsg.NewTxnMetadataValue()
	v.Version = 1
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis = 4242, 3, 60000
	v.State = kmsg.TransactionStatePrepareCommit
	v.Topics = []kmsg.TxnMetadataValueTopic{{Topic: "orders", Partitions: []int32{0, 2}}}
	v.LastUpdateTimestamp, v.StartTimestamp = 1_700_000_000_500, 1_700_000_000_000
	v.PreviousProducerID, v.NextProducerID, v.ClientTransactionVersion, v.NextProducerEpoch = 4000, 4300, 2, 0
	var encoded []byte
	if *updateGolden {
		encoded = v.AppendTo(nil)
	}
	value := checkGolden(t, "value-v1-prepare-commit.golden", encoded)
	_, got, err := decodeRecord(encodeKey("payments-7"), value)
	if err != nil {
		t.Fatal(err)
	}
	want := &transaction{id: "payments-7", producerID: 4242, producerEpoch: 3, lastProducerID: 4000, lastProducerEpoch: -1,
		nextProducerID: 4300, version: V2, timeoutMillis: 60000, state: kmsg.TransactionStatePrepareCommit,
		partitions: map[group.TopicPartition]struct{}{{Topic: "orders", Partition: 0}: {}, {Topic: "orders", Partition: 2}: {}},
		start:      1_700_000_000_000, lastUpdate: 1_700_000_000_500}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
}

// TestValueV1Golden pins the TransactionLogValue version 1 written (flexible,
// Kafka's layout, compared with kmsg's encoding of the same fields) for a
// V1 transaction (no tagged field set) and a V2 transaction at an
// exhausted epoch (ClientTransactionVersion 2, NextProducerId, and the
// PreviousProducerId of an earlier rotation), and reads them back.
func TestValueV1Golden(t *testing.T) {
	v1 := goldenTransaction()
	v2 := goldenTransaction()
	v2.state, v2.version, v2.producerEpoch, v2.nextProducerID, v2.lastProducerID = kmsg.TransactionStatePrepareCommit, V2, 32767, 5000, 4000
	for _, c := range []struct {
		name string
		t    *transaction
		tags map[string]int64
	}{{"value-v1-ongoing.golden", v1, nil}, {"value-v1-v2-prepare-commit.golden", v2, map[string]int64{"prev": 4000, "next": 5000, "tv": 2}}} {
		value := checkGolden(t, c.name, encodeValue(c.t))
		if version := int16(binary.BigEndian.Uint16(value)); version != 1 {
			t.Fatalf("%s: version %d", c.name, version)
		}
		var kv kmsg.TxnMetadataValue
		if err := kv.ReadFrom(value); err != nil {
			t.Fatal(err)
		}
		if kv.PreviousProducerID != c.t.lastProducerID || kv.NextProducerID != c.t.nextProducerID || kv.ClientTransactionVersion != int16(c.t.version) || kv.NextProducerEpoch != -1 {
			t.Fatalf("%s: tagged fields %+v", c.name, kv)
		}
		if c.tags == nil && value[len(value)-1] != 0 {
			t.Fatalf("%s: a V1 transaction writes no tagged field, last byte %x", c.name, value[len(value)-1])
		}
		_, got, err := decodeRecord(encodeKey(c.t.id), value)
		if err != nil || !reflect.DeepEqual(got, c.t) {
			t.Fatalf("%s: decoded %+v %v, want %+v", c.name, got, err, c.t)
		}
	}
}

func TestUnknownRecordsAreClassified(t *testing.T) {
	value := encodeValue(goldenTransaction())
	future := append([]byte{0, 9}, value[2:]...)
	otherKey := append([]byte{0, 1}, encodeKey("x")[2:]...)
	for name, c := range map[string][2][]byte{
		"short key":     {{0}, value},
		"key version 1": {otherKey, value},
		"value v9":      {encodeKey("x"), future},
		"short value":   {encodeKey("x"), {0}},
		"torn value":    {encodeKey("x"), value[:20]},
	} {
		if _, _, err := decodeRecord(c[0], c[1]); !errors.Is(err, ErrUnknownRecord) {
			t.Errorf("%s: %v, want ErrUnknownRecord", name, err)
		}
	}
}
