//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transactions (exactly-once) against real strata processes, checked the
// way a Kafka user would: franz-go's GroupTransactSession chain across
// rebalances and kill -9, confluent-kafka-python (librdkafka) and sarama
// transactional producers with read_committed and read_uncommitted
// readers, a fenced zombie producer, a transaction timeout, the last
// stable offset against DescribeProducers, and `strata transactions`.

// txnClusterFlags keep a 3-node cluster light on a 2-core machine (3
// partitions for each internal topic) and check for timed-out
// transactions every second.
var txnClusterFlags = []string{
	"--transaction-state-log-num-partitions", "3",
	"--offsets-topic-num-partitions", "3",
	"--transaction-abort-timed-out-transaction-cleanup-interval-ms", "1000",
	"--group-initial-rebalance-delay-ms", "0",
}

func startTxnCluster(t *testing.T) *cluster {
	return startClusterWith(t, 3, func(int32, *brokerProcess) (string, []string) { return "", txnClusterFlags })
}

// requireTransactions fails the test at once, with the broker's answer,
// when the cluster does not coordinate transactions. While the coordinator
// is being set up (Kafka answers COORDINATOR_NOT_AVAILABLE while it
// creates __transaction_state) it waits, up to a minute.
func requireTransactions(t *testing.T, seeds ...string) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, seeds[0], kgo.SeedBrokers(seeds...)))
	ctx := testContext(t, time.Minute)
	id := "probe-" + uniqueTopic(t)
	for {
		r := adm.FindTxnCoordinators(ctx, id)[id]
		switch {
		case r.Err == nil && r.NodeID >= 0:
			return
		case ctx.Err() != nil:
			t.Fatalf("no transaction coordinator for %q after a minute: %v %s", id, r.Err, r.ErrMessage)
		case r.Err == nil, errors.Is(r.Err, kerr.CoordinatorNotAvailable), errors.Is(r.Err, kerr.NotCoordinator), errors.Is(r.Err, kerr.CoordinatorLoadInProgress),
			!errors.As(r.Err, new(*kerr.Error)): // not an answer: a connection failed
			time.Sleep(200 * time.Millisecond)
		default:
			t.Fatalf("transactions refused: FindCoordinator(transaction, %q) answered %v: %s", id, r.Err, r.ErrMessage)
		}
	}
}

// createReplicatedTopic creates a topic with RF=3 and min.insync.replicas=2
// and waits until every partition has its full ISR.
func createReplicatedTopic(t *testing.T, c *cluster, topic string, partitions int32) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	resp, err := c.admin().CreateTopic(ctx, partitions, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	waitFullISR(t, c, time.Now().Add(30*time.Second), topic)
}

// waitFullISR waits until every partition of the topics (all the
// cluster's when none) has a leader and every replica in its ISR.
func waitFullISR(t *testing.T, c *cluster, deadline time.Time, topics ...string) {
	t.Helper()
	adm := c.admin()
	eventually(t, time.Until(deadline), "every replica in sync", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := adm.Metadata(ctx, topics...)
		if err != nil {
			return err
		}
		for _, td := range m.Topics.Sorted() {
			if td.Err != nil {
				return fmt.Errorf("%s: %v", td.Topic, td.Err)
			}
			for _, p := range td.Partitions.Sorted() {
				if p.Leader < 0 || len(p.ISR) != len(p.Replicas) {
					return fmt.Errorf("%s-%d: leader %d, replicas %v, ISR %v", td.Topic, p.Partition, p.Leader, p.Replicas, p.ISR)
				}
			}
		}
		return nil
	})
}

// appendSentinels writes one plain record to every partition of topic and
// returns its value. A reader that got every sentinel has read everything
// before it that its isolation level shows: with read_committed, nothing
// gets past a transaction still open before the sentinel.
func appendSentinels(t *testing.T, seeds []string, topic string, partitions int32) string {
	t.Helper()
	sentinel := fmt.Sprintf("sentinel-%d", time.Now().UnixNano())
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), manualPartitioner())
	for p := range partitions {
		produceSync(t, cl, topic, p, sentinel)
	}
	return sentinel
}

// readUntilSentinels reads every partition of topic from its start at the
// isolation level until each partition's sentinel arrived, and returns the
// records before the sentinels in partition, offset order.
func readUntilSentinels(t *testing.T, seeds []string, topic string, partitions int32, sentinel string, level kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	assign := map[int32]kgo.Offset{}
	for p := range partitions {
		assign[p] = kgo.NewOffset().AtStart()
	}
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}),
		kgo.FetchIsolationLevel(level), kgo.FetchMaxWait(200*time.Millisecond))
	ctx := testContext(t, time.Minute)
	var out []*kgo.Record
	reached := map[int32]bool{}
	for len(reached) < int(partitions) {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			ends, _ := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
			stable, _ := kadm.NewClient(cl).ListCommittedOffsets(context.Background(), topic)
			var stuck []string
			for p := range partitions {
				if !reached[p] {
					end, _ := ends.Lookup(topic, p)
					lso, _ := stable.Lookup(topic, p)
					stuck = append(stuck, fmt.Sprintf("%s-%d (high watermark %d, last stable offset %d)", topic, p, end.Offset, lso.Offset))
				}
			}
			t.Fatalf("reading %s: the sentinel of %s never arrived (a transaction left open holds read_committed readers back?)", topic, strings.Join(stuck, ", "))
		}
		fetches.EachRecord(func(r *kgo.Record) {
			switch {
			case string(r.Value) == sentinel:
				reached[r.Partition] = true
			case !reached[r.Partition]:
				out = append(out, r)
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Partition < out[j].Partition || out[i].Partition == out[j].Partition && out[i].Offset < out[j].Offset
	})
	return out
}

