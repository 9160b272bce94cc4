package broker_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// appendTransactional appends one transactional batch of producerID to p
// as the produce path does after the coordinator verified it.
func appendTransactional(t *testing.T, p *partition.Partition, producerID int64, sequence int32, values ...string) int64 {
	t.Helper()
	records := make([]recordbatch.Record, len(values))
	for i, v := range values {
		records[i] = recordbatch.Record{Timestamp: time.Now().UnixMilli(), Value: []byte(v)}
	}
	b, err := recordbatch.Build(recordbatch.BuildOptions{Transactional: true, Idempotent: true, ProducerID: producerID, BaseSequence: sequence}, records)
	if err != nil {
		t.Fatal(err)
	}
	p.StartTxnVerification(producerID, 0)
	base, _, err := p.Append(b, 9, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// writeMarker sends WriteTxnMarkers for t-0 and returns the partition's
// error code.
func writeMarker(t *testing.T, broker *kgo.Broker, topic string, producerID int64, commit bool) int16 {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = producerID, 0, commit, 0
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, []int32{0}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp := request[*kmsg.WriteTxnMarkersResponse](t, broker, req)
	return resp.Markers[0].Topics[0].Partitions[0].ErrorCode
}

// fetchCommitted sends a read_committed Fetch of t-0 from offset.
func fetchCommitted(t *testing.T, broker *kgo.Broker, topicID [16]byte, offset int64, maxWait int32) kmsg.FetchResponseTopicPartition {
	return fetchCommittedLimited(t, broker, topicID, offset, maxWait, 1<<20)
}

func fetchCommittedLimited(t *testing.T, broker *kgo.Broker, topicID [16]byte, offset int64, maxWait, partitionMaxBytes int32) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.IsolationLevel, req.MaxBytes, req.MaxWaitMillis, req.MinBytes = -1, 1, 1<<20, maxWait, 1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = "t", topicID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = offset, partitionMaxBytes, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp := request[*kmsg.FetchResponse](t, broker, req)
	return resp.Topics[0].Partitions[0]
}

// listOffset asks ListOffsets latest of t-0 at an isolation level.
func listOffset(t *testing.T, broker *kgo.Broker, isolation int8) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "t"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	req.Topics = append(req.Topics, lt)
	resp := request[*kmsg.ListOffsetsResponse](t, broker, req)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("ListOffsets: %v", kerr.ErrorForCode(code))
	}
	return resp.Topics[0].Partitions[0].Offset
}

func batchOffsets(t *testing.T, records []byte) [][2]int64 {
	t.Helper()
	spans, err := recordbatch.Split(records)
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]int64
	for _, sp := range spans {
		h, err := recordbatch.ParseHeader(records[sp.Position:])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]int64{h.BaseOffset, h.LastOffset()})
	}
	return out
}

// startLeadingT starts a node leading topic t (one partition, one
// replica) and returns it, a context of 30 s, the topic, the node's
// replica and a connection to it for hand-made requests.
func startLeadingT(t *testing.T) (*brokertest.Node, context.Context, metadata.Topic, *partition.Partition, *kgo.Broker) {
	t.Helper()
	n := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	created, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{1}}})
	if err != nil {
		t.Fatal(err)
	}
	p := leading(t, n)
	cl := n.Client()
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	return n, ctx, created, p, cl.SeedBrokers()[0]
}

