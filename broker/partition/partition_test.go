package partition

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// Unit tests of the partition replica: no Raft, no network, a temp dir
// and explicit times.

var t0 = time.Unix(1_700_000_000, 0)

// replica opens a partition replica of broker self in dir with configs.
func replica(t *testing.T, dir string, self int32, configs map[string]string) *Partition {
	t.Helper()
	p, err := Open(Config{Dir: dir, Topic: "orders", TopicID: [16]byte{7}, Index: 0, Self: self,
		Values: topicconfig.Typed(nil, configs), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// assignment of partition 0 with replicas 1..n, leader, epoch and ISR.
func assignment(leader, epoch int32, replicas, isr []int32) metadata.Partition {
	return metadata.Partition{Index: 0, Replicas: replicas, Leader: leader, LeaderEpoch: epoch, ISR: isr, PartitionEpoch: epoch}
}

// batch builds one batch of n records with values "<tag>-i".
func batch(t *testing.T, opts recordbatch.BuildOptions, tag string, n int) []byte {
	t.Helper()
	records := make([]recordbatch.Record, n)
	for i := range records {
		records[i] = recordbatch.Record{Timestamp: t0.UnixMilli() + int64(i), Value: []byte(tag + "-" + string(rune('a'+i)))}
	}
	b, err := recordbatch.Build(opts, records)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func idempotent(producerID int64, epoch int16, sequence int32) recordbatch.BuildOptions {
	return recordbatch.BuildOptions{Idempotent: true, ProducerID: producerID, ProducerEpoch: epoch, BaseSequence: sequence}
}

func mustAppend(t *testing.T, p *Partition, b []byte) int64 {
	t.Helper()
	base, _, err := p.Append(b, 9, t0)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

func wantCode(t *testing.T, what string, err error, want *kerr.Error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != want.Code {
		t.Fatalf("%s: %v, want %s", what, err, want.Message)
	}
}

// headers parses the batches in data.
func headers(t *testing.T, data []byte) []recordbatch.Header {
	t.Helper()
	spans, err := recordbatch.Split(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []recordbatch.Header
	for _, sp := range spans {
		h, err := recordbatch.ParseHeader(data[sp.Position:])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// TestAppendAndRead: a leader alone in its ISR commits on append; batches
// are stamped with the leader epoch and read back whole; bad batches get
// their Kafka codes; a follower refuses produce.
func TestAppendAndRead(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	if _, _, err := p.Append(batch(t, recordbatch.BuildOptions{}, "x", 1), 9, t0); err == nil {
		t.Fatal("a replica with no assignment took an append")
	}
	p.ApplyAssignment(assignment(1, 3, []int32{1}, []int32{1}), t0)
	if !p.Leading() || p.LeaderEpoch() != 3 {
		t.Fatalf("leading %v epoch %d", p.Leading(), p.LeaderEpoch())
	}
	first := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 3))
	second := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 2))
	if first != 0 || second != 3 || p.LogEndOffset() != 5 || p.HighWatermark() != 5 {
		t.Fatalf("bases %d, %d; end %d, high watermark %d", first, second, p.LogEndOffset(), p.HighWatermark())
	}
	data, err := p.Read(0, 1<<20, p.HighWatermark(), true)
	if err != nil {
		t.Fatal(err)
	}
	hs := headers(t, data)
	if len(hs) != 2 || hs[0].BaseOffset != 0 || hs[1].BaseOffset != 3 || hs[0].PartitionLeaderEpoch != 3 || hs[1].PartitionLeaderEpoch != 3 {
		t.Fatalf("read back %+v", hs)
	}
	if done, code, _ := p.CommitStatus(5, 3); !done || code != 0 {
		t.Fatalf("alone in the ISR: committed %v, code %d", done, code)
	}
	if got, err := p.Read(0, 1, 3, true); err != nil || len(headers(t, got)) != 1 {
		t.Fatalf("KIP-74: the first batch whole even past maxBytes: %d bytes, %v", len(got), err)
	}

	wantCode(t, "two batches in one partition", appendErr(p, append(batch(t, recordbatch.BuildOptions{}, "c", 1), batch(t, recordbatch.BuildOptions{}, "d", 1)...), 9), kerr.InvalidRecord)
	corrupt := batch(t, recordbatch.BuildOptions{}, "e", 1)
	corrupt[len(corrupt)-1] ^= 0xff
	wantCode(t, "a batch whose CRC does not match", appendErr(p, corrupt, 9), kerr.CorruptMessage)
	wantCode(t, "zstd before Produce v7", appendErr(p, batch(t, recordbatch.BuildOptions{Codec: recordbatch.Zstd}, "f", 1), 6), kerr.UnsupportedCompressionType)
	wantCode(t, "a transactional batch without a producer id", appendErr(p, batch(t, recordbatch.BuildOptions{Transactional: true}, "g", 1), 9), kerr.InvalidRecord)
	if p.LogEndOffset() != 5 {
		t.Fatalf("refused batches changed the log end: %d", p.LogEndOffset())
	}

	p.ApplyAssignment(assignment(2, 4, []int32{1, 2}, []int32{2, 1}), t0)
	wantCode(t, "append on a follower", appendErr(p, batch(t, recordbatch.BuildOptions{}, "h", 1), 9), kerr.NotLeaderForPartition)
}

func appendErr(p *Partition, b []byte, version int16) error {
	_, _, err := p.Append(b, version, t0)
	return err
}

// TestLogAppendTimeAndLimits: message.timestamp.type=LogAppendTime stamps
// the broker's clock; max.message.bytes and segment.bytes bound a batch.
func TestLogAppendTimeAndLimits(t *testing.T) {
	p := replica(t, t.TempDir(), 1, map[string]string{"message.timestamp.type": "LogAppendTime", "max.message.bytes": "200"})
	p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	now := t0.Add(time.Hour)
	base, appendTime, err := p.Append(batch(t, recordbatch.BuildOptions{}, "a", 1), 9, now)
	if err != nil || appendTime != now.UnixMilli() {
		t.Fatalf("append time %d (%v), want %d", appendTime, err, now.UnixMilli())
	}
	offset, timestamp, _, err := p.OffsetForTimestamp(now.UnixMilli(), 0)
	if err != nil || offset != base || timestamp != now.UnixMilli() {
		t.Fatalf("offset for the append time: %d at %d (%v)", offset, timestamp, err)
	}
	wantCode(t, "a batch over max.message.bytes", appendErr(p, batch(t, recordbatch.BuildOptions{}, string(bytes.Repeat([]byte("z"), 300)), 1), 9), kerr.MessageTooLarge)
}

// TestOffsetForTimestamp: the special timestamps and a lookup, never past
// the high watermark, with the leader epoch Kafka answers: the current one
// for the latest, the one covering the log start, a found record's
// batch's.
func TestOffsetForTimestamp(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	p.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1}), t0)
	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 4))     // timestamps t0 .. t0+3 ms, epoch 2
	p.ApplyAssignment(assignment(1, 5, []int32{1, 2}, []int32{1}), t0) // epoch 5 from 4, nothing appended
	for _, c := range []struct {
		ts, offset, timestamp int64
		epoch                 int32
	}{
		{LatestTimestamp, 4, -1, 5},
		{EarliestTimestamp, 0, -1, 2},
		{EarliestLocalOffset, 0, -1, 2},
		{MaxTimestamp, 3, t0.UnixMilli() + 3, 2},
		{t0.UnixMilli() + 2, 2, t0.UnixMilli() + 2, 2},
		{t0.UnixMilli() + 99, -1, -1, -1},
		{-7, -1, -1, -1},
	} {
		offset, timestamp, epoch, err := p.OffsetForTimestamp(c.ts, 0)
		if err != nil || offset != c.offset || timestamp != c.timestamp || epoch != c.epoch {
			t.Errorf("OffsetForTimestamp(%d) = %d, %d, epoch %d, %v; want %d, %d, epoch %d", c.ts, offset, timestamp, epoch, err, c.offset, c.timestamp, c.epoch)
		}
	}
}

