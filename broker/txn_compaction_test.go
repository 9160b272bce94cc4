package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
)

// TestAbortedTxnOffsetCommitCompacted: an aborted transaction's offset
// commit never shadows the committed offset of the same key once the
// cleaner has compacted __consumer_offsets: the cleaner removes the
// aborted record instead of keeping it as the key's latest, so the shard
// replayed after a restart still serves the plain commit.
func TestAbortedTxnOffsetCommitCompacted(t *testing.T) {
	n := brokertest.Start(t, manualCleaner, func(c *broker.Config) { c.OffsetsTopicSegmentBytes = 2048 })
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "t", 3, nil)
	commitOffset(t, cl, "g", -1, "", "t", 0, 5)

	// A transaction of "tx" commits the group's offset, then aborts
	// (TxnOffsetCommit is verified with the transaction coordinator:
	// AddOffsetsToTxn first).
	ip := initProducer(t, cl, "tx", 60000)
	if ip.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %+v", ip)
	}
	pid, epoch := ip.ProducerID, ip.ProducerEpoch
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = "tx", pid, epoch, "g"
	if r := untilServed(t, cl, add, func(r *kmsg.AddOffsetsToTxnResponse) int16 { return r.ErrorCode }); r.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %+v", r)
	}
	txnCommit := kmsg.NewPtrTxnOffsetCommitRequest()
	txnCommit.SetVersion(2)
	txnCommit.TransactionalID, txnCommit.Group, txnCommit.ProducerID, txnCommit.ProducerEpoch = "tx", "g", pid, epoch
	tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	tp.Partition, tp.Offset = 0, 15
	txnCommit.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{tp}}}
	v1 := kversion.Stable() // a Transactions V1 commit and end (v5 would add the partition to the transaction, EndTxn v5 bump the epoch)
	v1.SetMaxKeyVersion(kmsg.TxnOffsetCommit.Int16(), 2)
	v1.SetMaxKeyVersion(kmsg.EndTxn.Int16(), 4)
	v1cl := n.Client(kgo.MaxVersions(v1))
	if r := request[*kmsg.TxnOffsetCommitResponse](t, v1cl, txnCommit); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("transactional commit: %+v", r)
	}
	topic, _ := n.Store.State().Topic(group.OffsetsTopic)
	shard := coordinator.Partition("g", int32(len(topic.Partitions)))
	if code := endTxn(t, v1cl, "tx", pid, epoch, false); code != 0 {
		t.Fatalf("EndTxn abort: %d", code)
	}
	d := describeTxn(t, cl, "tx")
	for deadline := time.Now().Add(10 * time.Second); d.State != "CompleteAbort" && time.Now().Before(deadline); d = describeTxn(t, cl, "tx") {
		time.Sleep(10 * time.Millisecond)
	}
	if d.State != "CompleteAbort" {
		t.Fatalf("transaction %s, want CompleteAbort", d.State)
	}
	if got := fetchOffset(t, cl, "g", "t", 0); got != 5 {
		t.Fatalf("after the abort: offset %d, want 5", got)
	}
	// Roll the shard's segments so both records are cleanable.
	p := n.Server.OpenPartition(group.OffsetsTopic, shard)
	for i := 0; len(p.Segments()) < 3; i++ {
		commitOffset(t, cl, "g", -1, "", "t", 1+int32(i%2), int64(i))
	}
	n.Server.CleanPartition(p)

	cl.Close()
	n.Restart()
	cl = n.Client(offsetsByName())
	waitLoaded(t, n)
	if got := fetchOffset(t, cl, "g", "t", 0); got != 5 {
		t.Fatalf("after compaction and replay: offset %d, want the committed 5 (the aborted 15 must not shadow it)", got)
	}
}
