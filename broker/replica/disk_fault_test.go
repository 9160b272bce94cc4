package replica

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/internal/ratelog"
	"github.com/strata-log/strata/internal/testclock"
	"github.com/strata-log/strata/metadata"
)

// The follower of these tests is broker 77, its leader broker 1.
const (
	followerID = 77
	leaderID   = 1
)

// testLeader serves a partition.Partition as a Kafka-protocol leader over
// loopback: kfake carries the connection, and Fetch and
// OffsetForLeaderEpoch are answered from the partition as the broker's
// handlers answer them — the follower's fetch position goes to
// FollowerFetchedAt, which checks its last fetched epoch (a divergent log
// is answered DivergingEpoch) and keeps the lag bookkeeping the ISR check
// reads.
type testLeader struct {
	part *partition.Partition
	addr string

	mu         sync.Mutex // guards the fields below
	fetches    int        // Fetch requests
	truncates  int        // OffsetForLeaderEpoch requests
	offsets    []int64    // fetch offsets, in order
	expansions [][]int32  // ISR expansions FollowerFetched proposed
	// synced is serveLeader's; fetch offsets past it are recorded in
	// unsynced.
	synced   func() int64
	unsynced []int64
	// diverging holds the DivergingEpoch answers, in order; beforeAnswer,
	// when set, runs as each fetch is received, before it is answered
	// (tests force interleavings there).
	diverging    []partition.EpochEnd
	beforeAnswer func()
}

