package broker_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/recordbatch"
)

// memGroupLog is a __consumer_offsets partition in memory, for a shard the
// test puts in place of the broker's own: it numbers appended records and
// remembers the transactional ones' producers.
type memGroupLog struct {
	mu   sync.Mutex // guards every field
	next int64
	txns []group.TxnProducer // the producer of each transactional append
}

func (l *memGroupLog) Append(records []recordbatch.Record) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	base := l.next
	l.next += int64(len(records))
	return base, nil
}

func (l *memGroupLog) AppendTxn(records []recordbatch.Record, p group.TxnProducer) (int64, error) {
	base, err := l.Append(records)
	l.mu.Lock()
	l.txns = append(l.txns, p)
	l.mu.Unlock()
	return base, err
}

// VerifyTxn: the test's producer has no transaction coordinator; every
// commit is taken as part of its transaction.
func (l *memGroupLog) VerifyTxn(group.TxnProducer) error { return nil }

// marker takes the next offset for a transaction marker and returns it.
func (l *memGroupLog) marker() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	return l.next - 1
}

func (l *memGroupLog) Replay(func([]byte) error) (int64, error)    { return 0, nil }
func (l *memGroupLog) AwaitCommitted(int64, <-chan struct{}) error { return nil }
func (l *memGroupLog) Leading() bool                               { return true }

