package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// requestLog records the requests a franz-go client writes ("wrote
// EndTxn v5" in its debug log), to tell which transaction protocol it
// used.
type requestLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *requestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *requestLog) opt() kgo.Opt {
	return kgo.WithLogger(kgo.BasicLogger(l, kgo.LogLevelDebug, nil))
}

// versions returns the versions of the request named name written.
func (l *requestLog) versions(name string) map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`wrote `+name+` (v\d+)`).FindAllStringSubmatch(l.buf.String(), -1) {
		out[m[1]] = true
	}
	return out
}

// checkProtocol asserts that a client used Transactions V2 (level 2:
// Produce v13 (v12 naming topics by id) adding its partitions, EndTxn v5,
// TxnOffsetCommit v5, no AddPartitionsToTxn nor
// AddOffsetsToTxn) or V1 (level 1: the explicit adds, EndTxn v4, Produce
// v11 at most).
func checkProtocol(t *testing.T, l *requestLog, level int16, offsets bool) {
	t.Helper()
	end, produce, add, addOffsets, txnCommit := l.versions("EndTxn"), l.versions("Produce"), l.versions("AddPartitionsToTxn"), l.versions("AddOffsetsToTxn"), l.versions("TxnOffsetCommit")
	v2 := fmt.Sprint(end) == "map[v5:true]" && fmt.Sprint(produce) == "map[v13:true]" && len(add) == 0 && len(addOffsets) == 0
	v1 := fmt.Sprint(end) == "map[v4:true]" && !produce["v12"] && !produce["v13"] && len(add) > 0
	if offsets {
		v2 = v2 && fmt.Sprint(txnCommit) == "map[v5:true]"
		v1 = v1 && len(addOffsets) > 0 && !txnCommit["v5"]
	}
	if (level == 2 && !v2) || (level == 1 && !v1) {
		t.Fatalf("transaction.version %d: EndTxn %v, Produce %v, AddPartitionsToTxn %v, AddOffsetsToTxn %v, TxnOffsetCommit %v", level, end, produce, add, addOffsets, txnCommit)
	}
}

// transactionVersions runs a test against a broker advertising each
// transaction.version level (franz-go uses Transactions V2 when the level
// is 2).
func transactionVersions(t *testing.T, test func(t *testing.T, n *brokertest.Node, level int16)) {
	for _, level := range []int16{2, 1} {
		t.Run(fmt.Sprintf("transaction.version=%d", level), func(t *testing.T) {
			n := brokertest.Start(t, func(c *broker.Config) { c.TransactionVersion = level })
			test(t, n, level)
		})
	}
}

// TestTransactionalProducerCommitAndAbort: franz-go's transactional
// producer against one broker: a committed transaction's records are read
// by a read_committed consumer, an aborted one's are not (a
// read_uncommitted consumer reads both), and the coordinator ends each
// transaction complete.
//
// At transaction.version 2 the producer uses Transactions V2: every
// transaction's end bumps the producer epoch.
func TestTransactionalProducerCommitAndAbort(t *testing.T) {
	transactionVersions(t, testTransactionalProducerCommitAndAbort)
}

