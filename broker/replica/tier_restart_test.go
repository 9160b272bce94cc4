package replica

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/producer"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/internal/ratelog"
	"github.com/strata-log/strata/internal/testclock"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// laggingStore answers the metadata state the test sets: a broker whose
// copy of the Raft log has not applied the newest entries yet.
type laggingStore struct {
	mu    sync.Mutex // guards state
	state *metadata.State
}

func (s *laggingStore) State() *metadata.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *laggingStore) set(state *metadata.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
}

// snapshotReader serves the .producers objects of remote segments, by
// segment id.
type snapshotReader map[[16]byte][]byte

func (r snapshotReader) ReadProducerSnapshot(_ context.Context, _ metadata.TopicPartition, segment metadata.SegmentManifest) ([]byte, error) {
	return r[segment.SegmentID], nil
}

// tierFixture is a tiered partition of topic "orders": a real metadata
// store holding its manifest, the leader's replica (served over loopback
// as a broker answers a replica: OFFSET_MOVED_TO_TIERED_STORAGE below its
// local log start, ListOffsets earliest local and latest tiered) and the
// producer snapshots "uploaded" with each remote segment.
type tierFixture struct {
	t         *testing.T
	ctx       context.Context
	store     *metadata.Store
	topic     metadata.Topic
	epoch     int32
	assigned  metadata.Partition
	leader    *partition.Partition
	snapshots snapshotReader
}

