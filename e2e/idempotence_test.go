//go:build e2e

package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Idempotent-producer semantics over raw requests: InitProducerId, then
// Produce v9 with batches that carry producer id, epoch and base sequence,
// checked against what Kafka answers (duplicates get the original offset,
// gaps OUT_OF_ORDER_SEQUENCE_NUMBER, fenced epochs INVALID_PRODUCER_EPOCH),
// across graceful and kill -9 restarts; and a franz-go idempotent producer
// across a kill -9.

// buildIdempotentBatch encodes an uncompressed v2 record batch of an
// idempotent producer: like buildBatch, with producer id, epoch and the base
// sequence in the header (CRC-32C recomputed here).
func buildIdempotentBatch(producerID int64, epoch int16, baseSeq int32, values ...string) []byte {
	b := buildBatch(time.Now().UnixMilli(), values...)
	// Header: baseOffset 8, length 4, leaderEpoch 4, magic 1, crc 4,
	// attributes 2, lastOffsetDelta 4, firstTimestamp 8, maxTimestamp 8,
	// producerId 8 (@43), producerEpoch 2 (@51), baseSequence 4 (@53).
	binary.BigEndian.PutUint64(b[43:], uint64(producerID))
	binary.BigEndian.PutUint16(b[51:], uint16(epoch))
	binary.BigEndian.PutUint32(b[53:], uint32(baseSeq))
	fixCRC(b)
	return b
}