func values(records []*kgo.Record) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = string(r.Value)
	}
	return out
}

// stableAndEnd returns a partition's last stable offset (ListOffsets
// READ_COMMITTED latest) and high watermark.
func stableAndEnd(t *testing.T, adm *kadm.Client, topic string, partition int32) (int64, int64) {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListOffsets READ_COMMITTED: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListOffsets: %v", err)
	}
	lso, _ := stable.Lookup(topic, partition)
	end, _ := ends.Lookup(topic, partition)
	if lso.Err != nil || end.Err != nil {
		t.Fatalf("ListOffsets %s-%d: %v / %v", topic, partition, lso.Err, end.Err)
	}
	return lso.Offset, end.Offset
}

func isFencing(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// ---------------------------------------------------------------------------
// The consume-transform-produce chain: franz-go GroupTransactSession
// members read the input topic and write one output record per input
// record, "<input partition>/<input offset>|<member>#<transaction>", to the
// same partition of the output topic, in a transaction with the group's
// offsets.

type eosChain struct {
	t      *testing.T
	seeds  []string
	group  string
	in     string
	out    string
	batch  int           // records per transaction at most
	work   time.Duration // time each transaction stays open after its records are produced
	log    *clientLog
	ctx    context.Context
	cancel context.CancelFunc

	committed atomic.Int64 // records in committed transactions
	// joining, when set, is a member the others wait for between
	// transactions until it has committed one, so that it takes part
	// however long its rebalance takes.
	joining atomic.Pointer[eosMember]
	mu      sync.Mutex // guards aborted and members
	aborted map[string]bool
	members []*eosMember
}

type eosMember struct {
	name      string
	committed atomic.Int64
	stop      chan struct{}
	done      chan struct{}
}

func newEOSChain(t *testing.T, seeds []string, in, out string, batch int, work time.Duration) *eosChain {
	ctx, cancel := context.WithCancel(context.Background())
	c := &eosChain{t: t, seeds: seeds, group: "eos-" + in, in: in, out: out, batch: batch, work: work,
		log: newClientLog(t, "eos chain"), ctx: ctx, cancel: cancel, aborted: map[string]bool{}}
	t.Cleanup(func() {
		// Members still running (the test failed early) stop with the
		// context; wait for them, boundedly, before the brokers go.
		cancel()
		c.mu.Lock()
		members := c.members
		c.mu.Unlock()
		for _, m := range members {
			select {
			case <-m.done:
			case <-time.After(30 * time.Second):
				t.Logf("member %s did not stop within 30s", m.name)
			}
		}
	})
	return c
}

// start adds a member to the group.
func (c *eosChain) start(name string) *eosMember { return c.add(name, false) }

// startJoining adds a member that the others wait for, between
// transactions, until it has committed a transaction.
func (c *eosChain) startJoining(name string) *eosMember { return c.add(name, true) }

func (c *eosChain) add(name string, joining bool) *eosMember {
	m := &eosMember{name: name, stop: make(chan struct{}), done: make(chan struct{})}
	if joining {
		c.joining.Store(m)
	}
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	go c.run(m)
	return m
}

// leave stops a member between two transactions; it leaves the group.
func (m *eosMember) leave() {
	close(m.stop)
	<-m.done
}

// run keeps a session for the member: a session that fails (fenced, or a
// transaction whose end failed) is closed and a new one started with the
// same transactional id, as an application restarts its processor.
func (c *eosChain) run(m *eosMember) {
	defer close(m.done)
	seq := 0
	for {
		sess, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(c.seeds...),
			kgo.TransactionalID(c.group+"-"+m.name),
			kgo.TransactionTimeout(20*time.Second),
			kgo.ConsumerGroup(c.group),
			kgo.ConsumeTopics(c.in),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RequireStableFetchOffsets(),
			kgo.SessionTimeout(6*time.Second),
			kgo.HeartbeatInterval(500*time.Millisecond),
			kgo.RebalanceTimeout(20*time.Second),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.WithLogger(kgo.BasicLogger(c.log, kgo.LogLevelInfo, func() string { return m.name + " " })),
		)
		if err != nil {
			c.log.Printf("%s: new session: %v", m.name, err)
			return
		}
		stopped := c.transact(sess, m, &seq)
		sess.Close()
		if stopped {
			return
		}
		select {
		case <-m.stop:
			return
		case <-c.ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// transact runs transactions until the member is stopped (true) or the
// session fails (false).
func (c *eosChain) transact(sess *kgo.GroupTransactSession, m *eosMember, seq *int) bool {
	for {
		select {
		case <-m.stop:
			return true
		case <-c.ctx.Done():
			return true
		default:
		}
		// Hold before polling, not after: GroupTransactSession's
		// revocation waits for what was polled to be ended, so a member
		// holding polled records would keep the joining member's
		// rebalance (and with it the hold) from ever finishing.
		c.waitForJoining(m)
		pollCtx, cancel := context.WithTimeout(c.ctx, time.Second)
		fetches := sess.PollRecords(pollCtx, c.batch)
		cancel()
		failed := false
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				c.log.Printf("%s: fetch %s-%d: %v", m.name, topic, p, err)
				failed = true
			}
		})
		if failed {
			return false
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			c.log.Printf("%s: begin: %v", m.name, err)
			return false
		}
		*seq++
		tag := fmt.Sprintf("%s#%d", m.name, *seq)
		fetches.EachRecord(func(r *kgo.Record) {
			sess.Produce(c.ctx, &kgo.Record{Topic: c.out, Partition: r.Partition, Key: r.Key,
				Value: fmt.Appendf(nil, "%d/%d|%s", r.Partition, r.Offset, tag)}, nil)
		})
		time.Sleep(c.work)
		endCtx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		committed, err := sess.End(endCtx, kgo.TryCommit)
		cancel()
		switch {
		case err != nil:
			// The outcome is unknown to the member; the checks do not
			// need it (exactly once is checked on the output).
			c.log.Printf("%s: end transaction %s: %v", m.name, tag, err)
			return false
		case committed:
			c.committed.Add(int64(fetches.NumRecords()))
			m.committed.Add(int64(fetches.NumRecords()))
		default:
			c.mu.Lock()
			c.aborted[tag] = true
			c.mu.Unlock()
		}
	}
}

