//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiVersionsOK opens a connection and checks the broker answers on it.
func apiVersionsOK(t *testing.T, addr string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	if resp := c.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions: error %d", resp.ErrorCode)
	}
	return c
}

// noAnswerWithin asserts that nothing arrives on c for d: the broker has
// not read the request (or not accepted the connection).
func noAnswerWithin(t *testing.T, c *rawConn, d time.Duration, what string) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1)
	_, err := c.conn.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: want no answer for %s, got %v", what, d, err)
	}
}

// TestMaxConnectionsPerIP: with max.connections.per.ip 4, a fifth
// connection from the same address is closed at once, counted in
// /metrics, and the address gets a connection again once one closes.
func TestMaxConnectionsPerIP(t *testing.T) {
	b := startBroker(t, "--max-connections-per-ip", "4")
	var open []*rawConn
	for range 4 {
		open = append(open, apiVersionsOK(t, b.addr))
	}
	extra := dialRaw(t, b.addr)
	extra.expectClosed()
	series := `strata_client_connections_refused_total{listener="CLIENT",reason="max_connections_per_ip"}`
	if got := metricValue(t, b, series); got != 1 {
		t.Fatalf("%s = %v, want 1", series, got)
	}
	open[0].conn.Close()
	// The broker notices the close asynchronously: retry until it has.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		raw := &rawConn{tb: t, conn: c}
		raw.send(kmsg.NewPtrApiVersionsRequest())
		if _, _, err := raw.readFrame(); err == nil {
			c.Close()
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted after one of the four closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp := open[1].roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions on a connection kept open: error %d", resp.ErrorCode)
	}
}

// TestMaxConnections: with max.connections 4 the broker stops accepting:
// a fifth connection waits (its request is not answered) until one of the
// four closes, then it is served.
func TestMaxConnections(t *testing.T) {
	b := startBroker(t, "--max-connections", "4")
	var open []*rawConn
	for range 4 {
		open = append(open, apiVersionsOK(t, b.addr))
	}
	waiting := dialRaw(t, b.addr) // the kernel completes the handshake: it waits in the backlog
	waiting.send(kmsg.NewPtrApiVersionsRequest())
	noAnswerWithin(t, waiting, 2*time.Second, "a fifth connection with max.connections 4")
	if got := metricValue(t, b, "strata_client_connection_accept_pauses_total"); got < 1 {
		t.Fatalf("accept pauses %v, want at least 1", got)
	}
	open[0].conn.Close()
	if _, _, err := waiting.readFrame(); err != nil {
		t.Fatalf("the waiting connection is not served after a slot freed: %v", err)
	}
	// The broker keeps working for the others.
	for _, c := range open[1:] {
		if resp := c.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
			t.Fatalf("ApiVersions: error %d", resp.ErrorCode)
		}
	}
}

// TestPeerLogLinesRateLimited: a peer that makes the broker log a line per
// attempt — refused connections, malformed frames — gets at most the
// limiter's burst of lines, then one summary saying how many were
// suppressed (written at the latest when the broker stops).
func TestPeerLogLinesRateLimited(t *testing.T) {
	b := startBroker(t, "--max-connections-per-ip", "1")
	hold := apiVersionsOK(t, b.addr)
	const attempts = 200
	for range attempts {
		c := dialRaw(t, b.addr)
		c.expectClosed()
		c.conn.Close()
	}
	hold.conn.Close()
	// Malformed frames: each closes its connection with a logged reason.
	for i := range attempts {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte{0, 0, 0, 3, 1, 2, 3}) // a frame too small for a header
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("attempt %d: connection not closed", i)
			}
		}
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(data)
	total := 0
	for _, message := range []string{"refused a client connection", "closing client connection"} {
		lines := strings.Count(log, `msg="`+message)
		if lines == 0 || lines > 10 {
			t.Errorf("%q logged %d times for %d attempts, want 1..10", message, lines, attempts)
		}
		total += lines
		for _, line := range strings.Split(log, "\n") {
			if !strings.Contains(line, "suppressed similar log lines") || !strings.Contains(line, `message="`+message) {
				continue
			}
			_, after, _ := strings.Cut(line, "suppressed=")
			n, _ := strconv.Atoi(strings.Fields(after)[0])
			total += n
		}
	}
	// A connection that raced with the close of the one before it can be
	// refused instead of reading a frame: the sum over both messages
	// counts every attempt.
	if total < 2*attempts {
		t.Errorf("%d lines logged or suppressed for %d attempts", total, 2*attempts)
	}
}