// initProducerID asks for a producer id (InitProducerId at the given
// version, no transactional id).
func initProducerID(tb testing.TB, c *rawConn, version int16) (int64, int16) {
	tb.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = version
	req.TransactionTimeoutMillis = 60000
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp := c.roundTrip(req).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 {
		tb.Fatalf("InitProducerId v%d: %v", version, kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// produceBatch sends one batch (Produce v9, acks=all) to partition 0 and
// returns the partition's error code and base offset.
func produceBatch(tb testing.TB, c *rawConn, topic string, batch []byte) (int16, int64) {
	tb.Helper()
	resp := c.roundTrip(produceRequest(topic, 0, batch)).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		tb.Fatalf("produce response with %d topics, want 1 topic with 1 partition", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

// expectAppended produces batch and requires success at offset want.
func expectAppended(tb testing.TB, c *rawConn, topic string, batch []byte, want int64, what string) {
	tb.Helper()
	code, base := produceBatch(tb, c, topic, batch)
	if code != 0 || base != want {
		tb.Fatalf("%s: error %v base offset %d, want success at %d", what, kerr.ErrorForCode(code), base, want)
	}
}

// expectRefused produces batch and requires the given error.
func expectRefused(tb testing.TB, c *rawConn, topic string, batch []byte, want *kerr.Error, what string) {
	tb.Helper()
	code, base := produceBatch(tb, c, topic, batch)
	if code != want.Code {
		tb.Fatalf("%s: error code %d (%v) base offset %d, want %s", what, code, kerr.ErrorForCode(code), base, want.Message)
	}
}

// endOffset and consumeClosed use their own clients and close them before
// returning: a consumer left polling would keep sending requests while a
// test stops the broker, and this test is about producer state, not about
// shutting down under load.
func endOffset(tb testing.TB, addr, topic string, partition int32) int64 {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(testContext(tb, 30*time.Second), topic)
	if err != nil {
		tb.Fatal(err)
	}
	o, ok := ends.Lookup(topic, partition)
	if !ok || o.Err != nil {
		tb.Fatalf("end offset of %s[%d]: %+v", topic, partition, o)
	}
	return o.Offset
}

func consumeClosed(tb testing.TB, addr, topic string, want int) []*kgo.Record {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	ctx := testContext(tb, 60*time.Second)
	var out []*kgo.Record
	for len(out) < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("consumed %d of %d records before timeout", len(out), want)
		}
		fetches.EachError(func(t string, p int32, err error) {
			tb.Fatalf("fetch %s[%d]: %v", t, p, err)
		})
		out = append(out, fetches.Records()...)
	}
	return out
}

// requireLog checks that partition 0 holds exactly values, at offsets 0..n-1.
func requireLog(tb testing.TB, addr, topic string, values ...string) {
	tb.Helper()
	if end := endOffset(tb, addr, topic, 0); end != int64(len(values)) {
		tb.Fatalf("end offset %d, want %d", end, len(values))
	}
	recs := consumeClosed(tb, addr, topic, len(values))
	if len(recs) != len(values) {
		tb.Fatalf("read %d records, want %d", len(recs), len(values))
	}
	for i, r := range recs {
		if r.Offset != int64(i) || string(r.Value) != values[i] {
			tb.Fatalf("record %d: %q at offset %d, want %q at %d", i, r.Value, r.Offset, values[i], i)
		}
	}
}

func TestIdempotentInitProducerID(t *testing.T) {
	b := sharedBroker(t)
	c1, c2 := dialRaw(t, b.addr), dialRaw(t, b.addr)
	seen := map[int64]bool{}
	for i, tc := range []struct {
		c       *rawConn
		version int16
	}{{c1, 0}, {c1, 4}, {c1, 4}, {c2, 1}, {c2, 3}, {c1, 2}} {
		id, epoch := initProducerID(t, tc.c, tc.version)
		if id < 0 || epoch != 0 {
			t.Fatalf("call %d (v%d): producer id %d epoch %d, want an id ≥ 0 with epoch 0", i, tc.version, id, epoch)
		}
		if seen[id] {
			t.Fatalf("call %d (v%d): producer id %d handed out twice", i, tc.version, id)
		}
		seen[id] = true
	}

	// An idempotent producer that asks again with its id and epoch (v3+,
	// KIP-360) gets a fresh id, as from Kafka for a null transactional id.
	prev, _ := initProducerID(t, c2, 4)
	seen[prev] = true
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	req.TransactionTimeoutMillis = 60000
	req.ProducerID, req.ProducerEpoch = prev, 0
	resp := c2.roundTrip(req).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 || resp.ProducerID < 0 || seen[resp.ProducerID] || resp.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId v4 with producer id %d: error %v id %d epoch %d, want a new id with epoch 0", prev, kerr.ErrorForCode(resp.ErrorCode), resp.ProducerID, resp.ProducerEpoch)
	}
	seen[resp.ProducerID] = true

	// A transactional id goes to its transaction coordinator: a new one
	// gets a producer id of its own with epoch 0, never an idempotent
	// producer's.
	for _, v := range []int16{0, 4} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = v
		req.TransactionalID = kmsg.StringPtr(fmt.Sprintf("txn-%s-v%d", uniqueTopic(t), v))
		req.TransactionTimeoutMillis = 60000
		req.ProducerID, req.ProducerEpoch = -1, -1
		// One node: the coordinator is here, once the transaction state
		// topic exists and its shard is loaded.
		var resp *kmsg.InitProducerIDResponse
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp = c1.roundTrip(req).(*kmsg.InitProducerIDResponse)
			if err := kerr.ErrorForCode(resp.ErrorCode); !kerr.IsRetriable(err) || time.Now().After(deadline) {
				break
			}
		}
		if resp.ErrorCode != 0 || resp.ProducerID < 0 || seen[resp.ProducerID] || resp.ProducerEpoch != 0 {
			t.Fatalf("InitProducerId v%d with a new transactional id: error %v id %d epoch %d, want a new id with epoch 0", v, kerr.ErrorForCode(resp.ErrorCode), resp.ProducerID, resp.ProducerEpoch)
		}
		seen[resp.ProducerID] = true
	}
	// The connection is still usable afterwards.
	if id, _ := initProducerID(t, c1, 4); seen[id] {
		t.Fatalf("producer id %d handed out twice", id)
	}
}