// serveLeader serves part; synced, when not nil, is the follower's fsynced
// end for the check of every fetch offset.
func serveLeader(t *testing.T, part *partition.Partition, clock *testclock.Clock, synced func() int64) *testLeader {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	l := &testLeader{part: part, addr: cluster.ListenAddrs()[0], synced: synced}
	cluster.ControlKey(kmsg.Fetch.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.fetches++
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				l.offsets = append(l.offsets, rp.FetchOffset)
				if l.synced != nil && rp.FetchOffset > l.synced() {
					l.unsynced = append(l.unsynced, rp.FetchOffset)
				}
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				if l.beforeAnswer != nil {
					l.beforeAnswer()
				}
				expand, diverging, err := part.FollowerFetchedAt(followerID, partition.FetchPosition{Offset: rp.FetchOffset, LastFetchedEpoch: rp.LastFetchedEpoch}, -1, clock.Now())
				if expand != nil {
					l.expansions = append(l.expansions, expand)
					part.ISRChangeDone(partition.ISROutcome{Refused: true}) // the test applies assignments itself
				}
				switch {
				case diverging != nil:
					l.diverging = append(l.diverging, *diverging)
					sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = diverging.Epoch, diverging.EndOffset
				case errors.Is(err, segment.ErrOffsetOutOfRange):
					sp.ErrorCode = kerr.OffsetOutOfRange.Code
				case err == nil:
					sp.RecordBatches, err = part.Read(rp.FetchOffset, rp.PartitionMaxBytes, part.LogEndOffset(), true)
				}
				if err != nil && sp.ErrorCode == 0 {
					sp.ErrorCode = kerr.UnknownServerError.Code
				}
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = part.HighWatermark(), part.HighWatermark(), part.LogStartOffset()
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cluster.ControlKey(kmsg.OffsetForLeaderEpoch.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
		resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
		l.mu.Lock()
		l.truncates++
		l.mu.Unlock()
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetForLeaderEpochResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.LeaderEpoch, sp.EndOffset = part.EpochEndOffset(rp.LeaderEpoch)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return l
}

// requests counts the Fetch and OffsetForLeaderEpoch requests so far.
func (l *testLeader) requests() (fetches, truncates int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fetches, l.truncates
}

// followerFetcher is a fetcher of follower from l that fetches only when
// the test calls round (its run goroutine is not started), with clock; opts
// are its client's.
func followerFetcher(t *testing.T, l *testLeader, clock *testclock.Clock, limiter *ratelog.Limiter, follower *partition.Partition, epoch int32, opts ...kgo.Opt) (round func()) {
	t.Helper()
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(l.addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	f := NewFetchers(FetchersConfig{NodeID: followerID, Logger: slog.New(slog.DiscardHandler), LogLimiter: limiter, Now: clock.Now})
	t.Cleanup(f.Close)
	rf := &fetcher{f: f, leader: leaderKey{id: leaderID, address: l.addr}, client: client, partitions: map[*partition.Partition]*followed{}}
	topic := metadata.Topic{Name: "orders", ID: follower.TopicID()}
	rf.assign(map[*partition.Partition]*followed{follower: {part: follower, topic: topic, epoch: epoch}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return func() {
		t.Helper()
		if err := rf.fetchOnce(ctx, rf.snapshot()); err != nil {
			t.Fatal(err)
		}
	}
}

// openOnFillingDisk opens replica self of topic "orders" in a fresh
// directory on a disk that is full while full reads true: an append then
// writes half its bytes and fails with ENOSPC. It is closed when the test
// ends.
func openOnFillingDisk(t *testing.T, self int32, topicID [16]byte, logger *slog.Logger, full *atomic.Bool) *partition.Partition {
	t.Helper()
	p, err := partition.Open(partition.Config{Dir: t.TempDir(), Topic: "orders", TopicID: topicID, Self: self,
		Values: topicconfig.Typed(nil, nil), Logger: logger,
		SegmentWriteFault: func(size int) (int, error) {
			if full.Load() {
				return size / 2, syscall.ENOSPC
			}
			return 0, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// errorCounter counts the error records logged through it.
type errorCounter struct {
	errors atomic.Int32
}

func (c *errorCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *errorCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		c.errors.Add(1)
	}
	return nil
}
func (c *errorCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *errorCounter) WithGroup(string) slog.Handler      { return c }

// sameLog checks that follower holds the leader's records, byte for byte.
func sameLog(t *testing.T, leader, follower *partition.Partition) {
	t.Helper()
	end := leader.LogEndOffset()
	want, err := leader.Read(0, 1<<20, end, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := follower.Read(0, 1<<20, end, true)
	if err != nil {
		t.Fatal(err)
	}
	if follower.LogEndOffset() != end || !bytes.Equal(got, want) {
		t.Fatalf("follower log: end %d, %d bytes; want the leader's: end %d, %d bytes", follower.LogEndOffset(), len(got), end, len(want))
	}
}

// TestFollowerBacksOffOnAFullDisk: a follower whose appends fail on a
// full disk does not fetch again at once, round after round: over 1000
// fetch rounds 10 ms apart (10 s of its clock) it fetches a bounded number
// of times (backoff doubling from 50 ms up to 1 s: 14 fetches; before,
// 1000, each followed by an OffsetForLeaderEpoch), and its error line is
// rate-limited. Its fetch offset stands still meanwhile, so the leader's
// lag check drops it from the ISR (and the high watermark, held back by
// it, moves on); once the disk has space again it catches up with the
// leader's bytes at its next retry, and rejoins the ISR.
func TestFollowerBacksOffOnAFullDisk(t *testing.T) {
	clock := testclock.New(t0)
	a := metadata.Partition{Replicas: []int32{leaderID, followerID}, Leader: leaderID, LeaderEpoch: 4, PartitionEpoch: 4, ISR: []int32{leaderID, followerID}}
	leaderPart := openReplica(t, leaderID)
	leaderPart.ApplyAssignment(a, clock.Now())
	var full atomic.Bool
	logged := &errorCounter{}
	follower := openOnFillingDisk(t, followerID, leaderPart.TopicID(), slog.New(logged), &full)
	follower.ApplyAssignment(a, clock.Now())
	leader := serveLeader(t, leaderPart, clock, nil)
	limiter := ratelog.New(ratelog.Config{Burst: 3, Interval: time.Hour})
	t.Cleanup(limiter.Close)
	round := followerFetcher(t, leader, clock, limiter, follower, a.LeaderEpoch)

	committed := appendRecords(t, leaderPart, 3)
	round() // fetches 0..2
	round() // reports 3: committed
	if follower.LogEndOffset() != committed || leaderPart.HighWatermark() != committed {
		t.Fatalf("follower end %d, leader's high watermark %d; want %d", follower.LogEndOffset(), leaderPart.HighWatermark(), committed)
	}

	full.Store(true)
	end := appendRecords(t, leaderPart, 2)
	fetchesBefore, truncatesBefore := leader.requests()
	for range 1000 {
		round()
		clock.Advance(10 * time.Millisecond)
	}
	fetches, truncates := leader.requests()
	fetches, truncates = fetches-fetchesBefore, truncates-truncatesBefore
	if fetches < 2 || fetches > 20 || truncates > fetches {
		t.Fatalf("over 1000 rounds on a full disk: %d fetches, %d OffsetForLeaderEpoch; want a bounded backoff's 14 or so", fetches, truncates)
	}
	if n := logged.errors.Load(); n > 3 {
		t.Fatalf("%d error lines logged, want at most the limiter's burst of 3", n)
	}
	if follower.LogEndOffset() != committed || leaderPart.HighWatermark() != committed {
		t.Fatalf("on a full disk: follower end %d, leader's high watermark %d; want both %d", follower.LogEndOffset(), leaderPart.HighWatermark(), committed)
	}

	// The leader's lag check (replica.lag.time.max.ms 5 s) drops it.
	store := &fakeStore{}
	m := NewISR(ISRConfig{Store: store, Partitions: func() []*partition.Partition { return []*partition.Partition{leaderPart} },
		ReplicaLagTimeMax: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	m.CheckLagging(context.Background(), clock.Now())
	proposals := store.proposals()
	if len(proposals) != 1 || !slices.Equal(proposals[0].ISR, []int32{leaderID}) {
		t.Fatalf("lag check proposals %+v, want the ISR without the follower", proposals)
	}
	a.ISR, a.PartitionEpoch = []int32{leaderID}, 5
	leaderPart.ApplyAssignment(a, clock.Now())
	follower.ApplyAssignment(a, clock.Now())
	if leaderPart.HighWatermark() != end {
		t.Fatalf("high watermark %d once the follower left the ISR, want %d", leaderPart.HighWatermark(), end)
	}

	// Space again: the next retry (at most the 1 s cap away) catches up.
	full.Store(false)
	for i := 0; follower.LogEndOffset() < end; i++ {
		if i == 101 {
			t.Fatalf("follower at %d a second after the disk had space, want %d", follower.LogEndOffset(), end)
		}
		clock.Advance(10 * time.Millisecond)
		round()
	}
	sameLog(t, leaderPart, follower)
	// No backoff left: the next round fetches at once, reports the log
	// end, and the follower is proposed back into the ISR.
	fetchesBefore, _ = leader.requests()
	round()
	if fetches, _ := leader.requests(); fetches != fetchesBefore+1 {
		t.Fatalf("%d fetches in the round after a working append, want 1", fetches-fetchesBefore)
	}
	leader.mu.Lock()
	defer leader.mu.Unlock()
	if n := len(leader.expansions); n == 0 || !slices.Equal(leader.expansions[n-1], []int32{leaderID, followerID}) {
		t.Fatalf("ISR expansions %v, want the follower back", leader.expansions)
	}
}

// TestFollowerStopsFetchingAfterAFailedFsync: in durable mode a follower
// whose fsync fails never reports what it did not fsync (every fetch
// offset the leader receives is at most its fsynced end), and then stops
// fetching: a failed fsync fails its log until the broker restarts, so
// fetching could only fail again (before, it fetched every round, each
// time failing to append what the leader had, and, reporting its fsynced
// end, could even be taken back into the ISR). The leader's lag check
// drops it; the high watermark, held at what the follower fsynced, moves
// on. After a restart (the log reopened and recovered) it catches up,
// fsyncs, and rejoins the ISR.
func TestFollowerStopsFetchingAfterAFailedFsync(t *testing.T) {
	clock := testclock.New(t0)
	a := metadata.Partition{Replicas: []int32{leaderID, followerID}, Leader: leaderID, LeaderEpoch: 4, PartitionEpoch: 4, ISR: []int32{leaderID, followerID}}
	durable := topicconfig.Typed(nil, map[string]string{"flush.messages": "1"})
	leaderPart, err := partition.Open(partition.Config{Dir: t.TempDir(), Topic: "orders", TopicID: [16]byte{3}, Self: leaderID,
		Values: durable, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leaderPart.Close() })
	leaderPart.ApplyAssignment(a, clock.Now())
	var failing atomic.Bool
	dir := t.TempDir()
	openFollower := func() *partition.Partition {
		p, err := partition.Open(partition.Config{Dir: dir, Topic: "orders", TopicID: [16]byte{3}, Self: followerID,
			Values: durable, Logger: slog.New(slog.DiscardHandler),
			SegmentSyncFault: func() error {
				if failing.Load() {
					return syscall.EIO
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		p.ApplyAssignment(a, clock.Now())
		return p
	}
	follower := openFollower()
	var current atomic.Pointer[partition.Partition] // the follower the leader's checks read
	current.Store(follower)
	leader := serveLeader(t, leaderPart, clock, func() int64 { return current.Load().SyncedEnd() })
	limiter := ratelog.New(ratelog.Config{Interval: time.Hour})
	t.Cleanup(limiter.Close)
	round := followerFetcher(t, leader, clock, limiter, follower, a.LeaderEpoch)
	leaderAppend := func(n int) int64 {
		end := appendRecords(t, leaderPart, n)
		partition.WaitSynced([]*partition.Partition{leaderPart}, nil)
		return end
	}

	end := leaderAppend(3)
	// The follower starts its fsync when it appends (in the background),
	// so the fault is armed before the fetch that appends: armed after
	// it, the fsync could already have succeeded.
	failing.Store(true)
	round() // fetches 0..2; their fsync fails
	round() // reports 0
	if follower.LogFailed() == nil || follower.SyncedEnd() != 0 {
		t.Fatalf("after a failed fsync: log failed %v, fsynced %d; want failed, 0", follower.LogFailed(), follower.SyncedEnd())
	}
	end = leaderAppend(2)
	failing.Store(false) // fsyncs work again: the log stays failed
	fetchesBefore, truncatesBefore := leader.requests()
	for range 100 {
		clock.Advance(10 * time.Millisecond)
		round()
	}
	if fetches, truncates := leader.requests(); fetches != fetchesBefore || truncates != truncatesBefore {
		t.Fatalf("a follower with a failed log sent %d fetches and %d OffsetForLeaderEpoch in 100 rounds, want none", fetches-fetchesBefore, truncates-truncatesBefore)
	}
	if hw := leaderPart.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d while the follower that fsynced nothing is in the ISR, want 0", hw)
	}

	// The leader's lag check (replica.lag.time.max.ms 500 ms) drops it.
	store := &fakeStore{}
	m := NewISR(ISRConfig{Store: store, Partitions: func() []*partition.Partition { return []*partition.Partition{leaderPart} },
		ReplicaLagTimeMax: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	m.CheckLagging(context.Background(), clock.Now())
	if proposals := store.proposals(); len(proposals) != 1 || !slices.Equal(proposals[0].ISR, []int32{leaderID}) {
		t.Fatalf("lag check proposals %+v, want the ISR without the follower", proposals)
	}
	a.ISR, a.PartitionEpoch = []int32{leaderID}, 5
	leaderPart.ApplyAssignment(a, clock.Now())
	if leaderPart.HighWatermark() != end {
		t.Fatalf("high watermark %d once the follower left the ISR, want %d", leaderPart.HighWatermark(), end)
	}

	// A restart: the log reopened (recovered) takes the leader's data,
	// fsyncs it and reports it.
	follower.Close()
	follower = openFollower()
	current.Store(follower)
	t.Cleanup(func() { current.Load().Close() })
	round = followerFetcher(t, leader, clock, limiter, follower, a.LeaderEpoch)
	round() // agrees with the leader, fetches the rest
	round() // fsyncs, reports the end
	sameLog(t, leaderPart, follower)
	leader.mu.Lock()
	defer leader.mu.Unlock()
	if follower.SyncedEnd() != end || len(leader.unsynced) > 0 {
		t.Fatalf("fsynced %d, want %d; fetch offsets past the fsynced end: %v", follower.SyncedEnd(), end, leader.unsynced)
	}
	if n := len(leader.expansions); n == 0 || !slices.Equal(leader.expansions[n-1], []int32{leaderID, followerID}) {
		t.Fatalf("ISR expansions %v, want the follower back", leader.expansions)
	}
}
