package broker_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/broker/txn"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// untilServed sends a request until its error code (code picks it from
// the response) is not a retriable one (the coordinator's topic being
// created, its shard loading).
func untilServed[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request, code func(R) int16) R {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := request[R](t, cl, req)
		if err := kerr.ErrorForCode(code(r)); err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func initProducer(t *testing.T, cl *kgo.Client, id string, timeoutMillis int32) *kmsg.InitProducerIDResponse {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = kmsg.StringPtr(id)
	req.TransactionTimeoutMillis = timeoutMillis
	return untilServed(t, cl, req, func(r *kmsg.InitProducerIDResponse) int16 { return r.ErrorCode })
}

// addPartitions sends AddPartitionsToTxn (the client picks the version:
// the highest of v0-v3 both sides serve).
func addPartitions(t *testing.T, cl *kgo.Client, _ int16, id string, pid int64, epoch int16, topic string, partitions ...int32) map[int32]int16 {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: partitions}}
	out := map[int32]int16{}
	for _, rt := range request[*kmsg.AddPartitionsToTxnResponse](t, cl, req).Topics {
		for _, rp := range rt.Partitions {
			out[rp.Partition] = rp.ErrorCode
		}
	}
	return out
}

func describeTxn(t *testing.T, cl *kgo.Client, id string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	return request[*kmsg.DescribeTransactionsResponse](t, cl, req).TransactionStates[0]
}

// endTxn sends a Transactions V1 EndTxn (v4 at most: no epoch bump) to
// cl's brokers.
func endTxn(t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, commit bool) int16 {
	t.Helper()
	v1 := kversion.Stable()
	v1.SetMaxKeyVersion(kmsg.EndTxn.Int16(), 4)
	pinned, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...), kgo.MaxVersions(v1))
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	return request[*kmsg.EndTxnResponse](t, pinned, req).ErrorCode
}

// servesWriteTxnMarkers: whether the broker takes markers (the partition
// side of transactions); without it, transactions stay PrepareCommit.
func servesWriteTxnMarkers(t *testing.T, cl *kgo.Client) bool {
	r := request[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest())
	return slices.ContainsFunc(r.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == kmsg.WriteTxnMarkers.Int16() })
}