// TestIdempotentSequences: duplicates, gaps, the five-batch window and
// epochs on one partition, with the log checked at the end.
func TestIdempotentSequences(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	c := dialRaw(t, b.addr)
	pid, epoch := initProducerID(t, c, 4)
	var log []string

	// Sequences 0..4, one record each.
	batches := make([][]byte, 5)
	for seq := range batches {
		v := fmt.Sprintf("e0-s%d", seq)
		batches[seq] = buildIdempotentBatch(pid, epoch, int32(seq), v)
		expectAppended(t, c, topic, batches[seq], int64(seq), fmt.Sprintf("sequence %d", seq))
		log = append(log, v)
	}
	// Resending any of the last five batches: the original offset, no error.
	for _, seq := range []int{4, 0, 2, 4} {
		expectAppended(t, c, topic, batches[seq], int64(seq), fmt.Sprintf("resent sequence %d", seq))
	}
	// Also from another connection (a retry after a reconnect).
	expectAppended(t, dialRaw(t, b.addr), topic, batches[4], 4, "resent sequence 4 on a new connection")
	requireLog(t, b.addr, topic, log...)

	// A three-record batch: sequences 5..7.
	three := buildIdempotentBatch(pid, epoch, 5, "e0-s5", "e0-s6", "e0-s7")
	expectAppended(t, c, topic, three, 5, "sequences 5..7")
	expectAppended(t, c, topic, three, 5, "resent sequences 5..7")
	log = append(log, "e0-s5", "e0-s6", "e0-s7")

	// The same first sequence with another length is not a duplicate.
	expectRefused(t, c, topic, buildIdempotentBatch(pid, epoch, 5, "other"), kerr.OutOfOrderSequenceNumber, "sequence 5 again with one record")
	// Sequence 0 has left the five-batch window: Kafka answers out of order.
	expectRefused(t, c, topic, batches[0], kerr.OutOfOrderSequenceNumber, "sequence 0 after six batches")
	// A gap: 8 is next, 10 is not.
	expectRefused(t, c, topic, buildIdempotentBatch(pid, epoch, 10, "gap"), kerr.OutOfOrderSequenceNumber, "sequence 10 when 8 is next")
	expectRefused(t, c, topic, buildIdempotentBatch(pid, epoch, 9, "gap"), kerr.OutOfOrderSequenceNumber, "sequence 9 when 8 is next")
	// The refused batches changed nothing: 8 is still next.
	expectAppended(t, c, topic, buildIdempotentBatch(pid, epoch, 8, "e0-s8"), 8, "sequence 8")
	log = append(log, "e0-s8")
	requireLog(t, b.addr, topic, log...)

	// Epochs: a new epoch must start at sequence 0 …
	expectRefused(t, c, topic, buildIdempotentBatch(pid, epoch+1, 9, "bad"), kerr.OutOfOrderSequenceNumber, "epoch 1 starting at sequence 9")
	e1s0 := buildIdempotentBatch(pid, epoch+1, 0, "e1-s0")
	expectAppended(t, c, topic, e1s0, 9, "epoch 1 at sequence 0")
	log = append(log, "e1-s0")
	// … and fences the old one.
	expectRefused(t, c, topic, buildIdempotentBatch(pid, epoch, 9, "fenced"), kerr.InvalidProducerEpoch, "epoch 0 after epoch 1")
	expectRefused(t, c, topic, batches[4], kerr.InvalidProducerEpoch, "an old epoch-0 batch after epoch 1")
	expectAppended(t, c, topic, e1s0, 9, "resent epoch 1 sequence 0")
	expectAppended(t, c, topic, buildIdempotentBatch(pid, epoch+1, 1, "e1-s1", "e1-s2"), 10, "epoch 1 sequences 1..2")
	log = append(log, "e1-s1", "e1-s2")

	// Another producer id on the same partition has its own sequences.
	pid2, _ := initProducerID(t, c, 4)
	expectAppended(t, c, topic, buildIdempotentBatch(pid2, 0, 0, "p2-s0"), 12, "second producer at sequence 0")
	expectRefused(t, c, topic, buildIdempotentBatch(pid2, 0, 3, "p2-gap"), kerr.OutOfOrderSequenceNumber, "second producer with a gap")
	expectAppended(t, c, topic, buildIdempotentBatch(pid, epoch+1, 3, "e1-s3"), 13, "first producer continues at sequence 3")
	log = append(log, "p2-s0", "e1-s3")

	// Sequences wrap from MaxInt32 to 0, as in Kafka.
	pid3, _ := initProducerID(t, c, 4)
	const maxSeq = int32(1<<31 - 1)
	expectAppended(t, c, topic, buildIdempotentBatch(pid3, 0, maxSeq-1, "w-max-1"), 14, "sequence MaxInt32-1")
	wrap := buildIdempotentBatch(pid3, 0, maxSeq, "w-max", "w-0", "w-1")
	expectAppended(t, c, topic, wrap, 15, "sequences MaxInt32, 0, 1")
	expectAppended(t, c, topic, wrap, 15, "resent sequences MaxInt32, 0, 1")
	expectRefused(t, c, topic, buildIdempotentBatch(pid3, 0, 0, "w-again"), kerr.OutOfOrderSequenceNumber, "sequence 0 after the wrap to 1")
	expectAppended(t, c, topic, buildIdempotentBatch(pid3, 0, 2, "w-2"), 18, "sequence 2 after the wrap")
	log = append(log, "w-max-1", "w-max", "w-0", "w-1", "w-2")
	requireLog(t, b.addr, topic, log...)
}

