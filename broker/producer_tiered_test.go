package broker_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/topicconfig"
)

// TestIdempotentProducerKnownOnlyFromTieredSegments: an idempotent
// producer whose batches are only in segments already uploaded and dropped
// from the local log keeps its sequence state (KIP-360) on the broker
// after a restart, and on a replica whose log restarted after them from
// the producer snapshot uploaded with the remote segment (what a follower
// answered OFFSET_MOVED_TO_TIERED_STORAGE does) once it leads: a retry of
// the producer's last batch is answered with its original offset and
// appends nothing, and the next sequence is accepted.
func TestIdempotentProducerKnownOnlyFromTieredSegments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tier := memoryTier(t)
	n := startTiered(t, tier)
	configs := map[string]string{"remote.storage.enable": "true", "segment.bytes": "600", "local.retention.bytes": "1"}
	createTopic(t, n.Client(), "idem", 1, configs)
	p := leadingTopic(t, n, "idem")

	now := time.Now()
	build := func(opts recordbatch.BuildOptions, value string) []byte {
		t.Helper()
		batch, err := recordbatch.Build(opts, []recordbatch.Record{{Value: []byte(value), Timestamp: now.UnixMilli()}})
		if err != nil {
			t.Fatal(err)
		}
		return batch
	}
	const producerID = 7
	idempotent := func(sequence int32) []byte {
		return build(recordbatch.BuildOptions{Idempotent: true, ProducerID: producerID, ProducerEpoch: 0, BaseSequence: sequence}, "idempotent")
	}
	appendTo := func(p *partition.Partition, batch []byte) int64 {
		t.Helper()
		base, _, err := p.Append(batch, 9, now)
		if err != nil {
			t.Fatal(err)
		}
		return base
	}
	var lastOffset int64
	for sequence := range int32(3) {
		lastOffset = appendTo(p, idempotent(sequence))
	}
	for range 20 {
		appendTo(p, build(recordbatch.BuildOptions{}, "plain, rolling segments"))
	}
	stopManager := startTierManager(t, ctx, n, tier)
	waitLocalLogStart(t, ctx, p, lastOffset, "the producer's segments")
	waitSealedUploaded(t, ctx, n, p)
	stopManager()

	// checkLeader retries the producer's last batch on leader, then sends
	// its next one.
	checkLeader := func(what string, leader *partition.Partition) {
		t.Helper()
		end := leader.LogEndOffset()
		if got := appendTo(leader, idempotent(2)); got != lastOffset {
			t.Errorf("%s: retry of the producer's last batch answered offset %d, want its original %d (a duplicate)", what, got, lastOffset)
		}
		if got := leader.LogEndOffset(); got != end {
			t.Errorf("%s: the retry moved the log end from %d to %d", what, end, got)
		}
		if base, _, err := leader.Append(idempotent(3), 9, now); err != nil || base != leader.LogEndOffset()-1 {
			t.Errorf("%s: next sequence: offset %d, %v; want it appended", what, base, err)
		}
	}

	// A replica restarted at the leader's local log start, as a follower
	// answered OFFSET_MOVED_TO_TIERED_STORAGE does (replica.restartFromTier),
	// then leading.
	state := n.Store.State()
	start := p.LogStartOffset()
	prev, ok := state.SegmentContaining(p.TopicID(), p.Index(), start-1)
	if !ok {
		t.Fatalf("no remote segment holds offset %d", start-1)
	}
	producers, err := tier.ReadProducerSnapshot(ctx, p.Name(), prev)
	if err != nil {
		t.Fatal(err)
	}
	topic, _ := state.Topic("idem")
	follower, err := partition.Open(partition.Config{Dir: filepath.Join(t.TempDir(), "idem-0"), Topic: "idem", TopicID: topic.ID,
		Self: 99, Values: topicconfig.Typed(nil, configs)})
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	assigned := topic.Partitions[0]
	assigned.Replicas = append(assigned.Replicas, 99)
	follower.ApplyAssignment(assigned, now)
	if err := follower.RestartAt(start, follower.RemoteEpochs(state, start), producers); err != nil {
		t.Fatal(err)
	}
	data, err := p.Read(start, 1<<20, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := follower.AppendReplicated(data, p.HighWatermark(), assigned.LeaderEpoch); err != nil {
		t.Fatal(err)
	}
	if follower.LogEndOffset() != p.LogEndOffset() {
		t.Fatalf("follower log end %d, leader's %d", follower.LogEndOffset(), p.LogEndOffset())
	}
	promoted := assigned
	promoted.Leader, promoted.LeaderEpoch, promoted.ISR = 99, assigned.LeaderEpoch+1, []int32{99}
	follower.ApplyAssignment(promoted, now)
	checkLeader("replica restarted after the remote data, leading", follower)

	// The broker itself, restarted.
	n.Restart()
	p = leadingTopic(t, n, "idem")
	if p.LogStartOffset() <= lastOffset {
		t.Fatalf("local log start %d after the restart, want past %d", p.LogStartOffset(), lastOffset)
	}
	checkLeader("after a restart", p)
}

// waitSealedUploaded waits until every sealed segment of p is in the
// manifest: a tier manager stopped then has nothing in flight (a "copy
// finished" under way when it stops may still commit after).
func waitSealedUploaded(t *testing.T, ctx context.Context, n *brokertest.Node, p *partition.Partition) {
	t.Helper()
	for {
		segments := p.Segments()
		_, end, _ := n.Store.State().RemoteLogOffsets(p.TopicID(), p.Index())
		if end+1 == segments[len(segments)-1].BaseOffset {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the sealed segments were never all uploaded (remote log end %d, segments %+v)", end, segments)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