// TestTransactionCoordinatorOverTheWire drives a transaction through the
// coordinator APIs as a transactional producer (and a partition leader
// verifying its batches) sends them, then restarts the broker: the
// coordinator's state comes back from __transaction_state.
func TestTransactionCoordinatorOverTheWire(t *testing.T) {
	var registry *prometheus.Registry // the running incarnation's
	n := brokertest.Start(t, func(c *broker.Config) {
		registry = prometheus.NewRegistry()
		c.Registerer = registry
	})
	cl := n.Client()
	createTopic(t, cl, "t", 3, nil)

	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorType, find.CoordinatorKey = 1, "tx"
	if r := untilServed(t, cl, find, func(r *kmsg.FindCoordinatorResponse) int16 { return r.ErrorCode }); r.ErrorCode != 0 || r.NodeID != metadatatest.NodeID {
		t.Fatalf("FindCoordinator(transaction): %v node %d", kerr.ErrorForCode(r.ErrorCode), r.NodeID)
	}
	topic, ok := n.Store.State().Topic(txn.TopicName)
	if !ok || !topic.Internal || len(topic.Partitions) != 4 || topic.Configs[topicconfig.CleanupPolicy] != "compact" || topic.Configs[topicconfig.MinInsyncReplicas] != "1" {
		t.Fatalf("%s: exists %v %+v", txn.TopicName, ok, topic)
	}

	init := initProducer(t, cl, "tx", 60_000)
	if init.ErrorCode != 0 || init.ProducerID < 0 || init.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId: %v %d/%d", kerr.ErrorForCode(init.ErrorCode), init.ProducerID, init.ProducerEpoch)
	}
	pid, epoch := init.ProducerID, init.ProducerEpoch

	// A partition of a topic that does not exist fails the request.
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = "tx", pid, epoch
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}, {Topic: "missing", Partitions: []int32{0}}}
	got := map[string]int16{}
	for _, rt := range request[*kmsg.AddPartitionsToTxnResponse](t, cl, req).Topics {
		got[rt.Topic] = rt.Partitions[0].ErrorCode
	}
	if got["t"] != kerr.OperationNotAttempted.Code || got["missing"] != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("add with a missing topic: %v", got)
	}
	if got := addPartitions(t, cl, 3, "tx", pid, epoch, "t", 0, 1); got[0] != 0 || got[1] != 0 {
		t.Fatalf("AddPartitionsToTxn: %v", got)
	}
	offsets := kmsg.NewPtrAddOffsetsToTxnRequest()
	offsets.TransactionalID, offsets.ProducerID, offsets.ProducerEpoch, offsets.Group = "tx", pid, epoch, "g"
	if r := request[*kmsg.AddOffsetsToTxnResponse](t, cl, offsets); r.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if got := metricValue(t, registry, "strata_transactions_total", "started"); got != 1 {
		t.Fatalf("strata_transactions_total{event=started} = %v, want 1", got)
	}

	// A partition leader verifying the producer's first batch (KIP-890
	// part 1, v4 with VerifyOnly): partitions in the transaction pass.
	verify := kmsg.NewPtrAddPartitionsToTxnRequest()
	verify.Version = 4
	verify.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{{TransactionalID: "tx", ProducerID: pid, ProducerEpoch: epoch, VerifyOnly: true,
		Topics: []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "t", Partitions: []int32{0, 2}}}}}
	verified := map[int32]int16{}
	v4 := kversion.Stable()
	v4.SetMaxKeyVersion(kmsg.AddPartitionsToTxn.Int16(), 4)
	for _, tx := range request[*kmsg.AddPartitionsToTxnResponse](t, n.Client(kgo.MaxVersions(v4)), verify).Transactions {
		for _, rt := range tx.Topics {
			for _, rp := range rt.Partitions {
				verified[rp.Partition] = rp.ErrorCode
			}
		}
	}
	if verified[0] != 0 || verified[2] != kerr.InvalidTxnState.Code {
		t.Fatalf("VerifyOnly: %v, want t-0 ok and t-2 INVALID_TXN_STATE", verified)
	}
	// v5 answers a partition not in the transaction TRANSACTION_ABORTABLE.
	verify.Version = 5
	for _, tx := range request[*kmsg.AddPartitionsToTxnResponse](t, cl, verify).Transactions {
		for _, rt := range tx.Topics {
			for _, rp := range rt.Partitions {
				verified[rp.Partition] = rp.ErrorCode
			}
		}
	}
	if verified[0] != 0 || verified[2] != kerr.TransactionAbortable.Code {
		t.Fatalf("VerifyOnly v5: %v, want t-0 ok and t-2 TRANSACTION_ABORTABLE", verified)
	}

	offsetsPartition := coordinator.Partition("g", 4)
	d := describeTxn(t, cl, "tx")
	wantTopics := []kmsg.DescribeTransactionsResponseTransactionStateTopic{
		{Topic: group.OffsetsTopic, Partitions: []int32{offsetsPartition}}, {Topic: "t", Partitions: []int32{0, 1}}}
	if d.ErrorCode != 0 || d.State != "Ongoing" || d.ProducerID != pid || d.ProducerEpoch != epoch || d.TimeoutMillis != 60_000 || d.StartTimestamp <= 0 ||
		!reflect.DeepEqual(d.Topics, wantTopics) {
		t.Fatalf("DescribeTransactions: %+v", d)
	}
	list := kmsg.NewPtrListTransactionsRequest()
	list.StateFilters = []string{"Ongoing", "Bogus"}
	if r := request[*kmsg.ListTransactionsResponse](t, cl, list); r.ErrorCode != 0 || len(r.TransactionStates) != 1 ||
		r.TransactionStates[0].TransactionalID != "tx" || r.TransactionStates[0].TransactionState != "Ongoing" || !reflect.DeepEqual(r.UnknownStateFilters, []string{"Bogus"}) {
		t.Fatalf("ListTransactions: %+v", r)
	}

	if code := endTxn(t, cl, "tx", pid, epoch, true); code != 0 {
		t.Fatalf("EndTxn: %v", kerr.ErrorForCode(code))
	}
	// Answered once PrepareCommit is written; the markers follow. Without
	// a partition side that takes markers, the transaction waits in
	// PrepareCommit and a retried EndTxn is told to wait.
	wantState := "PrepareCommit"
	if servesWriteTxnMarkers(t, cl) {
		wantState = "CompleteCommit"
	}
	deadline := time.Now().Add(20 * time.Second)
	for d = describeTxn(t, cl, "tx"); d.State != wantState && time.Now().Before(deadline); d = describeTxn(t, cl, "tx") {
		time.Sleep(20 * time.Millisecond)
	}
	if d.State != wantState {
		t.Fatalf("after EndTxn: %+v, want %s", d, wantState)
	}
	if wantState == "PrepareCommit" {
		if got := metricValue(t, registry, "strata_transaction_markers_pending", ""); got != 1 {
			t.Fatalf("strata_transaction_markers_pending = %v, want 1", got)
		}
		if code := endTxn(t, cl, "tx", pid, epoch, true); code != kerr.ConcurrentTransactions.Code {
			t.Fatalf("EndTxn while the markers are pending: %v", kerr.ErrorForCode(code))
		}
		if code := endTxn(t, cl, "tx", pid, epoch, false); code != kerr.InvalidTxnState.Code {
			t.Fatalf("abort after commit: %v", kerr.ErrorForCode(code))
		}
	}

	// The state survives a restart: the new coordinator replays it.
	n.Restart()
	cl = n.Client()
	req2 := kmsg.NewPtrDescribeTransactionsRequest()
	req2.TransactionalIDs = []string{"tx"}
	after := untilServed(t, cl, req2, func(r *kmsg.DescribeTransactionsResponse) int16 { return r.TransactionStates[0].ErrorCode }).TransactionStates[0]
	if after.ErrorCode != 0 || after.State != wantState || after.ProducerID != pid || after.ProducerEpoch != epoch {
		t.Fatalf("after restart: %+v, want %s of %d/%d", after, wantState, pid, epoch)
	}
}

