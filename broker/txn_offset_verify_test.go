package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
)

// TestTxnOffsetCommitVerifiedWithTheTransactionCoordinator: KIP-890 part 1
// for TxnOffsetCommit. A commit in the producer's ongoing transaction (the
// group added with AddOffsetsToTxn) is written and committed with it; one
// arriving after the transaction ended gets INVALID_TXN_STATE, and one of
// a fenced producer INVALID_PRODUCER_EPOCH, instead of opening a
// transaction on the group's __consumer_offsets partition that no marker
// would end (its offset pending forever: OffsetFetch with RequireStable
// answering UNSTABLE_OFFSET_COMMIT, the partition's last stable offset
// stuck).
//
// Transactions V1 (TxnOffsetCommit v0-v4 after AddOffsetsToTxn; v5, V2's,
// adds the partition itself).
func TestTxnOffsetCommitVerifiedWithTheTransactionCoordinator(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) { c.TransactionVersion = 1 })
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(kmsg.TxnOffsetCommit.Int16(), 4)
	vs.SetMaxKeyVersion(kmsg.EndTxn.Int16(), 4)
	cl := n.Client(kgo.MaxVersions(vs))
	createTopic(t, cl, "t", 1, nil)
	const id, groupID = "late-commit", "late-group"
	ip := initProducer(t, cl, id, 60000)
	if ip.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(ip.ErrorCode))
	}
	pid, epoch := ip.ProducerID, ip.ProducerEpoch

	addOffsets := func() {
		t.Helper()
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = id, pid, epoch, groupID
		if r := untilServed(t, cl, req, func(r *kmsg.AddOffsetsToTxnResponse) int16 { return r.ErrorCode }); r.ErrorCode != 0 {
			t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(r.ErrorCode))
		}
	}
	txnCommit := func(epoch int16, offset int64) int16 {
		t.Helper()
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = id, groupID, pid, epoch
		req.Generation = -1
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset = 0, offset
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{p}}}
		r := untilServed(t, cl, req, func(r *kmsg.TxnOffsetCommitResponse) int16 { return r.Topics[0].Partitions[0].ErrorCode })
		return r.Topics[0].Partitions[0].ErrorCode
	}
	end := func(commit bool) {
		t.Helper()
		if code := endTxn(t, cl, id, pid, epoch, commit); code != 0 {
			t.Fatalf("EndTxn: %v", kerr.ErrorForCode(code))
		}
		want := "CompleteAbort"
		if commit {
			want = "CompleteCommit"
		}
		d := describeTxn(t, cl, id)
		for deadline := time.Now().Add(10 * time.Second); d.State != want && time.Now().Before(deadline); d = describeTxn(t, cl, id) {
			time.Sleep(10 * time.Millisecond)
		}
		if d.State != want {
			t.Fatalf("transaction %s, want %s", d.State, want)
		}
	}
	fetch := func() (int64, int16) {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group, req.RequireStable = groupID, true
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
		r := request[*kmsg.OffsetFetchResponse](t, cl, req)
		if r.ErrorCode != 0 {
			t.Fatalf("OffsetFetch: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		p := r.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	// openTxnOnOffsets reports whether the producer has a transaction open
	// on the group's __consumer_offsets partition.
	openTxnOnOffsets := func() bool {
		t.Helper()
		md := kmsg.NewPtrMetadataRequest()
		md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(group.OffsetsTopic)}}
		partitions := int32(len(request[*kmsg.MetadataResponse](t, cl, md).Topics[0].Partitions))
		req := kmsg.NewPtrDescribeProducersRequest()
		req.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: group.OffsetsTopic, Partitions: []int32{coordinator.Partition(groupID, partitions)}}}
		r := request[*kmsg.DescribeProducersResponse](t, cl, req)
		p := r.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("DescribeProducers: %v", kerr.ErrorForCode(p.ErrorCode))
		}
		for _, ap := range p.ActiveProducers {
			if ap.ProducerID == pid && ap.CurrentTxnStartOffset >= 0 {
				return true
			}
		}
		return false
	}

	// In the transaction: written, committed with it.
	addOffsets()
	if code := txnCommit(epoch, 5); code != 0 {
		t.Fatalf("TxnOffsetCommit in the transaction: %v", kerr.ErrorForCode(code))
	}
	end(true)
	if off, code := fetch(); off != 5 || code != 0 {
		t.Fatalf("after the commit: offset %d (%v), want 5", off, kerr.ErrorForCode(code))
	}

	// After the transaction ended: refused, nothing left open.
	if code := txnCommit(epoch, 9); code != kerr.InvalidTxnState.Code {
		t.Fatalf("TxnOffsetCommit after the transaction ended: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	if off, code := fetch(); off != 5 || code != 0 {
		t.Fatalf("RequireStable after the refused commit: offset %d (%v), want 5", off, kerr.ErrorForCode(code))
	}
	if openTxnOnOffsets() {
		t.Fatal("the refused commit opened a transaction on __consumer_offsets")
	}

	// An aborted transaction's commit is dropped.
	addOffsets()
	if code := txnCommit(epoch, 12); code != 0 {
		t.Fatalf("TxnOffsetCommit in the next transaction: %v", kerr.ErrorForCode(code))
	}
	end(false)
	if off, code := fetch(); off != 5 || code != 0 {
		t.Fatalf("after the abort: offset %d (%v), want 5", off, kerr.ErrorForCode(code))
	}

	// A fenced producer (a new instance initialized the id) is refused.
	addOffsets()
	next := initProducer(t, cl, id, 60000)
	// It aborts the open transaction first (CONCURRENT_TRANSACTIONS until
	// its markers are written; clients retry).
	for deadline := time.Now().Add(10 * time.Second); next.ErrorCode == kerr.ConcurrentTransactions.Code && time.Now().Before(deadline); next = initProducer(t, cl, id, 60000) {
		time.Sleep(10 * time.Millisecond)
	}
	if next.ErrorCode != 0 || next.ProducerEpoch <= epoch {
		t.Fatalf("InitProducerId of a new instance: %+v", next)
	}
	if code := txnCommit(epoch, 13); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("TxnOffsetCommit of a fenced producer: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(code))
	}
	if off, code := fetch(); off != 5 || code != 0 {
		t.Fatalf("after the fenced commit: offset %d (%v), want 5", off, kerr.ErrorForCode(code))
	}
	if openTxnOnOffsets() {
		t.Fatal("a transaction is left open on __consumer_offsets")
	}
}