// TestQueuedMaxRequestBytes: with queued.max.request.bytes 1 MiB, a
// connection that has announced a 1 MiB request holds the whole budget
// until it is handled: meanwhile the broker reads no other request (a
// second client's ApiVersions waits — backpressure, not an error), and
// answers it as soon as the first request is done. Then many producers
// sending large batches at once all get through.
func TestQueuedMaxRequestBytes(t *testing.T) {
	const limit = 1 << 20
	b := startBroker(t, "--socket-request-max-bytes", strconv.Itoa(limit), "--queued-max-request-bytes", strconv.Itoa(limit))
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 4, nil)

	// A produce frame of exactly the limit: nothing else fits beside it.
	encode := func(valueBytes int) []byte {
		req := produceRequest(topic, 0, buildBatch(time.Now().UnixMilli(), strings.Repeat("v", valueBytes)))
		return kmsg.NewRequestFormatter(kmsg.FormatterClientID("strata-e2e")).AppendRequest(nil, req, 1)
	}
	frame := encode(limit - 4096)
	frame = encode(limit - 4096 + limit - (len(frame) - 4))
	if len(frame)-4 != limit {
		t.Fatalf("test bug: a %d-byte frame", len(frame)-4)
	}
	big := dialRaw(t, b.addr)
	big.write(frame[:len(frame)-100])
	deadline := time.Now().Add(10 * time.Second)
	for metricOrZero(t, b, "strata_queued_request_bytes") < float64(len(frame)-4) {
		if time.Now().After(deadline) {
			t.Fatalf("queued request bytes %v, want %d", metricOrZero(t, b, "strata_queued_request_bytes"), len(frame)-4)
		}
		time.Sleep(20 * time.Millisecond)
	}
	small := dialRaw(t, b.addr)
	small.send(kmsg.NewPtrApiVersionsRequest())
	noAnswerWithin(t, small, 2*time.Second, "a request while the request memory is full")
	big.write(frame[len(frame)-100:])
	if _, _, err := big.readFrame(); err != nil {
		t.Fatalf("the large produce is not answered: %v", err)
	}
	if _, _, err := small.readFrame(); err != nil {
		t.Fatalf("the waiting request is not answered once memory is free: %v", err)
	}

	// 40 connections each send a 1 MiB produce but its last bytes: the
	// broker reads one of them into memory (the rest stays in the kernel's
	// socket buffers), so its peak RSS grows by far less than the 40 MiB
	// it would buffer without the limit. Then every one is completed and
	// answered.
	pid := b.pid()
	before := peakRSS(t, pid)
	const stalled = 40
	conns := make([]*rawConn, stalled)
	var writers sync.WaitGroup
	for i := range conns {
		conns[i] = dialRaw(t, b.addr)
		writers.Add(1)
		go func() {
			defer writers.Done()
			conns[i].conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := conns[i].conn.Write(frame[:len(frame)-100]); err != nil {
				t.Errorf("connection %d: %v", i, err)
			}
		}()
	}
	writers.Wait()
	time.Sleep(time.Second) // what the broker would read, it has read by now
	grown := peakRSS(t, pid) - before
	t.Logf("peak RSS grew by %d MiB with %d stalled 1 MiB requests", grown>>20, stalled)
	if grown > 16<<20 {
		t.Fatalf("peak RSS grew by %d MiB with %d stalled 1 MiB requests and queued.max.request.bytes 1 MiB", grown>>20, stalled)
	}
	for _, c := range conns {
		c.write(frame[len(frame)-100:])
	}
	for i, c := range conns {
		_, body, err := c.readFrame()
		if err != nil {
			t.Fatalf("stalled request %d not answered: %v", i, err)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(body[1:]); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("stalled request %d: %v %+v", i, err, resp.Topics)
		}
	}

	// Many producers of large batches at once: every record is acknowledged.
	before = peakRSS(t, pid)
	const producers, records = 12, 24
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), manualPartitioner(), kgo.ProducerBatchCompression(kgo.NoCompression()),
				kgo.ProducerBatchMaxBytes(limit-1024), kgo.RecordRetries(20))
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			payload := strings.Repeat(strconv.Itoa(i), 200<<10)
			var pending sync.WaitGroup
			for range records {
				pending.Add(1)
				cl.Produce(testContext(t, 2*time.Minute), &kgo.Record{Topic: topic, Partition: int32(i % 4), Value: []byte(payload)}, func(_ *kgo.Record, err error) {
					defer pending.Done()
					if err != nil {
						errs <- err
					}
				})
			}
			pending.Wait()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("produce under queued.max.request.bytes: %v", err)
	}
	if !b.running() {
		t.Fatal("the broker exited")
	}
	var total int64
	for p := int32(0); p < 4; p++ {
		total += endOffset(t, b.addr, topic, p)
	}
	if want := int64(1 + stalled + producers*records); total != want {
		t.Fatalf("%d records in the topic, want %d", total, want)
	}
	if waits := metricValue(t, b, "strata_request_memory_waits_total"); waits < 1 {
		t.Fatalf("request memory waits %v: the producers never filled the budget, the test proves nothing", waits)
	}
	if queued := metricValue(t, b, "strata_queued_request_bytes"); queued != 0 {
		t.Fatalf("queued request bytes %v after every request was answered, want 0", queued)
	}
	t.Logf("peak RSS %d MiB before the producers, %d MiB after (%d MiB produced)", before>>20, peakRSS(t, pid)>>20, producers*records*200>>10)
}