// TestIdempotenceSurvivesRestart: producer state is rebuilt after kill -9
// (from the log alone), after a graceful restart (from the snapshot) and
// after kill -9 again (snapshot plus the log after it): the last batch is
// still a duplicate, the next sequence is accepted, and a gap is still a gap.
func TestIdempotenceSurvivesRestart(t *testing.T) {
	b := startBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	c := dialRaw(t, b.addr)
	pid, epoch := initProducerID(t, c, 4)
	// Write at epoch 1 (a producer that bumped its epoch, KIP-360), so an
	// older epoch exists to be fenced.
	epoch++
	var log []string
	seq := int32(0)
	var last []byte
	var lastOffset int64
	produce := func(c *rawConn, n int) {
		t.Helper()
		var values []string
		for i := 0; i < n; i++ {
			values = append(values, fmt.Sprintf("s%d", seq+int32(i)))
		}
		last = buildIdempotentBatch(pid, epoch, seq, values...)
		lastOffset = int64(len(log))
		expectAppended(t, c, topic, last, lastOffset, fmt.Sprintf("sequence %d", seq))
		seq += int32(n)
		log = append(log, values...)
	}
	for i := 0; i < 3; i++ {
		produce(c, 2)
	}

	for _, restart := range []string{"kill -9", "graceful restart", "kill -9 after a snapshot"} {
		if restart == "graceful restart" {
			if err := b.stop(); err != nil {
				t.Fatal(err)
			}
		} else {
			b.kill()
		}
		b.restart(t)
		c = dialRaw(t, b.addr)
		expectAppended(t, c, topic, last, lastOffset, "the last batch resent after "+restart)
		expectRefused(t, c, topic, buildIdempotentBatch(pid, epoch, seq+1, "gap"), kerr.OutOfOrderSequenceNumber, "a gap after "+restart)
		expectRefused(t, c, topic, buildIdempotentBatch(pid, epoch-1, 0, "old epoch"), kerr.InvalidProducerEpoch, "an older epoch after "+restart)
		produce(c, 3)
		produce(c, 1)
		requireLog(t, b.addr, topic, log...)
	}
}