// TestIdempotentAppends: a producer's retried batch is answered with its
// first offset without appending; a sequence gap is refused; the state
// survives a restart (snapshot plus replay).
func TestIdempotentAppends(t *testing.T) {
	dir := t.TempDir()
	p := replica(t, dir, 1, nil)
	p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	b0 := batch(t, idempotent(42, 0, 0), "a", 2)
	b1 := batch(t, idempotent(42, 0, 2), "b", 2)
	if mustAppend(t, p, b0) != 0 || mustAppend(t, p, b1) != 2 {
		t.Fatal("offsets")
	}
	if again := mustAppend(t, p, batch(t, idempotent(42, 0, 2), "b", 2)); again != 2 || p.LogEndOffset() != 4 {
		t.Fatalf("retry answered %d, log end %d; want 2 and no append", again, p.LogEndOffset())
	}
	wantCode(t, "a sequence gap", appendErr(p, batch(t, idempotent(42, 0, 9), "c", 1), 9), kerr.OutOfOrderSequenceNumber)

	// A snapshot, then one more batch replayed from the log at open.
	p.Maintain(t0, Maintenance{ProducerIDExpiration: 24 * time.Hour, Snapshot: true})
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000004.snapshot")); err != nil {
		t.Fatalf("no producer snapshot at the log end: %v", err)
	}
	mustAppend(t, p, batch(t, idempotent(42, 0, 4), "d", 1))
	p.Close()
	reopened := replica(t, dir, 1, nil)
	if reopened.HighWatermark() != 5 {
		t.Fatalf("high watermark after restart %d, want 5: the checkpoint written at close", reopened.HighWatermark())
	}
	reopened.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	if again := mustAppend(t, reopened, batch(t, idempotent(42, 0, 4), "d", 1)); again != 4 || reopened.LogEndOffset() != 5 {
		t.Fatalf("after restart a retry answered %d, log end %d; want 4 and no append", again, reopened.LogEndOffset())
	}

	// ReplayProducers rebuilds the state of a range of the log.
	state := producer.NewState()
	if err := reopened.ReplayProducers(state, 0, 2); err != nil {
		t.Fatal(err)
	}
	if dup, err := state.Check(producer.BatchMeta{ProducerID: 42, FirstSeq: 0, LastSeq: 1}); err != nil || dup == nil {
		t.Fatalf("replayed range: first batch not a duplicate (%v, %v)", dup, err)
	}
	if dup, _ := state.Check(producer.BatchMeta{ProducerID: 42, FirstSeq: 2, LastSeq: 3}); dup != nil {
		t.Fatal("replay went past its end")
	}
}