func (b *brokerProcess) pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd.Process.Pid
}

// peakRSS is a process's peak resident set size (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestMessageTimestampWindow: on a CreateTime topic a record timestamped
// two hours ahead of the broker's clock is refused with INVALID_TIMESTAMP
// (message.timestamp.after.max.ms defaults to one hour, as in Kafka 4) and
// appends nothing; one inside the window is accepted; a topic that sets
// message.timestamp.before.max.ms refuses a record older than it; a
// LogAppendTime topic takes any timestamp (the broker stamps its own).
func TestMessageTimestampWindow(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	cl := newClient(t, b.addr, manualPartitioner(), kgo.RecordRetries(0))
	produce := func(topic string, ts time.Time) error {
		return cl.ProduceSync(testContext(t, 30*time.Second), &kgo.Record{Topic: topic, Value: []byte(ts.String()), Timestamp: ts}).FirstErr()
	}
	if err := produce(topic, time.Now().Add(2*time.Hour)); !errors.Is(err, kerr.InvalidTimestamp) {
		t.Fatalf("a record two hours ahead: %v, want INVALID_TIMESTAMP", err)
	}
	if err := produce(topic, time.Now().Add(30*time.Minute)); err != nil {
		t.Fatalf("a record 30 minutes ahead: %v", err)
	}
	if err := produce(topic, time.Now().Add(-30*24*time.Hour)); err != nil {
		t.Fatalf("a record 30 days old with the default before.max.ms: %v", err)
	}
	if end := endOffset(t, b.addr, topic, 0); end != 2 {
		t.Fatalf("log end offset %d, want 2 (the refused record appended nothing)", end)
	}

	strict := uniqueTopic(t) + "-strict"
	day := "86400000"
	createTopic(t, b.addr, strict, 1, map[string]*string{"message.timestamp.before.max.ms": &day})
	if err := produce(strict, time.Now().Add(-48*time.Hour)); !errors.Is(err, kerr.InvalidTimestamp) {
		t.Fatalf("a record two days old with before.max.ms one day: %v, want INVALID_TIMESTAMP", err)
	}
	if err := produce(strict, time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("a record an hour old with before.max.ms one day: %v", err)
	}

	appendTime := uniqueTopic(t) + "-append"
	logAppendTime := "LogAppendTime"
	createTopic(t, b.addr, appendTime, 1, map[string]*string{"message.timestamp.type": &logAppendTime})
	if err := produce(appendTime, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatalf("LogAppendTime topic: %v", err)
	}
}

// partitionDirs lists the data dir entries named <topic>-<n>.
func partitionDirs(t *testing.T, dataDir, topic string) []string {
	t.Helper()
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), topic+"-")
		if _, err := strconv.Atoi(rest); ok && err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestPartitionCreationBoundedByFileDescriptors: under a file limit of