// waitForJoining holds m, between two transactions, while another member
// is joining and has not committed a transaction yet (or until m or the
// chain stops).
func (c *eosChain) waitForJoining(m *eosMember) {
	for {
		j := c.joining.Load()
		if j == nil || j == m || j.committed.Load() > 0 {
			return
		}
		select {
		case <-m.stop:
			return
		case <-c.ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitUntil retries cond until it holds or the deadline passes.
func waitUntil(t *testing.T, deadline time.Time, what string, cond func() error) {
	t.Helper()
	eventually(t, max(time.Until(deadline), time.Second), what, cond)
}

// waitConsumed waits until the group's committed offsets reach the end of
// every input partition: every input record went through a committed
// transaction.
func (c *eosChain) waitConsumed(deadline time.Time) {
	c.t.Helper()
	adm := kadm.NewClient(newClient(c.t, c.seeds[0], kgo.SeedBrokers(c.seeds...)))
	waitUntil(c.t, deadline, "the group's committed offsets reaching the end of the input", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, c.in)
		if err != nil {
			return err
		}
		// As the members read them: a transactional commit still pending
		// is UNSTABLE_OFFSET_COMMIT.
		committed, err := adm.FetchOffsets(kadm.RequireStable(ctx), c.group)
		if err != nil {
			return err
		}
		var behind []string
		ends.Each(func(end kadm.ListedOffset) {
			o, ok := committed.Lookup(c.in, end.Partition)
			switch {
			case ok && o.Err != nil:
				behind = append(behind, fmt.Sprintf("%d: %v", end.Partition, o.Err))
			case !ok || o.At != end.Offset:
				behind = append(behind, fmt.Sprintf("%d: committed %d of %d", end.Partition, o.At, end.Offset))
			}
		})
		if len(behind) > 0 {
			return fmt.Errorf("partitions behind: %s (records in committed transactions so far: %d)", strings.Join(behind, ", "), c.committed.Load())
		}
		return nil
	})
}

// tailer reads a topic with read_committed while the chain runs, keeping
// every value it was shown.
type tailer struct {
	cancel context.CancelFunc
	done   chan struct{}
	seen   map[string]int
}

func startTail(t *testing.T, seeds []string, topic string, partitions int32) *tailer {
	assign := map[int32]kgo.Offset{}
	for p := range partitions {
		assign[p] = kgo.NewOffset().AtStart()
	}
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tailer{cancel: cancel, done: make(chan struct{}), seen: map[string]int{}}
	go func() {
		defer close(tl.done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { tl.seen[string(r.Value)]++ })
		}
	}()
	t.Cleanup(tl.stop)
	return tl
}

func (tl *tailer) stop() {
	tl.cancel()
	<-tl.done
}

// verifyExactlyOnce reads the output with read_committed and checks it
// holds exactly one record per input record, none from a transaction that
// ended in an abort, and everything the tailer saw during the run.
func (c *eosChain) verifyExactlyOnce(partitions int32, tail *tailer) {
	t := c.t
	t.Helper()
	tail.stop()
	adm := kadm.NewClient(newClient(t, c.seeds[0], kgo.SeedBrokers(c.seeds...)))
	ends, err := adm.ListEndOffsets(testContext(t, 10*time.Second), c.in)
	if err != nil {
		t.Fatal(err)
	}
	// written: input record "p/o" → where its output records are, as
	// "offset p/o (member#transaction)".
	written := map[string][]string{}
	ends.Each(func(end kadm.ListedOffset) {
		for o := int64(0); o < end.Offset; o++ {
			written[fmt.Sprintf("%d/%d", end.Partition, o)] = nil
		}
	})
	sentinel := appendSentinels(t, c.seeds, c.out, partitions)
	output := readUntilSentinels(t, c.seeds, c.out, partitions, sentinel, kgo.ReadCommitted())
	final := map[string]bool{}
	var problems []string
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range output {
		v := string(r.Value)
		final[v] = true
		source, tag, ok := strings.Cut(v, "|")
		if _, known := written[source]; !ok || !known {
			problems = append(problems, fmt.Sprintf("offset %d/%d: %q is no input record (a control record surfaced?)", r.Partition, r.Offset, v))
			continue
		}
		written[source] = append(written[source], fmt.Sprintf("offset %d/%d (%s)", r.Partition, r.Offset, tag))
		if c.aborted[tag] {
			problems = append(problems, fmt.Sprintf("offset %d/%d: %q is from transaction %s, which ended in an abort", r.Partition, r.Offset, v, tag))
		}
		if !strings.HasPrefix(source, strconv.Itoa(int(r.Partition))+"/") {
			problems = append(problems, fmt.Sprintf("offset %d/%d: %q was written to partition %d", r.Partition, r.Offset, v, r.Partition))
		}
	}
	sources := make([]string, 0, len(written))
	for source := range written {
		sources = append(sources, source)
	}
	sort.Strings(sources)
	missing, duplicated := 0, 0
	for _, source := range sources {
		switch at := written[source]; {
		case len(at) == 0:
			missing++
			if missing <= 5 {
				problems = append(problems, fmt.Sprintf("input %s: no output record", source))
			}
		case len(at) > 1:
			duplicated++
			if duplicated <= 5 {
				problems = append(problems, fmt.Sprintf("input %s: %d output records: %s", source, len(at), strings.Join(at, ", ")))
			}
		}
	}
	var unseen []string
	for v := range tail.seen {
		if !final[v] {
			unseen = append(unseen, v)
		}
	}
	sort.Strings(unseen)
	for i, v := range unseen {
		if i == 5 {
			problems = append(problems, fmt.Sprintf("... and %d more records read_committed showed during the run", len(unseen)-5))
			break
		}
		_, tag, _ := strings.Cut(v, "|")
		outcome := "an outcome the member does not know"
		if c.aborted[tag] {
			outcome = "an abort"
		}
		problems = append(problems, fmt.Sprintf("read_committed showed %q during the run, but it is not in the committed output (its transaction ended in %s)", v, outcome))
	}
	if len(problems) > 0 {
		t.Fatalf("output of %d input records: %d missing, %d duplicated (%d records read, %d transactions aborted):\n%s",
			len(written), missing, duplicated, len(output), len(c.aborted), strings.Join(problems, "\n"))
	}
	t.Logf("%d input records, each exactly once in the output; %d transactions aborted; the read_committed tail saw %d records", len(written), len(c.aborted), len(tail.seen))
}