// TestTransactionalProducerFencing: a second InitProducerId of a
// transactional id bumps its epoch; the first instance is fenced, with the
// error its request version knows.
func TestTransactionalProducerFencing(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) { c.TransactionMaxTimeout = time.Minute })
	cl := n.Client()
	createTopic(t, cl, "t", 1, nil)

	if r := initProducer(t, cl, "zombie", 60_001); r.ErrorCode != kerr.InvalidTransactionTimeout.Code {
		t.Fatalf("timeout above transaction.max.timeout.ms: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	first := initProducer(t, cl, "zombie", 60_000)
	second := initProducer(t, cl, "zombie", 60_000)
	if first.ErrorCode != 0 || second.ErrorCode != 0 || second.ProducerID != first.ProducerID || second.ProducerEpoch != first.ProducerEpoch+1 {
		t.Fatalf("InitProducerId twice: %+v then %+v", first, second)
	}
	if got := addPartitions(t, cl, 3, "zombie", first.ProducerID, first.ProducerEpoch, "t", 0); got[0] != kerr.ProducerFenced.Code {
		t.Fatalf("zombie AddPartitionsToTxn v3: %v", kerr.ErrorForCode(got[0]))
	}
	// A client from before KIP-588 (v0-v1) is told INVALID_PRODUCER_EPOCH.
	old := kversion.Stable()
	old.SetMaxKeyVersion(kmsg.AddPartitionsToTxn.Int16(), 1)
	if got := addPartitions(t, n.Client(kgo.MaxVersions(old)), 1, "zombie", first.ProducerID, first.ProducerEpoch, "t", 0); got[0] != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("zombie AddPartitionsToTxn v1: %v", kerr.ErrorForCode(got[0]))
	}
	if got := addPartitions(t, cl, 3, "zombie", second.ProducerID, second.ProducerEpoch, "t", 0); got[0] != 0 {
		t.Fatalf("current producer AddPartitionsToTxn: %v", kerr.ErrorForCode(got[0]))
	}
	// ListTransactions v2 filters by a pattern over the whole id.
	for pattern, want := range map[string]int{"zom.*": 1, "zom": 0, "": 1} {
		list := kmsg.NewPtrListTransactionsRequest()
		list.TransactionalIDPattern = kmsg.StringPtr(pattern)
		if r := request[*kmsg.ListTransactionsResponse](t, cl, list); r.ErrorCode != 0 || len(r.TransactionStates) != want {
			t.Fatalf("ListTransactions pattern %q: %v %+v, want %d", pattern, kerr.ErrorForCode(r.ErrorCode), r.TransactionStates, want)
		}
	}
	list := kmsg.NewPtrListTransactionsRequest()
	list.TransactionalIDPattern = kmsg.StringPtr("(")
	if r := request[*kmsg.ListTransactionsResponse](t, cl, list); r.ErrorCode != kerr.InvalidRegularExpression.Code {
		t.Fatalf("ListTransactions with a bad pattern: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	// KIP-360 from the zombie with its stale epoch is fenced too.
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = kmsg.StringPtr("zombie")
	req.TransactionTimeoutMillis = 60_000
	req.ProducerID, req.ProducerEpoch = first.ProducerID, first.ProducerEpoch
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("KIP-360 from the zombie: %v %v", err, resp)
	}
}

// metricValue is the value of a counter (with label event) or gauge
// (event "") in registry; 0 when absent.
func metricValue(t *testing.T, registry *prometheus.Registry, name, event string) float64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if event == "" {
				return m.GetGauge().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "event" && l.GetValue() == event {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
