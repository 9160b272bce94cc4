package broker_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// The handler fuzz tests send hostile but decodable requests — every
// served API key and version, fields filled from the fuzz bytes (negative
// and huge numbers, empty, ".." and path-like names, long strings, nil and
// empty arrays, record batches valid or not) — through a real connection
// to an in-process broker without an authorizer (so every handler runs its
// logic, not an authorization error), and check that:
//
//   - the broker does not crash (a panic in a handler kills the test
//     binary);
//   - every request gets a response, or none where Kafka sends none
//     (Produce with acks=0), or the connection is closed cleanly (EOF):
//     a ping (ApiVersions) sent behind it must come back within
//     handlerFuzzTimeout, so a handler cannot hang the connection;
//   - the response has the request's correlation id and decodes at the
//     request's version, using its whole frame, and encodes back to the
//     same bytes;
//   - the broker's heap stays bounded and it creates no file outside its
//     data dir (names such as "../strata-fuzz-escape" must not leave it).
//
// Fuzz with one worker (the broker runs in each):
//
//	go test ./broker -run XXX -fuzz 'FuzzHandlers$' -parallel 1
//
// FuzzHandlerSequences chains a few requests per input, FuzzSASL
// (sasl_fuzz_test.go) fuzzes authentication. TestHandlersHostileRequests
// runs a fixed set of inputs without -fuzz.

// handlerFuzzTimeout bounds one request and its ping. The filler clamps
// every wait a request may ask for (timeouts, max wait, session and
// rebalance timeouts) far below it.
const handlerFuzzTimeout = 10 * time.Second

// handlerFuzzMaxHeap is the heap the in-process broker (and the test) may
// reach; a request that makes the broker allocate without bound fails.
const handlerFuzzMaxHeap = 1 << 30

// escapeMarker is in the path-like names the filler uses: no file named
// with it may appear outside the data dir.
const escapeMarker = "strata-fuzz-escape"

// handlerFuzzer is a broker with some state to reach (a topic with
// records, a compacted topic, a group with offsets) and a connection to
// it.
type handlerFuzzer struct {
	tb       testing.TB
	node     *brokertest.Node
	apis     []kmsg.ApiVersionsResponseApiKey
	topicIDs [][16]byte
	// known are values seen in responses (producer ids and epochs,
	// generations, member ids), so that requests can name them.
	known *knownValues
	addr  string // the listener requests go to; node.Addr when ""
	conn  net.Conn
	id    int32
	runs  int
	// outside are the entries, at start, of the directories a path
	// escaping the data dir would land in.
	outside map[string]map[string]bool
}

func startHandlerFuzzer(tb testing.TB) *handlerFuzzer {
	n := brokertest.Start(tb, func(c *broker.Config) {
		// Joins and syncs wait at most the clamped timeouts.
		c.GroupMinSessionTimeout = time.Millisecond
		c.GroupMaxSessionTimeout = time.Second
	})
	hf := &handlerFuzzer{tb: tb, node: n, known: &knownValues{}}
	tb.Cleanup(func() {
		if hf.conn != nil {
			hf.conn.Close()
		}
	})
	versions := hf.mustRoundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse)
	hf.apis = versions.ApiKeys
	hf.setUpState()
	hf.setUpMembers()
	hf.outside = map[string]map[string]bool{}
	for _, dir := range hf.outsideDirs() {
		hf.outside[dir] = listDir(dir)
	}
	return hf
}

// outsideDirs are the data dir's parent and grandparent and the working
// directory, where "../x", "../../x" or a relative path would create
// files.
func (hf *handlerFuzzer) outsideDirs() []string {
	parent := filepath.Dir(hf.node.Dir())
	wd, _ := os.Getwd()
	return []string{parent, filepath.Dir(parent), wd}
}

func listDir(dir string) map[string]bool {
	entries, _ := os.ReadDir(dir)
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// setUpState creates what the fuzzed requests may name (again, every 500
// requests, if a fuzzed request deleted it): topics "t" (3 partitions, some records) and
// "compacted", and group "g" with a committed offset.
func (hf *handlerFuzzer) setUpState() {
	ct := kmsg.NewPtrCreateTopicsRequest()
	for _, topic := range []kmsg.CreateTopicsRequestTopic{
		{Topic: "t", NumPartitions: 3, ReplicationFactor: 1},
		{Topic: "compacted", NumPartitions: 1, ReplicationFactor: 1, Configs: []kmsg.CreateTopicsRequestTopicConfig{{Name: "cleanup.policy", Value: kmsg.StringPtr("compact")}}},
	} {
		ct.Topics = append(ct.Topics, topic)
	}
	hf.mustRoundTrip(ct)
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(9)
	produce.Acks = -1
	produce.TimeoutMillis = 5000
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: validBatch([]byte("k"), []byte("v"))}}}}
	hf.mustRoundTrip(produce)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "g", -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
	hf.mustRoundTrip(commit)
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	hf.topicIDs = hf.topicIDs[:0]
	for _, topic := range hf.mustRoundTrip(meta).(*kmsg.MetadataResponse).Topics {
		hf.topicIDs = append(hf.topicIDs, topic.TopicID)
	}
}