// TestReadCommitted: records of an open transaction are invisible to
// read_committed (Fetch stops at the last stable offset, ListOffsets
// READ_COMMITTED answers it); an aborted transaction is listed in
// AbortedTransactions; a committed one is visible after its marker; a
// long poll wakes when the LSO moves; kgo's read_committed consumer sees
// exactly the committed records.
func TestReadCommitted(t *testing.T) {
	n, ctx, created, p, broker := startLeadingT(t)

	appendTransactional(t, p, 100, 0, "aborted-1", "aborted-2") // 0-1
	appendTransactional(t, p, 200, 0, "committed")              // 2
	if got := fetchCommitted(t, broker, created.ID, 0, 0); len(got.RecordBatches) != 0 || got.LastStableOffset != 0 || got.HighWatermark != 3 {
		t.Fatalf("open transactions: %d bytes, LSO %d, high watermark %d", len(got.RecordBatches), got.LastStableOffset, got.HighWatermark)
	}
	if committed, uncommitted := listOffset(t, broker, 1), listOffset(t, broker, 0); committed != 0 || uncommitted != 3 {
		t.Fatalf("ListOffsets latest: READ_COMMITTED %d (want 0), READ_UNCOMMITTED %d (want 3)", committed, uncommitted)
	}

	if code := writeMarker(t, broker, "t", 100, false); code != 0 { // 3
		t.Fatalf("abort marker: %v", kerr.ErrorForCode(code))
	}
	got := fetchCommitted(t, broker, created.ID, 0, 0)
	if got.LastStableOffset != 2 || !reflect.DeepEqual(batchOffsets(t, got.RecordBatches), [][2]int64{{0, 1}}) {
		t.Fatalf("after the abort: LSO %d, batches %v", got.LastStableOffset, batchOffsets(t, got.RecordBatches))
	}
	wantAborted := []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 100, FirstOffset: 0}}
	if !reflect.DeepEqual(got.AbortedTransactions, wantAborted) {
		t.Fatalf("aborted transactions %+v", got.AbortedTransactions)
	}

	// DescribeProducers shows producer 200's open transaction.
	describe := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = "t", []int32{0}
	describe.Topics = append(describe.Topics, dt)
	described := request[*kmsg.DescribeProducersResponse](t, broker, describe).Topics[0].Partitions[0]
	open := map[int64]int64{}
	for _, ap := range described.ActiveProducers {
		open[ap.ProducerID] = ap.CurrentTxnStartOffset
	}
	if described.ErrorCode != 0 || !reflect.DeepEqual(open, map[int64]int64{100: -1, 200: 2}) {
		t.Fatalf("DescribeProducers: %v, %+v", kerr.ErrorForCode(described.ErrorCode), described.ActiveProducers)
	}

	// A long poll at the LSO wakes when the commit marker moves it.
	polled := make(chan kmsg.FetchResponseTopicPartition, 1)
	start := time.Now()
	go func() { polled <- fetchCommitted(t, broker, created.ID, 2, 10_000) }()
	time.Sleep(200 * time.Millisecond)
	if code := writeMarker(t, broker, "t", 200, true); code != 0 { // 4
		t.Fatalf("commit marker: %v", kerr.ErrorForCode(code))
	}
	got = <-polled
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("the long poll was not woken by the LSO move (%v)", waited)
	}
	if got.LastStableOffset != 5 || len(got.RecordBatches) == 0 || batchOffsets(t, got.RecordBatches)[0] != [2]int64{2, 2} {
		t.Fatalf("after the commit: LSO %d, batches %v", got.LastStableOffset, batchOffsets(t, got.RecordBatches))
	}
	if committed := listOffset(t, broker, 1); committed != 5 {
		t.Fatalf("ListOffsets READ_COMMITTED after the commit: %d", committed)
	}

	// A real read_committed consumer sees exactly the committed records.
	producer := n.Client(kgo.DefaultProduceTopic("t"))
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	consumer := n.Client(kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var values []string
	for len(values) == 0 || values[len(values)-1] != "after" {
		fetches := consumer.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			t.Fatal(err)
		}
		fetches.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	}
	if !reflect.DeepEqual(values, []string{"committed", "after"}) {
		t.Fatalf("read_committed consumer saw %q", values)
	}

	// Only the aborted transactions overlapping what is returned are
	// listed: producer 700's, aborted after the returned batch, is not.
	appendTransactional(t, p, 700, 0, "aborted-later")              // 6
	if code := writeMarker(t, broker, "t", 700, false); code != 0 { // 7
		t.Fatalf("abort marker: %v", kerr.ErrorForCode(code))
	}
	got = fetchCommittedLimited(t, broker, created.ID, 0, 0, 1)
	if !reflect.DeepEqual(batchOffsets(t, got.RecordBatches), [][2]int64{{0, 1}}) || !reflect.DeepEqual(got.AbortedTransactions, wantAborted) {
		t.Fatalf("one batch: %v, aborted %+v", batchOffsets(t, got.RecordBatches), got.AbortedTransactions)
	}
	got = fetchCommitted(t, broker, created.ID, 4, 0)
	if want := []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 700, FirstOffset: 6}}; !reflect.DeepEqual(got.AbortedTransactions, want) {
		t.Fatalf("from offset 4: aborted %+v", got.AbortedTransactions)
	}

	// Markers for an unknown partition, and a transactional produce whose
	// coordinator cannot be reached (no __transaction_state here):
	// NOT_ENOUGH_REPLICAS, which producers retry, and nothing appended.
	if code := writeMarker(t, broker, "nope", 100, true); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("marker for an unknown topic: %v", kerr.ErrorForCode(code))
	}
	b, err := recordbatch.Build(recordbatch.BuildOptions{Transactional: true, Idempotent: true, ProducerID: 300}, []recordbatch.Record{{Value: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	produce := kmsg.NewPtrProduceRequest()
	txnID := "app"
	produce.TransactionID, produce.Acks, produce.TimeoutMillis = &txnID, -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic, pt.TopicID = "t", created.ID
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = b
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	end := p.LogEndOffset()
	produced := request[*kmsg.ProduceResponse](t, broker, produce).Topics[0].Partitions[0]
	if produced.ErrorCode != kerr.NotEnoughReplicas.Code || p.LogEndOffset() != end {
		t.Fatalf("unverifiable transactional produce: %v, log end %d -> %d", kerr.ErrorForCode(produced.ErrorCode), end, p.LogEndOffset())
	}
	// The failed verification does not stand for a later batch.
	if _, _, err := p.Append(b, 9, time.Now()); err == nil {
		t.Fatal("a transactional batch was appended on a verification the coordinator never confirmed")
	}
	// Transactional records without a transactional id are refused.
	produce.TransactionID = nil
	produced = request[*kmsg.ProduceResponse](t, broker, produce).Topics[0].Partitions[0]
	if produced.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code || p.LogEndOffset() != end {
		t.Fatalf("transactional records without a transactional id: %v", kerr.ErrorForCode(produced.ErrorCode))
	}
}