func newTierFixture(t *testing.T) *tierFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	store := metadatatest.Start(t)
	metadatatest.RegisterBroker(t, store, leaderID)
	metadatatest.RegisterBroker(t, store, followerID)
	topic, err := store.CreateTopic(ctx, metadata.TopicSpec{Name: "orders", Assignments: [][]int32{{leaderID, followerID}},
		Configs: map[string]string{"remote.storage.enable": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &tierFixture{t: t, ctx: ctx, store: store, topic: topic, epoch: topic.Partitions[0].LeaderEpoch, snapshots: snapshotReader{}}
	f.assigned = metadata.Partition{Replicas: []int32{leaderID, followerID}, Leader: leaderID, LeaderEpoch: f.epoch,
		PartitionEpoch: topic.Partitions[0].PartitionEpoch, ISR: []int32{leaderID}}
	f.leader = f.open(leaderID)
	return f
}

// open opens replica self of the partition in a new directory, assigned.
func (f *tierFixture) open(self int32) *partition.Partition {
	f.t.Helper()
	p, err := partition.Open(partition.Config{Dir: f.t.TempDir(), Topic: "orders", TopicID: f.topic.ID, Self: self,
		Values: topicconfig.Typed(nil, map[string]string{"remote.storage.enable": "true"}), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { p.Close() })
	p.ApplyAssignment(f.assigned, t0)
	return p
}

// append appends batch to the leader.
func (f *tierFixture) append(batch []byte) {
	f.t.Helper()
	if _, _, err := f.leader.Append(batch, 9, t0); err != nil {
		f.t.Fatal(err)
	}
}

// upload commits the leader's offsets base..last as a remote segment, with
// the producer state at its end as the uploader computes it.
func (f *tierFixture) upload(base, last int64) {
	f.t.Helper()
	state := producer.NewState()
	if err := f.leader.ReplayProducers(state, 0, last+1); err != nil {
		f.t.Fatal(err)
	}
	var snapshot bytes.Buffer
	if err := state.WriteSnapshot(&snapshot); err != nil {
		f.t.Fatal(err)
	}
	entry := metadata.SegmentManifest{SegmentID: uuid.New(), BaseOffset: base, LastOffset: last, SizeBytes: 1, LeaderEpoch: f.epoch,
		EpochRanges: []metadata.EpochRange{{Epoch: f.epoch, StartOffset: base}}}
	f.snapshots[entry.SegmentID] = snapshot.Bytes()
	if err := f.store.StartSegmentCopy(f.ctx, f.topic.ID, 0, entry); err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.FinishSegmentCopy(f.ctx, metadata.SegmentRef{TopicID: f.topic.ID, BaseOffset: base, SegmentID: entry.SegmentID, LeaderEpoch: f.epoch}); err != nil {
		f.t.Fatal(err)
	}
}

// follow serves the leader and returns a new follower replica fetching
// from it with metadata view, and round: one fetch, then a second on the
// fetchers' clock (past the pause after a failed restart).
func (f *tierFixture) follow(view *laggingStore) (follower *partition.Partition, round func()) {
	f.t.Helper()
	leaderPart := f.leader
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(cluster.Close)
	cluster.ControlKey(kmsg.Fetch.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				var err error
				if rp.FetchOffset < leaderPart.LogStartOffset() {
					sp.ErrorCode = kerr.OffsetMovedToTieredStorage.Code
				} else if sp.RecordBatches, err = leaderPart.Read(rp.FetchOffset, rp.PartitionMaxBytes, leaderPart.LogEndOffset(), true); err != nil {
					sp.ErrorCode = kerr.UnknownServerError.Code
				}
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = leaderPart.HighWatermark(), leaderPart.HighWatermark(), 0
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cluster.ControlKey(kmsg.ListOffsets.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Timestamp, sp.LeaderEpoch, sp.Offset = rp.Partition, -1, f.epoch, -1
				switch rp.Timestamp {
				case partition.EarliestLocalOffset:
					sp.Offset = leaderPart.LogStartOffset()
				case latestTieredOffset:
					if _, end, ok := f.store.State().RemoteLogOffsets(f.topic.ID, 0); ok {
						sp.Offset = end
					}
				default:
					sp.ErrorCode = kerr.InvalidRequest.Code
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	follower = f.open(followerID)
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()[0]))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(client.Close)
	limiter := ratelog.New(ratelog.Config{})
	f.t.Cleanup(limiter.Close)
	clock := testclock.New(t0)
	fetchers := NewFetchers(FetchersConfig{NodeID: followerID, Store: view, Remote: f.snapshots, Logger: slog.New(slog.DiscardHandler), LogLimiter: limiter, Now: clock.Now})
	f.t.Cleanup(fetchers.Close)
	rf := &fetcher{f: fetchers, leader: leaderKey{id: leaderID, address: cluster.ListenAddrs()[0]}, client: client, partitions: map[*partition.Partition]*followed{}}
	rf.assign(map[*partition.Partition]*followed{follower: {part: follower, topic: f.topic, epoch: f.epoch}})
	return follower, func() {
		f.t.Helper()
		if err := rf.fetchOnce(f.ctx, rf.snapshot()); err != nil {
			f.t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
}

// catchUp runs rounds until follower's log ends where the leader's does.
func (f *tierFixture) catchUp(follower *partition.Partition, round func()) {
	f.t.Helper()
	for i := 0; follower.LogEndOffset() != f.leader.LogEndOffset(); i++ {
		if i == 20 {
			f.t.Fatalf("follower log end %d after 20 rounds, want the leader's %d", follower.LogEndOffset(), f.leader.LogEndOffset())
		}
		round()
	}
}

// idempotentBatch is five records of producer 42 from sequence.
func idempotentBatch(t *testing.T, sequence int32) []byte {
	t.Helper()
	records := make([]recordbatch.Record, 5)
	for i := range records {
		records[i] = recordbatch.Record{Timestamp: t0.UnixMilli()}
	}
	batch, err := recordbatch.Build(recordbatch.BuildOptions{Idempotent: true, ProducerID: 42, BaseSequence: sequence}, records)
	if err != nil {
		t.Fatal(err)
	}
	return batch
}

// TestFollowerRestartFromTierWaitsForTheManifest: a follower answered
// OFFSET_MOVED_TO_TIERED_STORAGE restarts its log at the leader's local
// log start with the producer state uploaded with the remote segment just
// below it. The leader drops its local copy as soon as that segment's
// upload commits, so the follower's metadata may not hold the segment yet.
// It restarted without any producer state then: producer 42, whose
// batches are all below the restart, was unknown to the replica, and once
// it led, a retry of the producer's last batch would be appended a second
// time. Now the restart waits until the metadata holds the segment. A
// leader whose remote data has no segment there (local data expired while
// uploads were disabled: the remote data ends below the local log start,
// or resumes at it) has no such segment to wait for: the follower restarts
// at once.
func TestFollowerRestartFromTierWaitsForTheManifest(t *testing.T) {
	for _, tc := range []struct {
		name string
		// second is the base offset of the second remote segment
		// (-1: none); lagging, whether the follower's metadata lacks it.
		second  int64
		lagging bool
	}{
		{"metadata behind the leader's upload", 5, true},
		{"remote data ending below the local log start", -1, false},
		{"remote data resuming at the local log start", 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The leader: producer 42's batches at 0..4 and 5..9, plain
			// records at 10..19; its local log starts at 10.
			f := newTierFixture(t)
			f.append(idempotentBatch(t, 0))
			f.upload(0, 4)
			view := &laggingStore{state: f.store.State()}
			f.append(idempotentBatch(t, 5))
			appendRecords(t, f.leader, 10)
			switch tc.second {
			case 5:
				f.upload(5, 9)
			case 10:
				f.upload(10, 19)
			}
			if !tc.lagging {
				view.set(f.store.State())
			}
			if _, err := f.leader.DeleteRecordsBefore(10); err != nil { // local retention after the uploads
				t.Fatal(err)
			}

			follower, round := f.follow(view)
			round() // answered OFFSET_MOVED_TO_TIERED_STORAGE
			view.set(f.store.State())
			f.catchUp(follower, round)
			if start := follower.LogStartOffset(); start != 10 {
				t.Fatalf("follower log start %d, want the leader's local log start 10", start)
			}
			known := false
			for _, p := range follower.Producers() {
				known = known || (p.ProducerID == 42 && p.LastSequence == 9)
			}
			switch {
			case tc.second == 5 && !known:
				t.Fatalf("follower restarted at 10 without producer 42 (last sequence 9, at offsets 5..9 in the object store): producers %+v", follower.Producers())
			case tc.second != 5 && known:
				t.Fatalf("follower knows producer 42 from a segment never uploaded: %+v", follower.Producers())
			}
		})
	}
}

// TestFollowerRestartFromTierInsideARemoteSegment: DeleteRecords moved the
// leader's local log start to 5, inside the remote segment 0..9. A
// follower answered OFFSET_MOVED_TO_TIERED_STORAGE restarted its log at 5
// with the producer state uploaded with that segment (the state at 10,
// where producer 9's second transaction is open from 7) and replayed 5..9
// over it: the ABORT marker at 6 of the producer's first transaction
// (from 5) was taken as ending the one from 7, and indexed as an aborted
// transaction from 7 to 6, so a read_committed consumer of this replica
// would be handed the aborted record at 5. It now restarts at the
// segment's end, 10, as Kafka's follower does.
func TestFollowerRestartFromTierInsideARemoteSegment(t *testing.T) {
	f := newTierFixture(t)
	const pid = 9
	transactional := func(sequence int32) []byte {
		t.Helper()
		batch, err := recordbatch.Build(recordbatch.BuildOptions{Idempotent: true, Transactional: true, ProducerID: pid, BaseSequence: sequence},
			[]recordbatch.Record{{Timestamp: t0.UnixMilli()}})
		if err != nil {
			t.Fatal(err)
		}
		f.leader.StartTxnVerification(pid, 0)
		return batch
	}
	abort := func() {
		t.Helper()
		if _, err := f.leader.AppendMarker(partition.Marker{ProducerID: pid, CoordinatorEpoch: 1}, t0); err != nil {
			t.Fatal(err)
		}
	}
	appendRecords(t, f.leader, 5) // 0..4
	f.append(transactional(0))    // 5: the first transaction
	abort()                       // 6
	f.append(transactional(1))    // 7: the second, open at 10
	appendRecords(t, f.leader, 2) // 8..9
	abort()                       // 10
	appendRecords(t, f.leader, 5) // 11..15
	f.upload(0, 9)
	if _, err := f.leader.DeleteRecordsBefore(5); err != nil {
		t.Fatal(err)
	}

	follower, round := f.follow(&laggingStore{state: f.store.State()})
	f.catchUp(follower, round)
	aborted := follower.AbortedTransactions(0, follower.LogEndOffset())
	for _, a := range aborted {
		if a.FirstOffset > a.LastOffset {
			t.Errorf("follower indexes an aborted transaction of producer %d from %d ending at %d, before it starts", a.ProducerID, a.FirstOffset, a.LastOffset)
		}
	}
	if follower.LogStartOffset() <= 5 && !slices.ContainsFunc(aborted, func(a segment.AbortedTxn) bool { return a.ProducerID == pid && a.FirstOffset == 5 }) {
		t.Errorf("follower holds offset 5 (log start %d), producer %d's aborted record, without its aborted transaction: %+v", follower.LogStartOffset(), pid, aborted)
	}
}