// TestAcksAllWaitsForTheISR: the high watermark is the smallest log end in
// the ISR; an acks=all append commits once every in-sync follower has it,
// not before, and fails when the ISR shrinks below min.insync.replicas or
// leadership moves.
func TestAcksAllWaitsForTheISR(t *testing.T) {
	p := replica(t, t.TempDir(), 1, map[string]string{"min.insync.replicas": "2"})
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2, 3}, []int32{1, 2, 3}), t0)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 4)) + 4
	if done, code, _ := p.CommitStatus(end, 1); done || code != 0 {
		t.Fatalf("before any follower fetched: done %v code %d", done, code)
	}
	if code := p.WaitCommitted(end, 1, time.Millisecond); code != kerr.RequestTimedOut.Code {
		t.Fatalf("no follower: %d, want REQUEST_TIMED_OUT", code)
	}
	waited := make(chan []Outcome, 1)
	go func() {
		waited <- WaitAll([]Pending{{Partition: p, End: end, LeaderEpoch: 1}}, time.Now().Add(time.Hour), nil)
	}()
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermark() != 0 {
		t.Fatalf("high watermark %d with follower 3 not heard from", p.HighWatermark())
	}
	if _, err := p.FollowerFetched(3, 2, t0); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermark() != 2 {
		t.Fatalf("high watermark %d, want 2 (follower 3's end)", p.HighWatermark())
	}
	if _, err := p.FollowerFetched(3, end, t0); err != nil {
		t.Fatal(err)
	}
	if outcome := <-waited; outcome[0].Code != 0 {
		t.Fatalf("acks=all after every follower fetched: %+v", outcome)
	}

	// The ISR shrinks to the leader alone: below min.insync.replicas.
	next := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 1)) + 1
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2, 3}, []int32{1}), t0)
	if _, code, _ := p.CommitStatus(next, 1); code != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("ISR below min.insync.replicas: %d", code)
	}
	// Leadership moves: waiting appends fail with NOT_LEADER_OR_FOLLOWER.
	p.ApplyAssignment(assignment(1, 1, []int32{1, 2, 3}, []int32{1, 2}), t0)
	last := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "c", 1)) + 1
	p.ApplyAssignment(assignment(2, 2, []int32{1, 2, 3}, []int32{2, 3}), t0)
	if _, code, _ := p.CommitStatus(last, 1); code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("after leadership moved: %d", code)
	}
	if _, err := p.FollowerFetched(3, last, t0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a fetch from a follower on a non-leader: %v", err)
	}
}