// TestTxnOffsetCommitAndRequireStable: TxnOffsetCommit over the wire is
// fenced like OffsetCommit (KIP-447), its offsets stay invisible to
// OffsetFetch until the transaction commits, and OffsetFetch with
// RequireStable answers UNSTABLE_OFFSET_COMMIT for their partition
// meanwhile (v7 and the v8 groups form), then the committed offset. The
// group's shard runs over an in-memory log here (the partition's
// transactional append is the partition's business).
func TestTxnOffsetCommitAndRequireStable(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client(offsetsByName())
	createTopic(t, cl, "t", 2, nil)
	const groupID, pid, epoch = "txn-group", int64(77), int16(3)
	// The broker's own shard first (creating the offsets topic), then the
	// test's in its place.
	groups := n.Server.Groups()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := groups.ShardFor(groupID); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the group's coordinator never served")
		}
		time.Sleep(10 * time.Millisecond)
	}
	partition := coordinator.Partition(groupID, 4)
	log := &memGroupLog{}
	if err := groups.Lead(partition, log); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := groups.ShardFor(groupID); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}

	// A static member makes the group Stable.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = groupID, "consumer", 30000, 30000
	join.InstanceID = kmsg.StringPtr("instance-1")
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("sub")}}
	jr := request[*kmsg.JoinGroupResponse](t, cl, join)
	if jr.ErrorCode != 0 {
		t.Fatalf("join: %+v", jr)
	}
	member, gen := jr.MemberID, jr.Generation
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID, sync.InstanceID = groupID, gen, member, kmsg.StringPtr("instance-1")
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: []byte("a")}}
	if r := request[*kmsg.SyncGroupResponse](t, cl, sync); r.ErrorCode != 0 {
		t.Fatalf("sync: %+v", r)
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation, commit.MemberID, commit.InstanceID = groupID, gen, member, kmsg.StringPtr("instance-1")
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}}}}
	if r := request[*kmsg.OffsetCommitResponse](t, cl, commit); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("plain commit: %+v", r)
	}

	// at is a client sending key at version at most (kgo sends the
	// highest version both sides support).
	at := func(key, version int16) *kgo.Client {
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(key, version)
		return n.Client(kgo.MaxVersions(vs))
	}
	// txnCommit sends TxnOffsetCommit at version and returns each
	// partition's error code, in order.
	txnCommit := func(version int16, mutate func(*kmsg.TxnOffsetCommitRequest)) []int16 {
		t.Helper()
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.SetVersion(version)
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "tx", groupID, pid, epoch
		req.Generation, req.MemberID, req.InstanceID = gen, member, kmsg.StringPtr("instance-1")
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset = 0, 15
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{p}}}
		if mutate != nil {
			mutate(req)
		}
		resp, err := req.RequestWith(t.Context(), at(req.Key(), version))
		if err != nil {
			t.Fatalf("TxnOffsetCommit v%d: %v", version, err)
		}
		if resp.Version != version {
			t.Fatalf("TxnOffsetCommit sent as v%d, want v%d", resp.Version, version)
		}
		var codes []int16
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				codes = append(codes, rp.ErrorCode)
			}
		}
		return codes
	}
	want := func(what string, got []int16, want ...int16) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: codes %v, want %v", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: codes %v (%v), want %v", what, got, kerr.ErrorForCode(got[i]), want)
			}
		}
	}
	// Fenced like OffsetCommit, and nothing written.
	want("old generation", txnCommit(3, func(r *kmsg.TxnOffsetCommitRequest) { r.Generation = gen - 1 }), kerr.IllegalGeneration.Code)
	want("unknown member", txnCommit(3, func(r *kmsg.TxnOffsetCommitRequest) { r.MemberID, r.InstanceID = "zombie", nil }), kerr.UnknownMemberID.Code)
	want("fenced instance", txnCommit(4, func(r *kmsg.TxnOffsetCommitRequest) { r.MemberID = "zombie" }), kerr.FencedInstanceID.Code)
	want("no group", txnCommit(3, func(r *kmsg.TxnOffsetCommitRequest) { r.Group = "" }), kerr.InvalidGroupID.Code)
	want("no producer", txnCommit(3, func(r *kmsg.TxnOffsetCommitRequest) { r.ProducerID = -1 }), kerr.InvalidProducerIDMapping.Code)
	want("unknown topic", txnCommit(3, func(r *kmsg.TxnOffsetCommitRequest) { r.Topics[0].Topic = "nope" }), kerr.UnknownTopicOrPartition.Code)
	want("metadata too large", txnCommit(3, func(r *kmsg.TxnOffsetCommitRequest) {
		r.Topics[0].Partitions[0].Metadata = kmsg.StringPtr(strings.Repeat("m", group.OffsetMetadataMaxBytes+1))
	}), kerr.OffsetMetadataTooLarge.Code)
	log.mu.Lock()
	if len(log.txns) != 0 {
		t.Fatalf("refused commits were written: %v", log.txns)
	}
	log.mu.Unlock()
	// v0-v2 carry no member: accepted from outside the group.
	want("v2 without a member", txnCommit(2, func(r *kmsg.TxnOffsetCommitRequest) { r.Topics[0].Partitions[0].Offset = 14 }), 0)
	want("member of the generation", txnCommit(3, nil), 0)
	log.mu.Lock()
	wantProducer := group.TxnProducer{TransactionalID: "tx", ProducerID: pid, ProducerEpoch: epoch}
	if len(log.txns) != 2 || log.txns[0] != wantProducer || log.txns[1] != wantProducer {
		t.Fatalf("transactional appends %v, want two of %+v", log.txns, wantProducer)
	}
	log.mu.Unlock()

	fetch := func(version int16, requireStable bool) (offset int64, code int16) {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.SetVersion(version)
		req.RequireStable = requireStable
		if version >= 8 {
			req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: groupID, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
		} else {
			req.Group = groupID
			req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
		}
		resp, err := req.RequestWith(t.Context(), at(req.Key(), version))
		if err != nil {
			t.Fatalf("OffsetFetch v%d: %v", version, err)
		}
		if resp.Version != version {
			t.Fatalf("OffsetFetch sent as v%d, want v%d", resp.Version, version)
		}
		if version >= 8 {
			g := resp.Groups[0]
			if g.ErrorCode != 0 {
				t.Fatalf("OffsetFetch v%d group error %d", version, g.ErrorCode)
			}
			p := g.Topics[0].Partitions[0]
			return p.Offset, p.ErrorCode
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("OffsetFetch v%d error %d", version, resp.ErrorCode)
		}
		p := resp.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	for _, v := range []int16{7, 8} {
		if off, code := fetch(v, false); off != 5 || code != 0 {
			t.Fatalf("OffsetFetch v%d during the transaction: offset %d code %d, want the committed 5", v, off, code)
		}
		if off, code := fetch(v, true); off != -1 || code != kerr.UnstableOffsetCommit.Code {
			t.Fatalf("OffsetFetch v%d RequireStable during the transaction: offset %d code %d, want UNSTABLE_OFFSET_COMMIT", v, off, code)
		}
	}
	// Every committed partition (v8, no topics): the unstable one says so.
	all := kmsg.NewPtrOffsetFetchRequest()
	all.RequireStable = true
	all.Groups = []kmsg.OffsetFetchRequestGroup{{Group: groupID}}
	if r := request[*kmsg.OffsetFetchResponse](t, at(all.Key(), 8), all); len(r.Groups) != 1 || len(r.Groups[0].Topics) != 1 ||
		len(r.Groups[0].Topics[0].Partitions) != 1 || r.Groups[0].Topics[0].Partitions[0].ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("OffsetFetch of every partition with RequireStable during the transaction: %+v", r.Groups)
	}
	groups.CompleteTransaction(partition, pid, epoch, log.marker(), true)
	for _, v := range []int16{7, 8} {
		for _, stable := range []bool{false, true} {
			if off, code := fetch(v, stable); off != 15 || code != 0 {
				t.Fatalf("OffsetFetch v%d (RequireStable %v) after the commit: offset %d code %d, want 15", v, stable, off, code)
			}
		}
	}

	// v5 (Transactions V2, the offsets partition added implicitly) is
	// served; v6 (topic ids) is not.
	av := request[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest())
	advertised := false
	for _, k := range av.ApiKeys {
		if k.ApiKey == 28 {
			advertised = true
			if k.MinVersion != 0 || k.MaxVersion != 5 {
				t.Fatalf("TxnOffsetCommit advertised v%d-v%d, want v0-v5", k.MinVersion, k.MaxVersion)
			}
		}
	}
	if !advertised {
		t.Fatal("TxnOffsetCommit is not advertised")
	}

	// v5 (Transactions V2): the group's coordinator adds its
	// __consumer_offsets partition to the producer's transaction itself
	// (the producer sends no AddOffsetsToTxn); a producer the transaction
	// coordinator does not know is refused, and nothing is written.
	log.mu.Lock()
	written := len(log.txns)
	log.mu.Unlock()
	v5 := func(r *kmsg.TxnOffsetCommitRequest) { r.Topics[0].Partitions[0].Partition = 1 }
	initProducer(t, cl, "tx5", 60_000)
	init := initProducer(t, cl, "tx5", 60_000) // epoch 1: 0 is stale
	if init.ErrorCode != 0 || init.ProducerEpoch != 1 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(init.ErrorCode))
	}
	want("v5, unknown transactional id", txnCommit(5, func(r *kmsg.TxnOffsetCommitRequest) { v5(r); r.TransactionalID = "unknown" }), kerr.InvalidProducerIDMapping.Code)
	want("v5, stale epoch", txnCommit(5, func(r *kmsg.TxnOffsetCommitRequest) {
		v5(r)
		r.TransactionalID, r.ProducerID, r.ProducerEpoch = "tx5", init.ProducerID, init.ProducerEpoch-1
	}), kerr.InvalidProducerEpoch.Code)
	log.mu.Lock()
	if len(log.txns) != written {
		t.Fatalf("refused v5 commits were written: %v", log.txns[written:])
	}
	log.mu.Unlock()
	want("v5", txnCommit(5, func(r *kmsg.TxnOffsetCommitRequest) {
		v5(r)
		r.TransactionalID, r.ProducerID, r.ProducerEpoch = "tx5", init.ProducerID, init.ProducerEpoch
	}), 0)
	d := describeTxn(t, cl, "tx5")
	if d.State != "Ongoing" || len(d.Topics) != 1 || d.Topics[0].Topic != group.OffsetsTopic || len(d.Topics[0].Partitions) != 1 || d.Topics[0].Partitions[0] != partition {
		t.Fatalf("transaction after TxnOffsetCommit v5: %+v, want Ongoing on %s-%d", d, group.OffsetsTopic, partition)
	}
	log.mu.Lock()
	if len(log.txns) != written+1 || log.txns[written].ProducerID != init.ProducerID {
		t.Fatalf("v5 appends %v", log.txns[written:])
	}
	log.mu.Unlock()
}