// setUpMembers makes values to name: a producer id and epoch, a member
// id and generation (they reach known through the responses).
func (hf *handlerFuzzer) setUpMembers() {
	initPID := kmsg.NewPtrInitProducerIDRequest()
	initPID.TransactionalID = kmsg.StringPtr("txn")
	initPID.TransactionTimeoutMillis = 1000
	hf.roundTrip(initPID)
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g2", "consumer", 1000, 100
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if r, ok := hf.roundTrip(join); ok && r != nil {
		join.MemberID = r.(*kmsg.JoinGroupResponse).MemberID
		hf.roundTrip(join)
	}
}

// validBatch is one record batch of one record.
func validBatch(key, value []byte) []byte {
	rec := kmsg.Record{Key: key, Value: value}
	return encodeBatch(&kmsg.RecordBatch{Magic: 2, FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1}, encodeRecord(&rec), 1)
}

func encodeRecord(r *kmsg.Record) []byte {
	r.Length = 0
	body := r.AppendTo(nil)[1:] // Length 0 is one varint byte
	return append(binary.AppendVarint(nil, int64(len(body))), body...)
}

// encodeBatch encodes b with records (count of them), its magic, length,
// count and CRC right.
func encodeBatch(b *kmsg.RecordBatch, records []byte, count int) []byte {
	b.Records = records
	b.Magic = 2
	b.NumRecords = int32(count)
	b.LastOffsetDelta = max(int32(count)-1, 0)
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// roundTrip sends req and a ping behind it and returns req's response:
// nil with ok when the broker answered the ping only (req had no
// response), nil and not ok when it closed the connection. It fails the
// test on a hang, a response of another correlation id or one that does
// not decode at the request's version.
func (hf *handlerFuzzer) roundTrip(req kmsg.Request) (resp kmsg.Response, ok bool) {
	tb := hf.tb
	if hf.conn == nil {
		addr := hf.addr
		if addr == "" {
			addr = hf.node.Addr
		}
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		hf.conn = nc
	}
	hf.conn.SetDeadline(time.Now().Add(handlerFuzzTimeout))
	hf.id++
	reqID := hf.id
	hf.id++
	pingID := hf.id
	ping := kmsg.NewPtrApiVersionsRequest()
	ping.SetVersion(0)
	frames := append(handlerFuzzFrame(req, reqID), handlerFuzzFrame(ping, pingID)...)
	if _, err := hf.conn.Write(frames); err != nil {
		// Closed for an earlier request's frame while we wrote.
		hf.closeConn()
		return nil, false
	}
	for {
		id, body, err := readResponseFrame(hf.conn)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tb.Fatalf("%s v%d: no response nor close within %v:\n%s", kmsg.NameForKey(req.Key()), req.GetVersion(), handlerFuzzTimeout, describeRequest(req))
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				tb.Fatalf("%s v%d: reading the response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
			}
			hf.closeConn()
			return resp, false
		}
		switch id {
		case pingID:
			return resp, true
		case reqID:
			resp = kmsg.ResponseForKey(req.Key())
			resp.SetVersion(req.GetVersion())
			if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
				n, ok := broker.SkipTaggedFields(body)
				if !ok {
					tb.Fatalf("%s v%d: malformed response header tags", kmsg.NameForKey(req.Key()), req.GetVersion())
				}
				body = body[n:]
			}
			if err := resp.ReadFrom(body); err != nil {
				tb.Fatalf("%s v%d: response does not decode at the request's version: %v\n%s", kmsg.NameForKey(req.Key()), req.GetVersion(), err, describeRequest(req))
			}
			if again := resp.AppendTo(nil); !bytes.Equal(again, body) {
				tb.Fatalf("%s v%d: response of %d bytes decodes to one of %d bytes (trailing or invalid bytes)\n%s", kmsg.NameForKey(req.Key()), req.GetVersion(), len(body), len(again), describeRequest(req))
			}
			if hf.known != nil {
				hf.known.harvest(reflect.ValueOf(resp).Elem(), "", 0)
			}
		default:
			tb.Fatalf("%s v%d: response of correlation id %d, want %d or %d", kmsg.NameForKey(req.Key()), req.GetVersion(), id, reqID, pingID)
		}
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

func (hf *handlerFuzzer) closeConn() {
	if hf.conn != nil {
		hf.conn.Close()
		hf.conn = nil
	}
}

// mustRoundTrip is roundTrip of a request that must be answered.
func (hf *handlerFuzzer) mustRoundTrip(req kmsg.Request) kmsg.Response {
	resp, ok := hf.roundTrip(req)
	if !ok || resp == nil {
		hf.tb.Fatalf("%s: no response", kmsg.NameForKey(req.Key()))
	}
	return resp
}

func handlerFuzzFrame(req kmsg.Request, id int32) []byte {
	frame := make([]byte, 4, 256)
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.Key()))
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.GetVersion()))
	frame = binary.BigEndian.AppendUint32(frame, uint32(id))
	frame = binary.BigEndian.AppendUint16(frame, 4)
	frame = append(frame, "fuzz"...)
	if req.IsFlexible() {
		frame = append(frame, 0)
	}
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame
}