// 1,024 (prlimit --nofile=1024:1024), a topic of 1,000 partitions (3,000
// open files) is refused with POLICY_VIOLATION naming the limit — as is
// growing a topic to 1,000 — and leaves no topic and no directory; a topic
// that fits works and leaves nothing behind once deleted; a partition that
// cannot be opened is never answered with success (KAFKA_STORAGE_ERROR,
// the topic deleted again, nothing left behind); and a directory that is
// not a partition's is neither used nor deleted.
func TestPartitionCreationBoundedByFileDescriptors(t *testing.T) {
	b := startBrokerWithFileLimit(t, 1024)
	adm := newAdmin(t, b.addr)
	requireRefused := func(what string, code int16, msg *string) {
		t.Helper()
		if code != kerr.PolicyViolation.Code || msg == nil || !strings.Contains(*msg, "file descriptor limit of 1024") {
			t.Fatalf("%s: error %d (%v), want POLICY_VIOLATION naming the file descriptor limit", what, code, msg)
		}
	}

	big := legalTopic(t) + "-big"
	c := dialRaw(t, b.addr)
	for _, validateOnly := range []bool{true, false} {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version, req.TimeoutMillis, req.ValidateOnly = 5, 30000, validateOnly
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = big, 1000, 1
		req.Topics = append(req.Topics, rt)
		resp := c.roundTrip(req).(*kmsg.CreateTopicsResponse)
		requireRefused(fmt.Sprintf("1,000 partitions (validate only %v)", validateOnly), resp.Topics[0].ErrorCode, resp.Topics[0].ErrorMessage)
	}
	requireNoTopic(t, b.addr, big)
	if dirs := partitionDirs(t, b.dataDir, big); len(dirs) != 0 {
		t.Fatalf("a refused topic left %d directories, e.g. %s", len(dirs), dirs[0])
	}

	fits := legalTopic(t) + "-fits"
	if r := createOne(t, adm, 100, 1, nil, fits); r.Err != nil {
		t.Fatalf("100 partitions: %v (%s)", r.Err, r.ErrMessage)
	}
	cl := newClient(t, b.addr, manualPartitioner())
	produceSync(t, cl, fits, 99, "in the last partition")
	grow := kmsg.NewPtrCreatePartitionsRequest()
	grow.TimeoutMillis = 30000
	gt := kmsg.NewCreatePartitionsRequestTopic()
	gt.Topic, gt.Count = fits, 1000
	grow.Topics = append(grow.Topics, gt)
	gresp := c.roundTrip(grow).(*kmsg.CreatePartitionsResponse)
	requireRefused("growing to 1,000 partitions", gresp.Topics[0].ErrorCode, gresp.Topics[0].ErrorMessage)
	if got := len(allTopics(t, b.addr)[fits].Partitions); got != 100 {
		t.Fatalf("%d partitions after a refused CreatePartitions, want 100", got)
	}
	if dirs := partitionDirs(t, b.dataDir, fits); len(dirs) != 100 {
		t.Fatalf("%d partition directories, want 100", len(dirs))
	}
	if r := deleteOne(t, adm, fits); r.Err != nil {
		t.Fatalf("delete: %v", r.Err)
	}
	if dirs := partitionDirs(t, b.dataDir, fits); len(dirs) != 0 {
		t.Fatalf("a deleted topic left %d directories, e.g. %s", len(dirs), dirs[0])
	}

	// A partition that cannot be opened (a file where its directory goes).
	blocked := legalTopic(t) + "-blocked"
	blocker := b.dataDir + "/" + blocked + "-3"
	if err := os.WriteFile(blocker, []byte("not a partition"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := createOne(t, adm, 8, 1, nil, blocked)
	if r.Err == nil || !errors.Is(r.Err, kerr.KafkaStorageError) || !strings.Contains(r.ErrMessage, blocked+"-3") {
		t.Fatalf("a topic whose partition 3 cannot be opened: %v (%s), want KAFKA_STORAGE_ERROR naming it", r.Err, r.ErrMessage)
	}
	requireNoTopic(t, b.addr, blocked)
	if dirs := partitionDirs(t, b.dataDir, blocked); len(dirs) != 1 || dirs[0] != blocked+"-3" {
		t.Fatalf("left behind: %v, want only the file that was there", dirs)
	}
	if data, err := os.ReadFile(blocker); err != nil || string(data) != "not a partition" {
		t.Fatalf("the file in the partition's place: %q, %v", data, err)
	}

	// A directory that is not a partition's is neither adopted nor deleted.
	victim := legalTopic(t) + "-victim"
	unrelated := b.dataDir + "/" + victim + "-0"
	if err := os.MkdirAll(unrelated, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unrelated+"/keep", []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = createOne(t, adm, 1, 1, nil, victim)
	if !errors.Is(r.Err, kerr.KafkaStorageError) {
		t.Fatalf("a topic whose directory is taken by an unrelated one: %v (%s), want KAFKA_STORAGE_ERROR", r.Err, r.ErrMessage)
	}
	requireNoTopic(t, b.addr, victim)
	if data, err := os.ReadFile(unrelated + "/keep"); err != nil || string(data) != "mine" {
		t.Fatalf("the unrelated directory's file: %q, %v", data, err)
	}
	if entries, _ := os.ReadDir(unrelated); len(entries) != 1 {
		t.Fatalf("the unrelated directory holds %d entries, want its one file", len(entries))
	}
	if !b.running() {
		t.Fatal("the broker exited")
	}
	if got := metricValue(t, b, "strata_partition_file_descriptor_refusals_total"); got < 2000 {
		t.Fatalf("file descriptor refusals %v, want at least 2,000 (two refused 1,000-partition requests)", got)
	}
}