// TestWaitAllStops: a closed stop channel ends the wait with
// REQUEST_TIMED_OUT (the broker is shutting down).
func TestWaitAllStops(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	p.ApplyAssignment(assignment(1, 0, []int32{1, 2}, []int32{1, 2}), t0)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 1)) + 1
	stop := make(chan struct{})
	close(stop)
	if outcome := WaitAll([]Pending{{Partition: p, End: end}}, time.Now().Add(time.Hour), stop); outcome[0].Code != kerr.RequestTimedOut.Code {
		t.Fatalf("stopped: %+v", outcome)
	}
}

// TestRemoveFailsWaitingAppends: an acks=all append waiting for a
// follower fails at once when its partition is removed, as Kafka's
// delayed produce does once the partition is gone: UNKNOWN_TOPIC_OR_PARTITION
// when the topic was deleted, NOT_LEADER_OR_FOLLOWER when this broker no
// longer hosts the replica (reassigned away).
func TestRemoveFailsWaitingAppends(t *testing.T) {
	for _, tc := range []struct {
		topicDeleted bool
		want         *kerr.Error
	}{{true, kerr.UnknownTopicOrPartition}, {false, kerr.NotLeaderForPartition}} {
		p := replica(t, t.TempDir(), 1, nil)
		p.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
		end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 1)) + 1
		waited := make(chan []Outcome, 1)
		go func() {
			waited <- WaitAll([]Pending{{Partition: p, End: end, LeaderEpoch: 1}}, time.Now().Add(time.Hour), nil)
		}()
		for registered := false; !registered; time.Sleep(time.Millisecond) { // the wait is asleep
			p.waitersMu.Lock()
			registered = len(p.waiters) > 0
			p.waitersMu.Unlock()
		}
		if err := p.Remove(tc.topicDeleted); err != nil {
			t.Fatal(err)
		}
		select {
		case outcome := <-waited:
			if outcome[0].Code != tc.want.Code {
				t.Fatalf("removed (topic deleted %v): %v, want %v", tc.topicDeleted, kerr.ErrorForCode(outcome[0].Code), tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("removed (topic deleted %v): the waiting append was not woken", tc.topicDeleted)
		}
	}
}