func readResponseFrame(nc net.Conn) (int32, []byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(nc, size[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 256<<20 {
		return 0, nil, fmt.Errorf("response frame of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(nc, buf); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(buf)), buf[4:], nil
}

// longRuns are the long strings of the filler, shortened in messages.
var longRuns = regexp.MustCompile(`a{20,}|b{20,}|c{20,}|d{20,}|e{20,}|f{20,}|g{20,}|h{20,}|i{20,}|j{20,}|k{20,}|l{20,}|m{20,}|n{20,}|o{20,}|p{20,}|q{20,}|r{20,}|s{20,}|t{20,}|u{20,}|v{20,}|w{20,}|x{20,}|y{20,}|z{20,}|\x00{20,}`)

func describeRequest(req kmsg.Request) string {
	s := longRuns.ReplaceAllStringFunc(fmt.Sprintf("%+v", req), func(run string) string {
		return fmt.Sprintf("%c×%d", run[0], len(run))
	})
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return s
}

// run builds the request input selects (its first bytes: API and
// version), fills it from the rest, sends it and checks the broker.
func (hf *handlerFuzzer) run(input []byte) {
	if len(input) < 2 || len(hf.apis) == 0 {
		return
	}
	a := hf.apis[int(input[0])%len(hf.apis)]
	version := a.MinVersion + int16(int(input[1])%int(a.MaxVersion-a.MinVersion+1))
	req := kmsg.RequestForKey(a.ApiKey)
	req.SetVersion(version)
	f := &filler{in: input[2:], budget: 64, bytesBudget: 256 << 10, topicIDs: hf.topicIDs, known: hf.known}
	f.fill(reflect.ValueOf(req).Elem(), "")
	req.SetVersion(version) // the filler skips Version; keep it anyway
	resp, ok := hf.roundTrip(req)
	if ok && resp == nil && !isAcks0Produce(req) {
		hf.tb.Fatalf("%s v%d: no response\n%s", kmsg.NameForKey(req.Key()), version, describeRequest(req))
	}
	hf.runs++
	hf.checkHeap(req)
	hf.checkOutside(req)
	if hf.runs%500 == 0 {
		hf.setUpState()
	}
}

func isAcks0Produce(req kmsg.Request) bool {
	p, ok := req.(*kmsg.ProduceRequest)
	return ok && p.Acks == 0
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func (hf *handlerFuzzer) checkHeap(req kmsg.Request) {
	metrics.Read(heapSample)
	if heap := heapSample[0].Value.Uint64(); heap > handlerFuzzMaxHeap {
		hf.tb.Fatalf("%s v%d: heap of %d MiB after the request\n%s", kmsg.NameForKey(req.Key()), req.GetVersion(), heap>>20, describeRequest(req))
	}
}

func (hf *handlerFuzzer) checkOutside(req kmsg.Request) {
	for dir, before := range hf.outside {
		for name := range listDir(dir) {
			// Any new entry beside the data dir; elsewhere (the
			// working dir, /tmp) one of the filler's names.
			if !before[name] && (strings.Contains(name, escapeMarker) || dir == hf.outsideDirs()[0]) {
				hf.tb.Fatalf("%s v%d: created %s outside the data dir\n%s", kmsg.NameForKey(req.Key()), req.GetVersion(), filepath.Join(dir, name), describeRequest(req))
			}
		}
	}
}

// filler sets a request's fields from fuzz bytes. Each field takes a
// selector byte first; 0 (and running out of input) keeps the request's
// default, so an empty input is the default request. budget bounds the
// array elements, bytesBudget the long strings and bytes, so that a
// request stays small whatever the input.
type filler struct {
	in          []byte
	budget      int
	bytesBudget int
	topicIDs    [][16]byte
	known       *knownValues
}

func (f *filler) byte() byte {
	if len(f.in) == 0 {
		return 0
	}
	b := f.in[0]
	f.in = f.in[1:]
	return b
}

func (f *filler) bytes(n int) []byte {
	n = min(n, len(f.in))
	b := f.in[:n]
	f.in = f.in[n:]
	return append([]byte(nil), b...)
}

func (f *filler) uint64() uint64 {
	var b [8]byte
	copy(b[:], f.bytes(8))
	return binary.LittleEndian.Uint64(b[:])
}

// names are what string fields may take besides odd strings: existing
// topics, groups and transactional ids, config names and values.
var fuzzNames = []string{
	"t", "compacted", "g", "txn", "__consumer_offsets", "__transaction_state", "new-topic",
	"cleanup.policy", "compact", "delete", "compact,delete", "retention.ms", "retention.bytes",
	"segment.bytes", "segment.ms", "segment.index.bytes", "max.message.bytes", "min.insync.replicas",
	"message.timestamp.type", "LogAppendTime", "compression.type", "zstd", "local.retention.ms",
	"remote.storage.enable", "true", "false", "-1", "-2", "0", "1", "9223372036854775807", "1e3", "NaN",
	"log.dir", "log.dirs", "/", "consumer", "range", "User:ANONYMOUS", "*", "User:*", "localhost",
	"SCRAM-SHA-256", "PLAIN", "producer_byte_rate", "consumer_byte_rate", "request_percentage",
	"connection_creation_rate", "client-id", "user", "ip",
}

var oddStrings = []string{
	"", ".", "..", "../" + escapeMarker, "../../" + escapeMarker, "/tmp/" + escapeMarker,
	"t/../../" + escapeMarker, "a\x00b", "\xff\xfe", "-", "t-0", "t.0", "__consumer_offsets-0",
	" ", "%", "CON", "t\n",
}

func (f *filler) string() string {
	switch f.byte() % 8 {
	case 0, 1:
		return fuzzNames[int(f.byte())%len(fuzzNames)]
	case 2, 3:
		return oddStrings[int(f.byte())%len(oddStrings)]
	case 4:
		return string(f.bytes(int(f.byte() % 32)))
	case 5:
		// Long: around the topic name limit (249), or far beyond.
		n := []int{249, 250, 255, 256, 1000, 32767, 40000}[int(f.byte())%7]
		if n > f.bytesBudget {
			return ""
		}
		f.bytesBudget -= n
		return strings.Repeat(string(rune('a'+f.byte()%26)), n)
	case 6:
		if len(f.known.strings) > 0 {
			return f.known.strings[int(f.byte())%len(f.known.strings)]
		}
		return fmt.Sprint(int64(f.uint64()))
	default:
		return "t-" + fmt.Sprint(f.byte())
	}
}

func (f *filler) int(bits int) int64 {
	switch f.byte() % 8 {
	case 1:
		return 0
	case 2:
		return -1
	case 3:
		return int64(int8(f.byte()))
	case 4:
		return 1<<(bits-1) - 1
	case 5:
		return -1 << (bits - 1)
	case 6:
		return int64(f.uint64()<<(64-bits)) >> (64 - bits)
	case 7:
		if sel := f.byte(); len(f.known.ints) > 0 && sel%2 == 0 {
			x := f.known.ints[int(sel/2)%len(f.known.ints)]
			return x << (64 - bits) >> (64 - bits)
		}
		return 1
	default:
		return 1
	}
}

// waitField says whether a field asks the broker to wait (a timeout, a
// long poll): the filler clamps those to at most 200 ms.
func waitField(name string) bool {
	return strings.Contains(name, "Timeout") || strings.Contains(name, "MaxWait") || strings.HasSuffix(name, "Millis") && !strings.Contains(name, "Timestamp") && !strings.Contains(name, "Retention")
}

func (f *filler) fill(v reflect.Value, name string) {
	if len(f.in) == 0 {
		return
	}
	if v.Type() == reflect.TypeFor[kmsg.Tags]() || name == "Version" {
		return
	}
	if name == "Records" && v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
		if sel := f.byte(); sel%4 != 0 {
			v.SetBytes(f.batches())
			return
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				f.fill(v.Field(i), v.Type().Field(i).Name)
			}
		}
	case reflect.Bool:
		if sel := f.byte(); sel != 0 {
			v.SetBool(sel&1 == 1)
		}
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if f.byte()%4 == 0 {
			return // keep the default
		}
		x := f.int(v.Type().Bits())
		if waitField(name) && x > 200 {
			x %= 200
		}
		v.SetInt(x)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(f.uint64())
	case reflect.Float64:
		v.SetFloat([]float64{0, -1, 1, 0.5, math.NaN(), math.Inf(1), math.Inf(-1), 1e308, -1e308, 1e-300, math.MaxInt64}[int(f.byte())%11])
	case reflect.String:
		if f.byte()%4 != 0 {
			v.SetString(f.string())
		}
	case reflect.Array: // [16]byte: a topic id, uuid
		switch f.byte() % 4 {
		case 1:
			v.SetZero()
		case 2:
			if len(f.topicIDs) > 0 {
				v.Set(reflect.ValueOf(f.topicIDs[int(f.byte())%len(f.topicIDs)]))
			}
		case 3:
			for i := range v.Len() {
				v.Index(i).SetUint(uint64(f.byte()))
			}
		}
	case reflect.Pointer:
		switch f.byte() % 4 {
		case 0:
		case 1:
			v.SetZero()
		default:
			p := reflect.New(v.Type().Elem())
			f.fill(p.Elem(), name)
			v.Set(p)
		}
	case reflect.Slice:
		sel := f.byte() % 8
		switch {
		case sel == 0:
		case sel == 1:
			v.SetZero()
		case sel == 2:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		case v.Type().Elem().Kind() == reflect.Uint8:
			n := int(f.byte())
			if sel == 3 && f.bytesBudget >= 64<<10 {
				n = 64 << 10
			}
			f.bytesBudget -= n
			b := append(f.bytes(n), make([]byte, max(0, n-len(f.in)))...)
			v.SetBytes(b[:n])
		default:
			n := 1 + int(f.byte()%3)
			if sel == 7 {
				n = 1 + int(f.byte()%8)
			}
			n = min(n, f.budget)
			f.budget -= n
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := range n {
				// Elements start as kmsg's defaults, as NewXxx makes them.
				if d, ok := s.Index(i).Addr().Interface().(interface{ Default() }); ok {
					d.Default()
				}
				f.fill(s.Index(i), name)
			}
			v.Set(s)
		}
	}
}

// batches are one or two record batches, with their header's fields
// from the input. Most have their CRC right (so that the broker reads
// their records) and their length, count and last offset delta right;
// some of those are left as the input set them. Their records are
// encoded kmsg records or raw input bytes, compressed or not.
func (f *filler) batches() []byte {
	var out []byte
	for range 1 + int(f.byte()%2) {
		var b kmsg.RecordBatch
		b.Magic = 2
		b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
		b.FirstTimestamp = time.Now().UnixMilli()
		b.MaxTimestamp = b.FirstTimestamp
		if f.byte()%2 == 0 {
			f.fill(reflect.ValueOf(&b).Elem(), "Batch")
		}
		var data []byte
		count := int(f.byte() % 4)
		if mode := f.byte(); mode%4 == 0 {
			data = f.bytes(int(mode / 4)) // raw: the record parser's input
		} else {
			for range count {
				var r kmsg.Record
				r.Value = []byte("v")
				f.fill(reflect.ValueOf(&r).Elem(), "Record")
				if mode%4 == 1 {
					data = append(data, r.AppendTo(nil)...) // its Length as filled
				} else {
					data = append(data, encodeRecord(&r)...)
				}
			}
		}
		fixes := f.byte()
		if codec := b.Attributes & 7; codec >= 1 && codec <= 4 && fixes&8 == 0 {
			compressed, _ := fuzzCompressors()[codec-1].Compress(new(bytes.Buffer), data)
			data = append([]byte(nil), compressed...)
		}
		b.Records = data
		if fixes&1 == 0 {
			b.Magic = 2
		}
		if fixes&2 == 0 {
			b.NumRecords = int32(count)
		}
		if fixes&4 == 0 {
			b.LastOffsetDelta = max(int32(count)-1, 0)
		}
		enc := b.AppendTo(nil)
		if fixes&16 == 0 {
			binary.BigEndian.PutUint32(enc[8:], uint32(len(enc)-12))
		}
		if fixes&32 == 0 {
			binary.BigEndian.PutUint32(enc[17:], crc32.Checksum(enc[21:], crc32.MakeTable(crc32.Castagnoli)))
		}
		out = append(out, enc...)
	}
	return out
}

// fuzzCompressors are gzip, snappy, lz4 and zstd (codecs 1-4), made once:
// a zstd encoder is costly to make.
var fuzzCompressors = sync.OnceValue(func() []kgo.Compressor {
	var cs []kgo.Compressor
	for _, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		c, err := kgo.DefaultCompressor(codec)
		if err != nil {
			panic(err)
		}
		cs = append(cs, c)
	}
	return cs
})

// knownValues are values harvested from responses, at most 32 of each
// kind (the latest).
type knownValues struct {
	ints    []int64
	strings []string
}

func (k *knownValues) harvest(v reflect.Value, name string, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				k.harvest(v.Field(i), v.Type().Field(i).Name, depth+1)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			for i := range min(v.Len(), 4) {
				k.harvest(v.Index(i), name, depth+1)
			}
		}
	case reflect.Int16, reflect.Int32, reflect.Int64:
		switch name {
		case "ProducerID", "ProducerEpoch", "Generation", "GenerationID", "HighWatermark", "LogStartOffset", "LeaderEpoch", "Offset", "BaseOffset", "LastStableOffset", "CoordinatorEpoch":
			if x := v.Int(); x > 0 {
				k.ints = appendKnown(k.ints, x)
			}
		}
	case reflect.String:
		switch name {
		case "MemberID", "LeaderID", "Leader", "GroupInstanceID", "TransactionalID", "Group", "Protocol":
			if x := v.String(); x != "" && len(x) < 300 {
				k.strings = appendKnown(k.strings, x)
			}
		}
	}
}