// produceInput writes records from..to-1 with keys to topic (idempotent,
// acks=all).
func produceInput(t *testing.T, seeds []string, topic string, from, to int) {
	t.Helper()
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%05d", i), Value: fmt.Appendf(nil, "v%05d", i)})
	}
	if err := cl.ProduceSync(testContext(t, time.Minute), recs...).FirstErr(); err != nil {
		t.Fatalf("produce the input: %v", err)
	}
}

// TestTransactionsFranzGoEOS: a consume-transform-produce chain of
// franz-go GroupTransactSession members on a 3-node cluster (RF=3); a third
// member joins after a third of the input and the first leaves after two
// thirds, forcing two rebalances mid-run. Every input record is in the
// output exactly once for read_committed, no record of an aborted
// transaction is visible, and every member committed work.
func TestTransactionsFranzGoEOS(t *testing.T) {
	c := startTxnCluster(t)
	seeds := c.seeds()
	requireTransactions(t, seeds...)
	testTransactionsEOS(t, seeds, func(topic string, partitions int32) { createReplicatedTopic(t, c, topic, partitions) })
}

// testTransactionsEOS runs the chain with its rebalances against seeds;
// create makes a topic.
func testTransactionsEOS(t *testing.T, seeds []string, create func(topic string, partitions int32)) {
	const partitions, records = 6, 1200
	in, out := uniqueTopic(t)+"-in", uniqueTopic(t)+"-out"
	create(in, partitions)
	create(out, partitions)
	// Two thirds of the input first; the rest once the joining member
	// is started, so that its partitions, whichever they are, hold
	// records no other member has read.
	produceInput(t, seeds, in, 0, 2*records/3)

	chain := newEOSChain(t, seeds, in, out, 20, 100*time.Millisecond)
	tail := startTail(t, seeds, out, partitions)
	deadline := time.Now().Add(2 * time.Minute)
	a, b := chain.start("a"), chain.start("b")
	waitUntil(t, deadline, "a third of the input processed", func() error {
		if n := chain.committed.Load(); n < records/3 {
			return fmt.Errorf("%d records committed", n)
		}
		return nil
	})
	// The others hold (between transactions) until c has committed a
	// transaction: on a loaded machine its rebalance can take longer than
	// they need for the rest of the input, and the partitions it gets
	// may be ones they have already read to the end (a and b hold before
	// polling, so the last third waits for c's partitions).
	third := chain.startJoining("c")
	produceInput(t, seeds, in, 2*records/3, records)
	waitUntil(t, deadline, "the joining member committing, two thirds processed", func() error {
		if n := third.committed.Load(); n == 0 || chain.committed.Load() < 2*records/3 {
			return fmt.Errorf("member c committed %d records; %d in all", n, chain.committed.Load())
		}
		return nil
	})
	a.leave()
	chain.waitConsumed(deadline)
	b.leave()
	third.leave()
	for _, m := range []*eosMember{a, b, third} {
		if m.committed.Load() == 0 {
			t.Errorf("member %s committed no transaction", m.name)
		}
	}
	chain.verifyExactlyOnce(partitions, tail)
}

// ---------------------------------------------------------------------------

const confluentTxnScript = `
import sys, json, time
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaError
addr, topic, txn_id, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
p = Producer({"bootstrap.servers": addr, "transactional.id": txn_id, "transaction.timeout.ms": 30000, "linger.ms": 5})
p.init_transactions(30)
p.begin_transaction()
for i in range(n):
    p.produce(topic, key=("k%d" % i).encode(), value=("committed-%d" % i).encode(), partition=i % 2)
p.commit_transaction(30)
p.begin_transaction()
for i in range(n):
    p.produce(topic, key=("k%d" % i).encode(), value=("aborted-%d" % i).encode(), partition=i % 2)
p.flush(30)  # the aborted records are in the log before the abort
p.abort_transaction(30)

def read(level):
    c = Consumer({"bootstrap.servers": addr, "group.id": "e2e-txn-" + level, "enable.auto.commit": False,
                  "isolation.level": level, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    got, eof = [], set()
    deadline = time.time() + 60
    while len(eof) < 2 and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                continue
            print("consume error (%s): %s" % (level, m.error()), file=sys.stderr)
            sys.exit(1)
        got.append([m.partition(), m.offset(), m.value().decode()])
    c.close()
    if len(eof) < 2:
        print("%s: reached the end of only partitions %s" % (level, sorted(eof)), file=sys.stderr)
        sys.exit(1)
    return got

print(json.dumps({"read_committed": read("read_committed"), "read_uncommitted": read("read_uncommitted")}))
`

