package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
)

// TestTransactionalProducerCommitAndAbort: franz-go's transactional
// producer against one broker: a committed transaction's records are read
// by a read_committed consumer, an aborted one's are not (a
// read_uncommitted consumer reads both), and the coordinator ends each
// transaction complete.
func TestTransactionalProducerCommitAndAbort(t *testing.T) {
	n := brokertest.Start(t)
	admin := n.Client()
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "out", NumPartitions: 2, ReplicationFactor: 1}}
	request[*kmsg.CreateTopicsResponse](t, admin, ct)

	producer := n.Client(kgo.TransactionalID("eos"), kgo.DefaultProduceTopic("out"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
}

// TestGroupTransactSessionMovesOffsetsWithTheOutput: a consume-transform-
// produce session (franz-go's GroupTransactSession) commits its group's
// offsets in the transaction of its output (AddOffsetsToTxn,
// TxnOffsetCommit, markers to __consumer_offsets): once committed the
// group's offset and the read_committed output agree.
func TestGroupTransactSessionMovesOffsetsWithTheOutput(t *testing.T) {
	n := brokertest.Start(t)
	admin := n.Client()
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "in", NumPartitions: 1, ReplicationFactor: 1}, {Topic: "out", NumPartitions: 1, ReplicationFactor: 1}}
	request[*kmsg.CreateTopicsResponse](t, admin, ct)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const records = 10
	input := n.Client(kgo.DefaultProduceTopic("in"))
	for i := range records {
		if err := input.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	session, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(n.Addr), kgo.TransactionalID("cts"), kgo.ConsumerGroup("g"),
		kgo.ConsumeTopics("in"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DefaultProduceTopic("out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequireStableFetchOffsets())
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
}