// readProduceResponse reads one pipelined Produce v9 response.
func readProduceResponse(tb testing.TB, c *rawConn) (int32, *kmsg.ProduceResponse) {
	tb.Helper()
	corr, body, err := c.readFrame()
	if err != nil {
		tb.Fatalf("read response: %v", err)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	if err := resp.ReadFrom(body[1:]); err != nil { // skip the empty header tags
		tb.Fatalf("decode produce response (correlation id %d): %v", corr, err)
	}
	return corr, resp
}

// TestIdempotentPipelining: 20 produce requests written back to back before
// any response is read are handled in order (every sequence is in order) and
// answered in order.
func TestIdempotentPipelining(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	pid, epoch := initProducerID(t, dialRaw(t, b.addr), 4)
	c := dialRaw(t, b.addr)
	const n = 20
	var log []string
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("pipelined-%02d", i)
		log = append(log, v)
		if corr := c.send(produceRequest(topic, 0, buildIdempotentBatch(pid, epoch, int32(i), v))); corr != int32(i+1) {
			t.Fatalf("sent correlation id %d, want %d", corr, i+1)
		}
	}
	for i := 0; i < n; i++ {
		corr, resp := readProduceResponse(t, c)
		if corr != int32(i+1) {
			t.Fatalf("response %d has correlation id %d, want %d (responses out of request order)", i, corr, i+1)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(i) {
			t.Fatalf("response %d: error %v base offset %d, want success at %d", i, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset, i)
		}
	}
	requireLog(t, b.addr, topic, log...)
}

// lossyProxy forwards TCP connections to a broker and can drop everything
// the broker sends back, so a test can make the broker append batches whose
// acknowledgements the client never receives (a network failure, then a
// crash) — the case idempotence exists for — deterministically.
type lossyProxy struct {
	tb     testing.TB
	ln     net.Listener
	addr   string
	drop   atomic.Bool
	target atomic.Value // string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startLossyProxy(tb testing.TB) *lossyProxy {
	tb.Helper()
	ln := listenLoopback(tb)
	p := &lossyProxy{tb: tb, ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.target.Store("")
	tb.Cleanup(func() {
		ln.Close()
		p.closeAll()
	})
	go p.accept()
	return p
}

func (p *lossyProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

// closeAll closes every proxied connection (both sides).
func (p *lossyProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *lossyProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target.Load().(string), 5*time.Second)
		if err != nil {
			client.Close() // broker down: the client sees a failed connection
			continue
		}
		p.track(client)
		p.track(server)
		go func() {
			io.Copy(server, client)
			server.Close()
			client.Close()
		}()
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 && !p.drop.Load() {
					if _, werr := client.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			server.Close()
			client.Close()
		}()
	}
}

// rawEndOffsets sums the latest offsets of partitions 0..n-1, asked on a
// direct connection to the broker.
func rawEndOffsets(tb testing.TB, addr, topic string, n int32) int64 {
	tb.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 7
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < n; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := dialRaw(tb, addr).roundTrip(req).(*kmsg.ListOffsetsResponse)
	var sum int64
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				tb.Fatalf("ListOffsets %s[%d]: %v", topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
			sum += p.Offset
		}
	}
	return sum
}

