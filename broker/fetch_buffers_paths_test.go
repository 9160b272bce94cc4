package broker_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
)

// producePartitions produces to partition i of topic (created with
// len(counts) partitions unless it exists) counts[i] records of size
// bytes, record j filled with byte j+16*i, one record per batch.
func producePartitions(t *testing.T, cl *kgo.Client, topic string, size int, counts ...int) {
	t.Helper()
	for i, count := range counts {
		for j := range count {
			r := &kgo.Record{Topic: topic, Partition: int32(i), Value: bytes.Repeat([]byte{byte(j + 16*i)}, size)}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// manualProducer produces to the partition each record names.
func manualProducer(n *brokertest.Node, opts ...kgo.Opt) *kgo.Client {
	return n.Client(append([]kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(4 << 20),
		kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression())}, opts...)...)
}

// fetchPartitions is a consumer's Fetch (v11) of partitions 0..count-1 of
// topic from offset 0, 1 MiB each.
func fetchPartitions(topic string, count int, minBytes, maxWaitMillis int32) *kmsg.FetchRequest {
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.ReplicaID, fetch.MaxBytes, fetch.MinBytes, fetch.MaxWaitMillis = 11, -1, 32<<20, minBytes, maxWaitMillis
	rt := kmsg.FetchRequestTopic{Topic: topic}
	for i := range count {
		rt.Partitions = append(rt.Partitions, kmsg.FetchRequestTopicPartition{
			Partition: int32(i), PartitionMaxBytes: 16 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1,
		})
	}
	fetch.Topics = []kmsg.FetchRequestTopic{rt}
	return fetch
}

// records is the record bytes of resp by partition.
func records(resp *kmsg.FetchResponse) [][]byte {
	var out [][]byte
	for _, p := range resp.Topics[0].Partitions {
		out = append(out, p.RecordBatches)
	}
	return out
}

// TestFetchLongPollReadsAgainAfterDroppingItsRead: a long poll whose first
// pass reads less than MinBytes drops what it read (its buffer goes back
// to the pool, overwritten here) and waits; woken by an append, it reads
// every partition again. The answer holds the log's bytes for both
// partitions, the one read before the wait too, and gives its memory
// back once written.
func TestFetchLongPollReadsAgainAfterDroppingItsRead(t *testing.T) {
	const (
		topic = "long-poll"
		size  = 100 << 10
	)
	n := brokertest.Start(t)
	n.Server.ScribbleReleasedBuffers()
	cl := manualProducer(n)
	defer cl.Close()
	createTopic(t, cl, topic, 2, nil)
	producePartitions(t, cl, topic, size, 3) // 300 KiB in partition 0
	waitResponsesReleased(t, n)
	before := n.Server.IdleBufferBytes()

	raw := dialRaw(t, n.Addr)
	raw.nc.SetDeadline(time.Now().Add(30 * time.Second))
	raw.send(fetchPartitions(topic, 2, 6*size, 20_000))
	// The first pass read partition 0 (a 512 KiB buffer, of a size no
	// produce request here used), found less than MinBytes and gave the
	// buffer back to wait.
	for deadline := time.Now().Add(10 * time.Second); n.Server.IdleBufferBytes() <= before; {
		if time.Now().After(deadline) {
			t.Fatal("the long poll's first pass gave no read buffer back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	producePartitions(t, cl, topic, size, 0, 3) // 300 KiB in partition 1: MinBytes with the batches' headers

	resp := kmsg.NewPtrFetchResponse()
	if err := raw.receive(resp, 11); err != nil {
		t.Fatal(err)
	}
	got := records(resp)
	want := records(rawRoundTrip(t, n.Addr, fetchPartitions(topic, 2, 1, 0)).(*kmsg.FetchResponse))
	for i := range 2 {
		if len(got[i]) < 3*size || !bytes.Equal(got[i], want[i]) {
			t.Fatalf("partition %d answered %d bytes, equal to a fresh read of %d bytes: %v", i, len(got[i]), len(want[i]), bytes.Equal(got[i], want[i]))
		}
	}
	waitResponsesReleased(t, n)
}

// TestThrottledFetchGivesItsReadBack: a consumer Fetch over its quota is
// answered empty, and what it read (its buffers and their room in the
// response memory) goes back: throttled Fetches do not eat the budget the
// other consumers read with.
func TestThrottledFetchGivesItsReadBack(t *testing.T) {
	const topic = "throttled"
	clock := newMuteClock()
	n := brokertest.Start(t, func(c *broker.Config) { c.Quotas.Clock = clock })
	n.Server.ScribbleReleasedBuffers()
	produceFilled(t, n, topic, 4, 10<<10)
	// 1 KiB/s: the first Fetch's bytes put the client over it.
	setQuota(t, n, metadata.QuotaEntity{ClientID: metadata.DefaultQuota}, metadata.ConsumerByteRate, 1024)

	raw := dialRaw(t, n.Addr)
	fetch := fetchFrom(topic, 0, 1<<20)
	throttled := 0
	for range 3 {
		raw.send(fetch)
		resp := kmsg.NewPtrFetchResponse()
		if err := raw.receive(resp, fetch.Version); err != nil {
			t.Fatal(err)
		}
		if resp.ThrottleMillis > 0 {
			if len(resp.Topics) != 0 {
				t.Fatalf("a Fetch throttled %d ms answered %d topics; want an empty answer", resp.ThrottleMillis, len(resp.Topics))
			}
			throttled++
			clock.awaitMute(t)
			clock.release <- clock.now
		}
		// A throttled Fetch read the records and dropped them.
		waitResponsesReleased(t, n)
	}
	if throttled == 0 {
		t.Fatal("no Fetch was throttled")
	}
}

// TestFetchBuffersHeldUntilWrittenOverTLS: TestFetchBuffersHeldUntil-
// ResponseWritten on an SSL listener, where the writer copies the small
// pieces of a response (a partition with a few KiB of records among
// them) into a write buffer of its own as it goes and writes the large
// ones as they are: a client that does not read holds a response whose
// buffers other consumers' Fetches would reuse if they went back early,
// and it reads the log's bytes.
func TestFetchBuffersHeldUntilWrittenOverTLS(t *testing.T) {
	const (
		topic = "held-tls"
		size  = 400 << 10
		count = 30 // 12 MiB in partition 0, more than the sockets hold
	)
	ca := authntest.NewCA(t, "ca")
	n := startSSL(t, ca, authn.ClientAuthNone)
	n.Server.ScribbleReleasedBuffers()
	tlsConfig := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	cl := manualProducer(n, kgo.DialTLSConfig(tlsConfig))
	createTopic(t, cl, topic, 2, nil)
	producePartitions(t, cl, topic, size, count)
	for j := range 4 { // 4 KiB in partition 1
		r := &kgo.Record{Topic: topic, Partition: 1, Value: bytes.Repeat([]byte{byte(0x40 + j)}, 1<<10)}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()

	dialer := net.Dialer{Control: smallReceiveBuffer}
	tcp, err := dialer.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	slow := &rawConn{t: t, nc: tls.Client(tcp, tlsConfig)}
	defer slow.nc.Close()
	slow.nc.SetDeadline(time.Now().Add(30 * time.Second))
	fetch := fetchPartitions(topic, 2, 1, 500)
	slow.send(fetch)
	waitUnreadResponseHolds(t, n, 1<<20)

	// Other consumers read both partitions twice meanwhile, through the
	// broker's buffers.
	for range 2 {
		consumer := n.Client(kgo.DialTLSConfig(tlsConfig), kgo.FetchMaxBytes(1<<20), kgo.FetchMaxPartitionBytes(1<<20),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}))
		for seen := 0; seen < count+4; {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			fetches := consumer.PollFetches(ctx)
			cancel()
			if err := fetches.Err(); err != nil {
				t.Fatalf("consuming while the slow client's response is held: %v", err)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				first := byte(r.Offset)
				if r.Partition == 1 {
					first = byte(0x40 + r.Offset)
				}
				if r.Value[0] != first || !bytes.Equal(r.Value, bytes.Repeat(r.Value[:1], len(r.Value))) {
					t.Fatalf("partition %d record %d read back with other bytes", r.Partition, r.Offset)
				}
				seen++
			})
		}
		consumer.Close()
	}
	// The scenario holds: the slow client's response is not written yet.
	if _, holders, _ := n.Server.ResponseMemory(); holders == 0 {
		t.Fatal("the slow client's response was written before it read: the sockets took it whole")
	}

	resp := kmsg.NewPtrFetchResponse()
	if err := slow.receive(resp, fetch.Version); err != nil {
		t.Fatal(err)
	}
	got := records(resp)
	want := records(rawRoundTripTLS(t, n.Addr, tlsConfig, fetch))
	if len(got[0]) < count*size || len(got[1]) < 4<<10 || !bytes.Equal(got[0], want[0]) || !bytes.Equal(got[1], want[1]) {
		t.Fatalf("the response held while other Fetches ran has %d and %d bytes, equal to a fresh read: %v, %v",
			len(got[0]), len(got[1]), bytes.Equal(got[0], want[0]), bytes.Equal(got[1], want[1]))
	}
}

// rawRoundTripTLS is rawRoundTrip for a Fetch on a TLS connection.
func rawRoundTripTLS(t *testing.T, addr string, config *tls.Config, fetch *kmsg.FetchRequest) *kmsg.FetchResponse {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, config)
	if err != nil {
		t.Fatal(err)
	}
	conn := &rawConn{t: t, nc: nc}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	conn.send(fetch)
	resp := kmsg.NewPtrFetchResponse()
	if err := conn.receive(resp, fetch.Version); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestFetchReadBuffersWithinItsBudget: a Fetch of 1 MiB across eight
// partitions, each a 100-byte record followed by one of 1.5 MiB (more
// than the partition's limit, so each returns the small one), holds
// buffers for what it returns, not for each partition's whole read: the
// buffers it took (those the pool gained once it was written) stay
// within the 1 MiB its response memory counts, where they were 1 MiB per
// partition.
func TestFetchReadBuffersWithinItsBudget(t *testing.T) {
	const (
		topic      = "small-then-large"
		partitions = 8
	)
	n := brokertest.Start(t)
	n.Server.ScribbleReleasedBuffers()
	cl := manualProducer(n)
	defer cl.Close()
	createTopic(t, cl, topic, partitions, map[string]string{"max.message.bytes": "4194304"})
	for p := range int32(partitions) {
		for _, size := range []int{100, 1536 << 10} {
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: bytes.Repeat([]byte{byte(p)}, size)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitResponsesReleased(t, n)
	before := n.Server.IdleBufferBytes()
	fetch := fetchPartitions(topic, partitions, 1, 0)
	fetch.MaxBytes = 1 << 20
	for i := range fetch.Topics[0].Partitions {
		fetch.Topics[0].Partitions[i].PartitionMaxBytes = 1 << 20
	}
	for i, r := range records(rawRoundTrip(t, n.Addr, fetch).(*kmsg.FetchResponse)) {
		if len(r) == 0 || len(r) > 1<<10 {
			t.Fatalf("partition %d answered %d bytes; want its 100-byte record's batch", i, len(r))
		}
	}
	waitResponsesReleased(t, n)
	if grew := n.Server.IdleBufferBytes() - before; grew > int64(fetch.MaxBytes) {
		t.Fatalf("a Fetch of %d bytes returning %d small batches took %d KiB of new buffers", fetch.MaxBytes, partitions, grew>>10)
	}
}

// TestFetchOversizedFirstBatchReadAgainOnceRoomIsFree: a Fetch whose first
// batch is larger than the room it reserved, with no more room free (a
// client that does not read holds the rest of the consumers' share),
// drops what it read (its buffer goes back, overwritten here) and waits
// for room for the whole batch; once the other response is written it
// reads again. Both clients get the log's bytes, and the memory goes
// back.
func TestFetchOversizedFirstBatchReadAgainOnceRoomIsFree(t *testing.T) {
	const (
		held    = "held-room"
		large   = "large-batch"
		budget  = 16 << 20 // 12 MiB for consumers
		holding = 11<<20 + 512<<10
	)
	n := brokertest.Start(t, func(c *broker.Config) { c.QueuedMaxResponseBytes = budget })
	n.Server.ScribbleReleasedBuffers()
	cl := manualProducer(n)
	defer cl.Close()
	createTopic(t, cl, held, 1, nil)
	producePartitions(t, cl, held, 400<<10, 31) // 12.1 MiB
	createTopic(t, cl, large, 1, map[string]string{"max.message.bytes": "4194304"})
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: large, Value: bytes.Repeat([]byte{7}, 1536<<10)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	slowFetch := fetchFrom(held, 0, holding)
	largeFetch := fetchFrom(large, 0, 100<<10)
	largeFetch.MaxWaitMillis = 20_000
	// What each reads with the room free.
	var want [2][]byte
	for i, fetch := range []*kmsg.FetchRequest{slowFetch, largeFetch} {
		waitResponsesReleased(t, n)
		want[i] = records(rawRoundTrip(t, n.Addr, fetch).(*kmsg.FetchResponse))[0]
	}
	if len(want[0]) < 11<<20 || bytes.Count(want[1], []byte{7}) < 1536<<10 {
		t.Fatalf("read %d and %d bytes", len(want[0]), len(want[1]))
	}
	waitResponsesReleased(t, n)

	// A client that does not read holds 11.5 MiB: 0.5 MiB of room left.
	dialer := net.Dialer{Control: smallReceiveBuffer}
	tcp, err := dialer.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	slow := &rawConn{t: t, nc: tcp}
	defer tcp.Close()
	tcp.SetDeadline(time.Now().Add(30 * time.Second))
	slow.send(slowFetch)
	waitUnreadResponseHolds(t, n, holding)

	// A Fetch of 100 KiB whose first batch is 1.5 MiB: it reserves
	// 100 KiB, reads the batch, cannot grow to it and waits for room.
	other, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetDeadline(time.Now().Add(30 * time.Second))
	oversized := &rawConn{t: t, nc: other}
	oversized.send(largeFetch)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, _, waiting := n.Server.ResponseMemory(); waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Fetch of an oversized batch does not wait for room")
		}
	}

	// The slow client reads: its room goes back, the other Fetch reads
	// again and is answered.
	slowResp := kmsg.NewPtrFetchResponse()
	if err := slow.receive(slowResp, slowFetch.Version); err != nil {
		t.Fatal(err)
	}
	largeResp := kmsg.NewPtrFetchResponse()
	if err := oversized.receive(largeResp, largeFetch.Version); err != nil {
		t.Fatal(err)
	}
	for i, got := range [][]byte{records(slowResp)[0], records(largeResp)[0]} {
		if !bytes.Equal(got, want[i]) {
			t.Fatalf("%s: answered %d bytes, equal to the %d bytes read with the room free: false", []string{held, large}[i], len(got), len(want[i]))
		}
	}
	waitResponsesReleased(t, n)
}