func testTransactionalProducerCommitAndAbort(t *testing.T, n *brokertest.Node, level int16) {
	admin := n.Client()
	createTopic(t, admin, "out", 2, nil)

	var requests requestLog
	producer := n.Client(kgo.TransactionalID("eos"), kgo.DefaultProduceTopic("out"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), requests.opt())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := producer.Ping(ctx); err != nil { // learn the features before the first transaction
		t.Fatal(err)
	}
	produce := func(commit bool, values ...string) {
		t.Helper()
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
		if err := producer.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction (commit %v): %v", commit, err)
		}
	}
	produce(true, "c1", "c2", "c3")
	produce(false, "a1", "a2")
	produce(true, "c4")

	read := func(isolation kgo.IsolationLevel, want int) map[string]bool {
		t.Helper()
		cl := n.Client(kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(isolation), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		got := map[string]bool{}
		for len(got) < want && ctx.Err() == nil {
			fetches := cl.PollFetches(ctx)
			fetches.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
		}
		// Whatever else is there arrives in the next poll.
		short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancelShort()
		cl.PollFetches(short).EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
		return got
	}
	committed := read(kgo.ReadCommitted(), 4)
	if fmt.Sprint(committed) != fmt.Sprint(map[string]bool{"c1": true, "c2": true, "c3": true, "c4": true}) {
		t.Fatalf("read_committed read %v", committed)
	}
	if all := read(kgo.ReadUncommitted(), 6); len(all) != 6 {
		t.Fatalf("read_uncommitted read %v", all)
	}
	d := describeTxn(t, admin, "eos")
	for deadline := time.Now().Add(10 * time.Second); d.State != "CompleteCommit" && time.Now().Before(deadline); d = describeTxn(t, admin, "eos") {
		time.Sleep(20 * time.Millisecond)
	}
	if d.State != "CompleteCommit" || len(d.Topics) != 0 {
		t.Fatalf("after the last commit: %+v", d)
	}
	// V2 bumps the epoch at the end of each of the three transactions.
	if wantEpoch := map[int16]int16{1: 0, 2: 3}[level]; d.ProducerEpoch != wantEpoch {
		t.Fatalf("producer epoch %d after three transactions, want %d", d.ProducerEpoch, wantEpoch)
	}
	checkProtocol(t, &requests, level, false)
}

// TestGroupTransactSessionMovesOffsetsWithTheOutput: a consume-transform-
// produce session (franz-go's GroupTransactSession) commits its group's
// offsets in the transaction of its output (AddOffsetsToTxn,
// TxnOffsetCommit, markers to __consumer_offsets): once committed the
// group's offset and the read_committed output agree.
//
// At transaction.version 2 the session uses Transactions V2: the offsets
// partition is added by TxnOffsetCommit v5 (no AddOffsetsToTxn).
func TestGroupTransactSessionMovesOffsetsWithTheOutput(t *testing.T) {
	transactionVersions(t, testGroupTransactSessionMovesOffsetsWithTheOutput)
}

func testGroupTransactSessionMovesOffsetsWithTheOutput(t *testing.T, n *brokertest.Node, level int16) {
	admin := n.Client()
	createTopic(t, admin, "in", 1, nil)
	createTopic(t, admin, "out", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const records = 10
	input := n.Client(kgo.DefaultProduceTopic("in"))
	for i := range records {
		if err := input.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	var requests requestLog
	session, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(n.Addr), kgo.TransactionalID("cts"), kgo.ConsumerGroup("g"),
		kgo.ConsumeTopics("in"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DefaultProduceTopic("out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequireStableFetchOffsets(), requests.opt())
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	moved := 0
	for moved < records && ctx.Err() == nil {
		fetches := session.PollFetches(ctx)
		if err := session.Begin(); err != nil {
			t.Fatal(err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			session.Produce(ctx, &kgo.Record{Value: append([]byte("out-"), r.Value...)}, nil)
			moved++
		})
		committed, err := session.End(ctx, kgo.TryCommit)
		if err != nil || !committed {
			t.Fatalf("End: committed %v, %v", committed, err)
		}
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Group = "g"
	fetch.RequireStable = true
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "in", Partitions: []int32{0}}}
	var offset int64 = -1
	for deadline := time.Now().Add(10 * time.Second); offset != records && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r := request[*kmsg.OffsetFetchResponse](t, admin, fetch)
		if len(r.Topics) == 1 && r.Topics[0].Partitions[0].ErrorCode == 0 {
			offset = r.Topics[0].Partitions[0].Offset
		}
	}
	if offset != records {
		t.Fatalf("group offset %d, want %d", offset, records)
	}
	out := n.Client(kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for len(seen) < records && ctx.Err() == nil {
		out.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != records {
		t.Fatalf("read_committed output %v", seen)
	}
	checkProtocol(t, &requests, level, true)
}