// commitAbortLayout is what a reader of a two-partition topic should get,
// as "partition offset value" lines, after a producer committed n records
// committed-i and then aborted n records aborted-i, record i to partition
// i%2: partition p holds its committed records at offsets 0..n/2-1, the
// COMMIT marker at n/2, its aborted records at n/2+1..n and the ABORT
// marker at n+1; withAborted is a read_uncommitted reader.
func commitAbortLayout(n int, withAborted bool) []string {
	var want []string
	for p := range 2 {
		for j := range n / 2 {
			want = append(want, fmt.Sprintf("%d %d committed-%d", p, j, 2*j+p))
		}
		if withAborted {
			for j := range n / 2 {
				want = append(want, fmt.Sprintf("%d %d aborted-%d", p, n/2+1+j, 2*j+p))
			}
		}
	}
	return want
}

// TestTransactionsCommitAbortIsolation: a confluent-kafka-python
// (librdkafka) transactional producer commits one transaction and aborts
// another over two partitions of an RF=3 topic on a 3-node cluster; its
// read_committed consumer sees exactly the committed records, its
// read_uncommitted consumer both, at the offsets Kafka gives them (one
// marker per partition after each transaction), and no control record is
// ever surfaced. A sarama transactional producer's commit and abort are
// checked the same way with franz-go readers.
func TestTransactionsCommitAbortIsolation(t *testing.T) {
	requireTool(t, "/usr/bin/python3")
	c := startTxnCluster(t)
	seeds := c.seeds()
	requireTransactions(t, seeds...)

	t.Run("confluent-kafka-python", func(t *testing.T) {
		testConfluentCommitAbort(t, seeds, func(topic string, partitions int32) { createReplicatedTopic(t, c, topic, partitions) })
	})

	t.Run("sarama", func(t *testing.T) {
		testSaramaCommitAbort(t, seeds, func(topic string, partitions int32) { createReplicatedTopic(t, c, topic, partitions) })
	})
}