// TestISRProposals: a follower outside the ISR that reaches the high
// watermark (and the current epoch's start) is proposed back; one proposal
// at a time is in flight; a follower that stops catching up for the lag
// time is proposed out.
func TestISRProposals(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	p.ApplyAssignment(assignment(1, 5, []int32{1, 2, 3}, []int32{1, 2}), t0)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 3)) + 3
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	if expand, err := p.FollowerFetched(3, 1, t0); err != nil || expand != nil {
		t.Fatalf("follower 3 behind the high watermark: proposal %v (%v)", expand, err)
	}
	expand, err := p.FollowerFetched(3, end, t0)
	if err != nil || !slices.Equal(expand, []int32{1, 2, 3}) {
		t.Fatalf("follower 3 caught up: proposal %v (%v), want [1 2 3]", expand, err)
	}
	if again, _ := p.FollowerFetched(3, end, t0); again != nil {
		t.Fatalf("a second proposal while one is in flight: %v", again)
	}
	if shrink := p.LaggingISR(t0.Add(time.Hour), time.Second); shrink != nil {
		t.Fatalf("a shrink while a change is in flight: %v", shrink)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})
	p.ApplyAssignment(assignment(1, 5, []int32{1, 2, 3}, []int32{1, 2, 3}), t0)
	if !slices.Equal(p.Assignment().ISR, []int32{1, 2, 3}) || p.UnderReplicated() {
		t.Fatalf("assignment %+v, under-replicated %v", p.Assignment(), p.UnderReplicated())
	}

	// Follower 2 keeps up; follower 3 stops fetching.
	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 1))
	if _, err := p.FollowerFetched(2, p.LogEndOffset(), t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if shrink := p.LaggingISR(t0.Add(5*time.Second), 10*time.Second); shrink != nil {
		t.Fatalf("within the lag time: %v", shrink)
	}
	shrink := p.LaggingISR(t0.Add(30*time.Second), 10*time.Second)
	if !slices.Equal(shrink, []int32{1, 2}) {
		t.Fatalf("follower 3 lagging: proposal %v, want [1 2]", shrink)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})

	if _, err := p.FollowerFetched(9, 0, t0); err == nil {
		t.Fatal("a fetch from a broker that is no replica was accepted")
	}
	if _, err := p.FollowerFetched(2, p.LogEndOffset()+1, t0); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("a follower ahead of the leader: %v", err)
	}
}