// TestIdempotentFranzKill9: a franz-go idempotent producer writes through a
// proxy; the proxy starts dropping the broker's responses, so the broker
// appends batches the producer never hears about; then the broker is killed
// with SIGKILL and restarted. The producer finishes (retrying those batches),
// every record is acknowledged, and the log holds each value exactly once,
// in order, at its acknowledged offset, with no gaps.
func TestIdempotentFranzKill9(t *testing.T) {
	proxy := startLossyProxy(t)
	b := startBroker(t, "--advertise", proxy.addr)
	proxy.target.Store(b.addr)
	topic := uniqueTopic(t)
	const partitions = 3
	const total = 30000
	createTopic(t, b.addr, topic, partitions, nil)
	producer := newClient(t, proxy.addr,
		kgo.DefaultProduceTopic(topic),
		manualPartitioner(),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is franz-go's default
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
	)
	ctx := testContext(t, 120*time.Second)

	type ack struct {
		partition int32
		offset    int64
	}
	var (
		mu       sync.Mutex
		acks     = make(map[int]ack, total)
		errs     []error
		wg       sync.WaitGroup
		dropping = make(chan struct{})
		killed   = make(chan struct{})
		produced = make(chan struct{})
	)
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}
	value := func(i int) string { return fmt.Sprintf("rec-%06d", i) }
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			i := i
			wg.Add(1)
			producer.Produce(ctx, &kgo.Record{Value: []byte(value(i)), Partition: int32(i % partitions)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("record %d: %w", i, err))
					return
				}
				if _, dup := acks[i]; dup {
					errs = append(errs, fmt.Errorf("record %d acknowledged twice", i))
				}
				acks[i] = ack{r.Partition, r.Offset}
			})
		}
	}
	go func() {
		defer close(produced)
		produce(0, total/3)
		<-dropping
		produce(total/3, 2*total/3) // the broker appends, the acks are lost
		<-killed
		produce(2*total/3, total) // while the broker is down or restarting
	}()

	// Once a good part of the first third is acknowledged, responses stop
	// reaching the producer; wait until the broker holds records the
	// producer has no acknowledgement for, then kill it.
	deadline := time.Now().Add(60 * time.Second)
	for acked() < total/6 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d records acknowledged in 60s", acked())
		}
		time.Sleep(5 * time.Millisecond)
	}
	proxy.drop.Store(true)
	close(dropping)
	var inLog int64
	for {
		inLog = rawEndOffsets(t, b.addr, topic, partitions)
		if inLog > int64(acked()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker appended nothing unacknowledged in 60s (%d in the log, %d acknowledged)", inLog, acked())
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.kill()
	proxy.closeAll()
	proxy.drop.Store(false)
	ackedAtKill := acked()
	close(killed)
	t.Logf("at SIGKILL: %d records in the log, %d of them acknowledged, %d produced in total", inLog, ackedAtKill, total)
	b.restart(t)

	<-produced
	if err := producer.Flush(ctx); err != nil {
		t.Fatalf("flush after restart: %v", err)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d records failed, first: %v", len(errs), errs[0])
	}
	if len(acks) != total {
		t.Fatalf("%d records acknowledged, want %d", len(acks), total)
	}

	// The log: exactly total records, dense offsets, each value once, at its
	// acknowledged offset, in production order per partition.
	if sum := rawEndOffsets(t, b.addr, topic, partitions); sum != total {
		t.Fatalf("partitions hold %d records in total, want %d (duplicates or losses)", sum, total)
	}
	recs := consumeAll(t, b.addr, topic, total)
	byPartition := map[int32][]*kgo.Record{}
	seen := make(map[string]bool, total)
	for _, r := range recs {
		if seen[string(r.Value)] {
			t.Fatalf("value %s read twice", r.Value)
		}
		seen[string(r.Value)] = true
		byPartition[r.Partition] = append(byPartition[r.Partition], r)
	}
	for p, rs := range byPartition {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Offset < rs[j].Offset })
		prev := -1
		for i, r := range rs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d at offset %d (gap)", p, i, r.Offset)
			}
			var idx int
			if _, err := fmt.Sscanf(string(r.Value), "rec-%d", &idx); err != nil || idx < 0 || idx >= total {
				t.Fatalf("partition %d offset %d: unexpected value %q", p, r.Offset, r.Value)
			}
			if a := acks[idx]; a.partition != p || a.offset != r.Offset {
				t.Fatalf("record %d read at %d/%d, acknowledged at %d/%d", idx, p, r.Offset, a.partition, a.offset)
			}
			if idx <= prev {
				t.Fatalf("partition %d: record %d after %d (order lost)", p, idx, prev)
			}
			prev = idx
		}
	}
	if len(seen) != total {
		t.Fatalf("read %d distinct values, want %d", len(seen), total)
	}
}