// testSaramaCommitAbort is the sarama case against seeds; create makes a
// topic.
func testSaramaCommitAbort(t *testing.T, seeds []string, create func(topic string, partitions int32)) {
	useSaramaLog(t)
	topic := uniqueTopic(t)
	create(topic, 2)
	cfg := saramaConfig(sarama.V3_6_0_0)
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Transaction.ID = "e2e-sarama-" + topic
	cfg.Producer.Transaction.Timeout = 30 * time.Second
	cfg.Net.MaxOpenRequests = 1
	ctx := testContext(t, 2*time.Minute)
	var producer sarama.SyncProducer
	within(t, ctx, "sarama NewSyncProducer (transactional)", func() (err error) {
		producer, err = sarama.NewSyncProducer(seeds, cfg)
		return err
	})
	defer producer.Close()
	const n = 20
	send := func(prefix string) {
		msgs := make([]*sarama.ProducerMessage, n)
		for i := range msgs {
			msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", prefix, i))}
		}
		within(t, ctx, "sarama SendMessages "+prefix, func() error { return producer.SendMessages(msgs) })
	}
	within(t, ctx, "sarama BeginTxn", producer.BeginTxn)
	send("committed")
	within(t, ctx, "sarama CommitTxn", producer.CommitTxn)
	within(t, ctx, "sarama BeginTxn", producer.BeginTxn)
	send("aborted")
	within(t, ctx, "sarama AbortTxn", producer.AbortTxn)

	sentinel := appendSentinels(t, seeds, topic, 2)
	for _, level := range []struct {
		name        string
		level       kgo.IsolationLevel
		withAborted bool
	}{{"read_committed", kgo.ReadCommitted(), false}, {"read_uncommitted", kgo.ReadUncommitted(), true}} {
		var lines []string
		for _, r := range readUntilSentinels(t, seeds, topic, 2, sentinel, level.level) {
			lines = append(lines, fmt.Sprintf("%d %d %s", r.Partition, r.Offset, r.Value))
		}
		if want := commitAbortLayout(n, level.withAborted); strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s reader got:\n%s\nwant:\n%s", level.name, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	}
}

// testConfluentCommitAbort is the confluent-kafka-python case against
// seeds; create makes a topic.
func testConfluentCommitAbort(t *testing.T, seeds []string, create func(topic string, partitions int32)) {
	topic := uniqueTopic(t)
	create(topic, 2)
	path := filepath.Join(t.TempDir(), "txn.py")
	if err := os.WriteFile(path, []byte(confluentTxnScript), 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 20 // per transaction, alternating partitions
	out := runCmd(t, nil, 150*time.Second, "/usr/bin/python3", path, strings.Join(seeds, ","), topic, "e2e-"+topic, strconv.Itoa(n))
	var got map[string][][3]any
	if err := jsonUnmarshal(out, &got); err != nil {
		t.Fatalf("client output: %v\n%s", err, out)
	}
	for level, withAborted := range map[string]bool{"read_committed": false, "read_uncommitted": true} {
		var lines []string
		for _, r := range got[level] {
			lines = append(lines, fmt.Sprintf("%v %v %v", r[0], r[1], r[2]))
		}
		sort.SliceStable(lines, func(i, j int) bool { return lines[i][0] < lines[j][0] }) // by partition, offsets in order
		if want := commitAbortLayout(n, withAborted); strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s consumer got:\n%s\nwant:\n%s", level, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	}
	adm := kadm.NewClient(newClient(t, seeds[0], kgo.SeedBrokers(seeds...)))
	for p := range int32(2) {
		if lso, end := stableAndEnd(t, adm, topic, p); lso != n+2 || end != n+2 {
			t.Fatalf("partition %d: last stable offset %d, high watermark %d; want both %d (records and two markers)", p, lso, end, n+2)
		}
	}
}

// TestTransactionsZombieFenced: two franz-go producers with one
// transactional id. The second's InitProducerId fences the first: the
// first's commit fails with a fencing error and its open transaction is
// aborted; then, with the roles repeated, a fenced producer's produce to a
// partition already in its transaction fails the same way. read_committed
// shows only the successors' records.
func TestTransactionsZombieFenced(t *testing.T) {
	b := startBroker(t)
	requireTransactions(t, b.addr)
	testTransactionsZombieFenced(t, b.addr)
}

func testTransactionsZombieFenced(t *testing.T, addr string) {
	topic := uniqueTopic(t)
	createTopic(t, addr, topic, 1, nil)
	id := "zombie-" + topic
	ctx := testContext(t, time.Minute)
	producer := func() *kgo.Client {
		return newClient(t, addr, kgo.TransactionalID(id), kgo.TransactionTimeout(time.Minute), kgo.DefaultProduceTopic(topic),
			kgo.RecordDeliveryTimeout(20*time.Second))
	}
	begin := func(cl *kgo.Client, value string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", value, err)
		}
	}
	commit := func(cl *kgo.Client) {
		t.Helper()
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}

	// The zombie's commit is fenced.
	zombie := producer()
	begin(zombie, "zombie-1")
	successor := producer()
	begin(successor, "successor-1")
	commit(successor)
	if err := zombie.EndTransaction(ctx, kgo.TryCommit); !isFencing(err) {
		t.Fatalf("the fenced producer's commit: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}

	// The successor, in turn a zombie, is fenced on produce.
	begin(successor, "successor-2")
	third := producer()
	begin(third, "third-1")
	commit(third)
	if err := successor.ProduceSync(ctx, &kgo.Record{Value: []byte("successor-3")}).FirstErr(); !isFencing(err) {
		t.Fatalf("the fenced producer's produce: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if err := successor.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the fenced producer committed")
	}

	sentinel := appendSentinels(t, []string{addr}, topic, 1)
	if got := values(readUntilSentinels(t, []string{addr}, topic, 1, sentinel, kgo.ReadCommitted())); strings.Join(got, ",") != "successor-1,third-1" {
		t.Fatalf("read_committed: %v, want [successor-1 third-1]", got)
	}
	// The fenced transactions' records were written, then aborted; the
	// refused produce never reached the log.
	if got := values(readUntilSentinels(t, []string{addr}, topic, 1, sentinel, kgo.ReadUncommitted())); strings.Join(got, ",") != "zombie-1,successor-1,successor-2,third-1" {
		t.Fatalf("read_uncommitted: %v, want [zombie-1 successor-1 successor-2 third-1]", got)
	}
}

// TestTransactionsTimeoutAborts: a producer with a 2 s transaction timeout
// produces and stalls. The last stable offset stays at its first offset
// meanwhile; then the coordinator aborts it with an epoch bump: the
// producer's commit is fenced, read_committed never shows its records, and
// the last stable offset reaches the end of the log.
func TestTransactionsTimeoutAborts(t *testing.T) {
	b := startBroker(t, "--transaction-abort-timed-out-transaction-cleanup-interval-ms", "200")
	requireTransactions(t, b.addr)
	testTransactionsTimeoutAborts(t, b.addr)
}

func testTransactionsTimeoutAborts(t *testing.T, addr string) {
	topic := uniqueTopic(t)
	createTopic(t, addr, topic, 1, nil)
	ctx := testContext(t, time.Minute)
	id := "stalled-" + topic
	stalled := newClient(t, addr, kgo.TransactionalID(id), kgo.TransactionTimeout(2*time.Second), kgo.DefaultProduceTopic(topic))
	plain := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	adm := kadm.NewClient(plain)
	if err := stalled.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := stalled.ProduceSync(ctx, &kgo.Record{Value: []byte("stalled-1")}, &kgo.Record{Value: []byte("stalled-2")}).FirstErr(); err != nil {
		t.Fatalf("produce in the transaction: %v", err)
	}
	described, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		t.Fatalf("DescribeTransactions: %v", err)
	}
	open, err := described.On(id, nil)
	if err != nil || open.Err != nil || open.State != "Ongoing" || open.TimeoutMillis != 2000 {
		t.Fatalf("the open transaction: %+v %v", open, err)
	}
	produceSync(t, plain, topic, 0, "after-1")
	if lso, end := stableAndEnd(t, adm, topic, 0); lso != 0 || end != 3 {
		t.Fatalf("with the transaction open: last stable offset %d, high watermark %d; want 0 and 3", lso, end)
	}
	eventually(t, 20*time.Second, "the coordinator aborting the timed-out transaction", func() error {
		described, err := adm.DescribeTransactions(ctx, id)
		if err != nil {
			return err
		}
		d, err := described.On(id, nil)
		if err == nil {
			err = d.Err
		}
		if err != nil {
			return err
		}
		// Kafka shows CompleteAbort until the next transaction; Empty
		// (the transaction over) is as good to a user: whether it was
		// aborted, not committed, is what the reads below check.
		if d.State != "CompleteAbort" && d.State != "Empty" || d.ProducerEpoch <= open.ProducerEpoch {
			return fmt.Errorf("state %s, producer epoch %d (was %d)", d.State, d.ProducerEpoch, open.ProducerEpoch)
		}
		return nil
	})
	// stalled-1, stalled-2, after-1, the ABORT marker.
	eventually(t, 10*time.Second, "the last stable offset reaching the end", func() error {
		if lso, end := stableAndEnd(t, adm, topic, 0); lso != 4 || end != 4 {
			return fmt.Errorf("last stable offset %d, high watermark %d; want 4", lso, end)
		}
		return nil
	})
	if err := stalled.EndTransaction(ctx, kgo.TryCommit); !isFencing(err) {
		t.Fatalf("commit after the timeout: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	sentinel := appendSentinels(t, []string{addr}, topic, 1)
	if got := values(readUntilSentinels(t, []string{addr}, topic, 1, sentinel, kgo.ReadCommitted())); strings.Join(got, ",") != "after-1" {
		t.Fatalf("read_committed: %v, want [after-1]", got)
	}
}

// TestTransactionsAbortCLI: a transaction begun with a 10-minute timeout
// and never ended holds read_committed readers back; `strata transactions
// list` and `describe` show it, `abort` by start offset (KIP-664) ends it
// with an ABORT marker, and read_committed readers get past it.
func TestTransactionsAbortCLI(t *testing.T) {
	b := startBroker(t)
	requireTransactions(t, b.addr)
	testTransactionsAbortCLI(t, b.addr)
}

func testTransactionsAbortCLI(t *testing.T, addr string) {
	topic := uniqueTopic(t)
	createTopic(t, addr, topic, 1, nil)
	ctx := testContext(t, time.Minute)
	plain := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	adm := kadm.NewClient(plain)
	produceSync(t, plain, topic, 0, "before")
	id := "hanging-" + topic
	hanging := newClient(t, addr, kgo.TransactionalID(id), kgo.TransactionTimeout(10*time.Minute), kgo.DefaultProduceTopic(topic))
	if err := hanging.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := hanging.ProduceSync(ctx, &kgo.Record{Value: []byte("hanging-1")}, &kgo.Record{Value: []byte("hanging-2")}).FirstErr(); err != nil {
		t.Fatalf("produce in the transaction: %v", err)
	}
	produceSync(t, plain, topic, 0, "after")
	if lso, end := stableAndEnd(t, adm, topic, 0); lso != 1 || end != 4 {
		t.Fatalf("with the transaction open: last stable offset %d, high watermark %d; want 1 and 4", lso, end)
	}

	cli := func(want int, args ...string) string {
		return strataCLI(t, want, append(args, "--bootstrap-server", addr)...)
	}
	var listed []struct {
		TransactionalID string `json:"transactional_id"`
		ProducerID      int64  `json:"producer_id"`
		State           string `json:"state"`
	}
	if err := jsonUnmarshal([]byte(cli(0, "transactions", "list", "--state", "Ongoing", "--output", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].TransactionalID != id || listed[0].State != "Ongoing" {
		t.Fatalf("transactions list --state Ongoing: %+v", listed)
	}
	var described struct {
		State      string `json:"state"`
		ProducerID int64  `json:"producer_id"`
		TimeoutMs  int32  `json:"timeout_ms"`
		Partitions []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
		} `json:"partitions"`
	}
	if err := jsonUnmarshal([]byte(cli(0, "transactions", "describe", "--transactional-id", id, "--output", "json")), &described); err != nil {
		t.Fatal(err)
	}
	if described.State != "Ongoing" || described.ProducerID != listed[0].ProducerID || described.TimeoutMs != 600000 ||
		len(described.Partitions) != 1 || described.Partitions[0].Topic != topic || described.Partitions[0].Partition != 0 {
		t.Fatalf("transactions describe: %+v", described)
	}
	if out := cli(0, "transactions", "describe", "--transactional-id", id); !strings.Contains(out, topic+"-0") || !strings.Contains(out, "Ongoing") {
		t.Fatalf("transactions describe (table):\n%s", out)
	}

	cli(1, "transactions", "abort", "--topic", topic, "--partition", "0", "--start-offset", "0") // no transaction starts there
	out := cli(0, "transactions", "abort", "--topic", topic, "--partition", "0", "--start-offset", "1")
	if !strings.Contains(out, fmt.Sprintf("producer %d", listed[0].ProducerID)) {
		t.Fatalf("abort: %s", out)
	}
	// before, hanging-1, hanging-2, after, the ABORT marker.
	if lso, end := stableAndEnd(t, adm, topic, 0); lso != 5 || end != 5 {
		t.Fatalf("after the abort: last stable offset %d, high watermark %d; want 5", lso, end)
	}
	producers, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	producers.EachProducer(func(p kadm.DescribedProducer) {
		if p.CurrentTxnStartOffset >= 0 {
			t.Errorf("DescribeProducers after the abort: producer %d still has a transaction open from offset %d", p.ProducerID, p.CurrentTxnStartOffset)
		}
	})
	cli(1, "transactions", "abort", "--topic", topic, "--partition", "0", "--start-offset", "1") // nothing open any more
	sentinel := appendSentinels(t, []string{addr}, topic, 1)
	if got := values(readUntilSentinels(t, []string{addr}, topic, 1, sentinel, kgo.ReadCommitted())); strings.Join(got, ",") != "before,after" {
		t.Fatalf("read_committed after the abort: %v, want [before after]", got)
	}
}

// ---------------------------------------------------------------------------

// lsoSampler checks, every 100 ms, that ListOffsets READ_COMMITTED latest
// of each partition never exceeds the first offset of a transaction that
// DescribeProducers reports open there. ListOffsets goes first: a
// transaction open at the second request and started after the first
// begins at or above the first's answer, so only a real violation fails.
type lsoSampler struct {
	cancel     context.CancelFunc
	done       chan struct{}
	samples    int
	openSeen   int
	failures   int
	violations []string
}

func startLSOSampler(t *testing.T, seeds []string, topic string, partitions int32) *lsoSampler {
	adm := kadm.NewClient(newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.RetryTimeout(time.Second)))
	ctx, cancel := context.WithCancel(context.Background())
	s := &lsoSampler{cancel: cancel, done: make(chan struct{})}
	set := kadm.TopicsSet{}
	for p := range partitions {
		set.Add(topic, p)
	}
	go func() {
		defer close(s.done)
		ticker := time.NewTicker(100 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			reqCtx, cancelReq := context.WithTimeout(ctx, 2*time.Second)
			stable, err := adm.ListCommittedOffsets(reqCtx, topic)
			var producers kadm.DescribedProducersTopics
			if err == nil {
				producers, err = adm.DescribeProducers(reqCtx, set)
			}
			cancelReq()
			if err != nil && producers == nil {
				s.failures++
				continue
			}
			s.samples++
			for p := range partitions {
				lso, ok := stable.Lookup(topic, p)
				described, found := producers[topic].Partitions[p]
				if !ok || lso.Err != nil || !found || described.Err != nil {
					continue
				}
				for _, producer := range described.ActiveProducers.Sorted() {
					if producer.CurrentTxnStartOffset < 0 {
						continue
					}
					s.openSeen++
					if lso.Offset > producer.CurrentTxnStartOffset && len(s.violations) < 20 {
						s.violations = append(s.violations, fmt.Sprintf("%s %s-%d: READ_COMMITTED latest %d > first offset %d of producer %d's open transaction",
							time.Now().Format("15:04:05.000"), topic, p, lso.Offset, producer.CurrentTxnStartOffset, producer.ProducerID))
					}
				}
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *lsoSampler) stop() {
	s.cancel()
	<-s.done
}

// TestTransactionsUnderKills: the exactly-once chain (three members) on a
// 3-node cluster (RF=3, min.insync.replicas=2) while three brokers are
// killed with kill -9 and restarted, one at a time: the transaction
// coordinator of a member, the leader of an output partition, the leader
// of an input partition. The output holds every input record exactly once,
// read_committed never showed a record of an aborted transaction, and,
// sampled every 100 ms, the last stable offset never passed an open
// transaction. Bounded to 3 minutes.
func TestTransactionsUnderKills(t *testing.T) {
	started := time.Now()
	deadline := started.Add(3 * time.Minute)
	c := startTxnCluster(t)
	seeds := c.seeds()
	requireTransactions(t, seeds...)
	const partitions, records = 6, 2000
	in, out := uniqueTopic(t)+"-in", uniqueTopic(t)+"-out"
	createReplicatedTopic(t, c, in, partitions)
	createReplicatedTopic(t, c, out, partitions)
	produceInput(t, seeds, in, 0, records)

	// At most 75 records/s (3 members, 10 records per transaction, each
	// open 400 ms), so the kills land while the chain runs.
	chain := newEOSChain(t, seeds, in, out, 10, 400*time.Millisecond)
	tail := startTail(t, seeds, out, partitions)
	sampler := startLSOSampler(t, seeds, out, partitions)
	members := []*eosMember{chain.start("a"), chain.start("b"), chain.start("c")}
	adm := c.admin()
	leaderOf := func(topic string, partition int32) int32 {
		var leader int32 = -1
		waitUntil(t, deadline, fmt.Sprintf("a leader for %s-%d", topic, partition), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m, err := adm.Metadata(ctx, topic)
			if err != nil {
				return err
			}
			if leader = m.Topics[topic].Partitions[partition].Leader; c.nodes[leader] == nil {
				return fmt.Errorf("leader %d", leader)
			}
			return nil
		})
		return leader
	}
	victims := []struct {
		what string
		pick func() int32
	}{
		{"the transaction coordinator of member a", func() int32 {
			var node int32 = -1
			id := chain.group + "-a"
			waitUntil(t, deadline, "the transaction coordinator of "+id, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				r := adm.FindTxnCoordinators(ctx, id)[id]
				node = r.NodeID
				if r.Err != nil || c.nodes[node] == nil {
					return fmt.Errorf("node %d: %v", node, r.Err)
				}
				return nil
			})
			return node
		}},
		{"the leader of output partition 0", func() int32 { return leaderOf(out, 0) }},
		{"the leader of input partition 1", func() int32 { return leaderOf(in, 1) }},
	}
	for i, victim := range victims {
		share := 15 + 25*i // percent of the input processed before this kill
		waitUntil(t, deadline, fmt.Sprintf("%d%% of the input processed before kill %d", share, i+1), func() error {
			if n := chain.committed.Load(); n < int64(records*share/100) {
				return fmt.Errorf("%d records committed", n)
			}
			return nil
		})
		node := victim.pick()
		t.Logf("%v: kill -9 node %d, %s (%d records committed)", time.Since(started).Round(time.Millisecond), node, victim.what, chain.committed.Load())
		c.nodes[node].kill()
		time.Sleep(3 * time.Second) // fenced after 1.5 s; its leaderships move while the chain runs
		c.nodes[node].restart(t)
		waitFullISR(t, c, deadline, in, out, "__transaction_state", "__consumer_offsets")
	}
	chain.waitConsumed(deadline)
	for _, m := range members {
		m.leave()
	}
	sampler.stop()
	t.Logf("%v: chain done; LSO sampler: %d samples, %d open transactions seen, %d failed samples", time.Since(started).Round(time.Millisecond), sampler.samples, sampler.openSeen, sampler.failures)
	if len(sampler.violations) > 0 {
		t.Errorf("the last stable offset passed open transactions:\n%s", strings.Join(sampler.violations, "\n"))
	}
	if sampler.openSeen == 0 {
		t.Errorf("the LSO sampler never saw an open transaction in %d samples: the check proved nothing", sampler.samples)
	}
	chain.verifyExactlyOnce(partitions, tail)
}