// TestFollowerReplicates: a follower appends the leader's batches as they
// are (offsets, epochs), takes the leader's high watermark (never past its
// own end), truncates to agree with a new leader, and restarts its log at
// the leader's log start; OffsetForLeaderEpoch answers from its cache.
func TestFollowerReplicates(t *testing.T) {
	leader := replica(t, t.TempDir(), 1, nil)
	leader.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1}), t0)
	mustAppend(t, leader, batch(t, idempotent(7, 0, 0), "a", 2))
	mustAppend(t, leader, batch(t, idempotent(7, 0, 2), "b", 2))
	data, err := leader.Read(0, 1<<20, leader.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	follower := replica(t, dir, 2, nil)
	follower.ApplyAssignment(assignment(1, 2, []int32{1, 2}, []int32{1}), t0)
	if err := follower.AppendReplicated(data, 100, 2); err != nil {
		t.Fatal(err)
	}
	if follower.LogEndOffset() != 4 || follower.HighWatermark() != 4 || follower.LatestEpoch() != 2 {
		t.Fatalf("end %d high watermark %d epoch %d", follower.LogEndOffset(), follower.HighWatermark(), follower.LatestEpoch())
	}
	got, err := follower.Read(0, 1<<20, 4, true)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("replica not byte-identical (%v)", err)
	}
	// The same data again (a retried fetch) is skipped.
	if err := follower.AppendReplicated(data, 4, 2); err != nil || follower.LogEndOffset() != 4 {
		t.Fatalf("re-fetched data: end %d (%v)", follower.LogEndOffset(), err)
	}
	if err := follower.AppendReplicated(nil, 4, 2); err != nil {
		t.Fatalf("an empty fetch: %v", err)
	}
	if epoch, end := follower.EpochEndOffset(2); epoch != 2 || end != 4 {
		t.Fatalf("OffsetForLeaderEpoch(2) = %d, %d", epoch, end)
	}
	if _, err := follower.FollowerFetched(1, 0, t0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a follower took a replica fetch: %v", err)
	}
	if err := leader.AppendReplicated(data, 4, 2); err == nil {
		t.Fatal("a leader appended replicated data")
	}

	// A new leader's log agrees up to offset 2: truncate; the producer
	// state follows the log (the batch at 2 is no longer a duplicate).
	if err := follower.TruncateTo(2); err != nil {
		t.Fatal(err)
	}
	if follower.LogEndOffset() != 2 || follower.HighWatermark() != 2 {
		t.Fatalf("after truncation: end %d, high watermark %d", follower.LogEndOffset(), follower.HighWatermark())
	}
	follower.ApplyAssignment(assignment(2, 3, []int32{1, 2}, []int32{2}), t0)
	if base := mustAppend(t, follower, batch(t, idempotent(7, 0, 2), "b", 2)); base != 2 {
		t.Fatalf("after truncation the batch at 2 was a duplicate answered at %d", base)
	}
	if epoch, end := follower.EpochEndOffset(2); epoch != 2 || end != 2 {
		t.Fatalf("epoch 2 after the new term: %d, %d, want it to end at 2", epoch, end)
	}

	// The epoch checkpoint on disk matches the cache across a restart.
	follower.Close()
	reopened := replica(t, dir, 2, nil)
	if reopened.LatestEpoch() != 3 {
		t.Fatalf("latest epoch after restart: %d", reopened.LatestEpoch())
	}

	// Behind the leader's log start: restart there with the epochs below.
	if err := reopened.RestartAt(100, []metadata.EpochRange{{Epoch: 2, StartOffset: 0}, {Epoch: 3, StartOffset: 50}, {Epoch: 9, StartOffset: 200}}, nil); err != nil {
		t.Fatal(err)
	}
	if reopened.LogStartOffset() != 100 || reopened.LogEndOffset() != 100 || reopened.HighWatermark() != 100 || reopened.LatestEpoch() != 3 {
		t.Fatalf("after restart at 100: start %d end %d high watermark %d epoch %d", reopened.LogStartOffset(), reopened.LogEndOffset(), reopened.HighWatermark(), reopened.LatestEpoch())
	}
}

// TestDemotionDuringAppend (forced interleaving): a demotion that arrives
// while an append holds the partition waits for it; the append completes
// as the leader's, stamped with the old epoch, and an acks=all wait
// registered before the demotion ends with NOT_LEADER_OR_FOLLOWER.
func TestDemotionDuringAppend(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	p.ApplyAssignment(assignment(1, 4, []int32{1, 2}, []int32{1, 2}), t0)
	inside, release := make(chan struct{}), make(chan struct{})
	p.afterLeaderCheckLocked = func() {
		close(inside)
		<-release
	}
	type result struct {
		base int64
		err  error
	}
	appended := make(chan result, 1)
	go func() {
		base, _, err := p.Append(batch(t, recordbatch.BuildOptions{}, "a", 1), 9, t0)
		appended <- result{base, err}
	}()
	<-inside
	p.afterLeaderCheckLocked = nil // read under appendMu by the next Append only
	demoted := make(chan bool, 1)
	go func() { demoted <- p.ApplyAssignment(assignment(2, 5, []int32{1, 2}, []int32{2}), t0) }()
	// The demotion cannot pass the append: the replica still leads.
	select {
	case <-demoted:
		t.Fatal("the demotion interleaved with the append")
	case <-time.After(20 * time.Millisecond):
	}
	if !p.Leading() {
		t.Fatal("leadership changed while the append held the partition")
	}
	close(release)
	r := <-appended
	if r.err != nil || r.base != 0 {
		t.Fatalf("the append in progress: %d, %v", r.base, r.err)
	}
	if newTerm := <-demoted; !newTerm || p.Leading() {
		t.Fatal("the demotion did not take effect after the append")
	}
	data, _ := p.Read(0, 1<<20, p.LogEndOffset(), true)
	if hs := headers(t, data); len(hs) != 1 || hs[0].PartitionLeaderEpoch != 4 {
		t.Fatalf("appended batch %+v, want leader epoch 4", hs)
	}
	if _, code, _ := p.CommitStatus(1, 4); code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("acks=all for the append after demotion: %d", code)
	}
	wantCode(t, "an append after the demotion", appendErr(p, batch(t, recordbatch.BuildOptions{}, "b", 1), 9), kerr.NotLeaderForPartition)
}