func appendKnown[T comparable](s []T, x T) []T {
	if slices.Contains(s, x) {
		return s
	}
	if len(s) == 32 {
		s = s[1:]
	}
	return append(s, x)
}

// seeds are one input per served API key and version: the default
// request.
func (hf *handlerFuzzer) seeds() [][]byte {
	var seeds [][]byte
	for i, a := range hf.apis {
		for v := a.MinVersion; v <= a.MaxVersion; v++ {
			seeds = append(seeds, []byte{byte(i), byte(v - a.MinVersion)})
		}
	}
	return seeds
}

// FuzzHandlers sends one fuzzed request (and a ping) per input.
func FuzzHandlers(f *testing.F) {
	hf := startHandlerFuzzer(f)
	for _, seed := range hf.seeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		hf.tb = t
		defer func() { hf.tb = f }()
		hf.run(input)
	})
}

// TestHandlersHostileRequests is FuzzHandlers on a fixed set of inputs:
// each API's default requests, then handlerRandomRuns random requests
// per API key (seeded, so a failure reproduces).
func TestHandlersHostileRequests(t *testing.T) {
	const handlerRandomRuns = 200
	hf := startHandlerFuzzer(t)
	for _, seed := range hf.seeds() {
		hf.run(seed)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range handlerRandomRuns {
		for k := range hf.apis {
			input := make([]byte, 2+rng.IntN(300))
			for j := range input {
				input[j] = byte(rng.Uint32())
			}
			input[0] = byte(k)
			hf.run(input)
			if t.Failed() {
				t.Fatalf("run %d, input %x", i, input)
			}
		}
	}
}

// FuzzHandlerSequences is FuzzHandlers of a few requests per input, so
// that the fuzzer can chain them (a producer id, then a transaction's
// requests): each is a length byte and that many bytes of input for run.
func FuzzHandlerSequences(f *testing.F) {
	hf := startHandlerFuzzer(f)
	seeds := hf.seeds()
	for i := range seeds {
		next := seeds[(i*7+1)%len(seeds)]
		f.Add(append(append([]byte{2}, seeds[i]...), append([]byte{2}, next...)...))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		hf.tb = t
		defer func() { hf.tb = f }()
		for n := 0; n < 4 && len(input) > 0; n++ {
			size := min(int(input[0]), len(input)-1)
			hf.run(input[1 : 1+size])
			input = input[1+size:]
		}
	})
}