// TestFollowerResponseAfterTruncation (forced order): a fetch response
// built before the follower truncated (batches from its old log end) is
// refused and changes nothing; the follower fetches again from its new end.
func TestFollowerResponseAfterTruncation(t *testing.T) {
	leader := replica(t, t.TempDir(), 1, nil)
	leader.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1}), t0)
	for range 3 {
		mustAppend(t, leader, batch(t, recordbatch.BuildOptions{}, "a", 2))
	}
	early, _ := leader.Read(0, 1<<20, 4, true) // offsets 0..3
	late, _ := leader.Read(4, 1<<20, 6, true)  // offsets 4..5: the in-flight response
	follower := replica(t, t.TempDir(), 2, nil)
	follower.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1}), t0)
	if err := follower.AppendReplicated(early, 4, 1); err != nil {
		t.Fatal(err)
	}
	// The follower truncates (a new leader agrees up to 2) before the
	// response for offsets 4.. arrives.
	if err := follower.TruncateTo(2); err != nil {
		t.Fatal(err)
	}
	if err := follower.AppendReplicated(late, 6, 1); err == nil {
		t.Fatal("a response from before the truncation was appended")
	}
	if follower.LogEndOffset() != 2 || follower.HighWatermark() != 2 {
		t.Fatalf("after the stale response: end %d, high watermark %d; want 2 and 2", follower.LogEndOffset(), follower.HighWatermark())
	}
	// A leader ahead of its follower's truncated log gets the offset it
	// asks from again.
	if err := follower.AppendReplicated(early, 6, 1); err != nil || follower.LogEndOffset() != 4 {
		t.Fatalf("re-fetched from the new end: end %d (%v)", follower.LogEndOffset(), err)
	}
}

// TestConfigAndRetention: SetConfig applies new segment settings;
// retention deletes whole old segments but never past the retention limit
// (a tiered topic's uploaded end); Compact skips a delete-only topic;
// Remove deletes the directory.
func TestConfigAndRetention(t *testing.T) {
	dir := t.TempDir()
	p := replica(t, dir, 1, map[string]string{"segment.bytes": "1024"})
	p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	for i := range 8 {
		mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, string(bytes.Repeat([]byte{'a' + byte(i)}, 400)), 1))
	}
	if len(p.Segments()) < 3 || p.Size() == 0 {
		t.Fatalf("%d segments of %d bytes", len(p.Segments()), p.Size())
	}
	if stats, err := p.Compact(t0); err != nil || !stats.Skipped {
		t.Fatalf("compacting a delete-only topic: %+v %v", stats, err)
	}
	values := topicconfig.Typed(nil, map[string]string{"segment.bytes": "1024", "retention.bytes": "1"})
	if err := p.SetConfig(values, nil); err != nil {
		t.Fatal(err)
	}
	if p.Config().RetentionBytes != 1 {
		t.Fatalf("config %+v", p.Config())
	}
	p.Maintain(t0, Maintenance{ProducerIDExpiration: time.Hour, Retention: true})
	if p.LogStartOffset() == 0 || len(p.Segments()) != 1 {
		t.Fatalf("after retention: start %d, %d segments", p.LogStartOffset(), len(p.Segments()))
	}
	if err := p.Remove(true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "partition.metadata")); !os.IsNotExist(err) {
		t.Fatalf("directory left after Remove: %v", err)
	}
}
