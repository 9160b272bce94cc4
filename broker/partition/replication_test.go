package partition

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// TestEpochCache: OffsetForLeaderEpoch answers as Kafka's leader-epoch
// cache does, truncation drops later epochs, and the checkpoint (Kafka's
// format) round-trips and refuses garbage.
func TestEpochCache(t *testing.T) {
	var c epochCache
	for _, e := range []epochEntry{{0, 0}, {2, 100}, {5, 250}} {
		if !c.assign(e.epoch, e.start) {
			t.Fatalf("assign %+v refused", e)
		}
	}
	if c.assign(4, 300) || c.assign(5, 300) || c.assign(-1, 400) {
		t.Fatal("an older, equal or undefined epoch was assigned")
	}
	for _, tc := range []struct {
		requested, epoch int32
		end              int64
	}{
		{0, 0, 100}, {1, 0, 100}, {2, 2, 250}, {4, 2, 250}, {5, 5, 400}, {-1, -1, -1},
		// Newer than the latest: unknown, as Kafka's higherEntry == null.
		{6, -1, -1}, {9, -1, -1},
	} {
		if epoch, end := c.endOffsetFor(tc.requested, 400); epoch != tc.epoch || end != tc.end {
			t.Errorf("endOffsetFor(%d) = %d, %d; want %d, %d", tc.requested, epoch, end, tc.epoch, tc.end)
		}
	}
	dir := t.TempDir()
	if err := c.write(dir); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, leaderEpochCheckpoint))
	if string(data) != "0\n3\n0 0\n2 100\n5 250\n" {
		t.Fatalf("checkpoint %q", data)
	}
	read, ok := readEpochCache(dir)
	if !ok || !reflect.DeepEqual(read.entries, c.entries) {
		t.Fatalf("read back %+v %v", read.entries, ok)
	}
	if !c.truncateFromEnd(250) || c.latest() != 2 {
		t.Fatalf("after truncating at 250: %+v", c.entries)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n2\n0 0\n", "0\n1\nx 0\n", "0\n2\n3 10\n2 20\n"} {
		os.WriteFile(filepath.Join(dir, leaderEpochCheckpoint), []byte(bad), 0o644)
		if _, ok := readEpochCache(dir); ok {
			t.Errorf("checkpoint %q accepted", bad)
		}
	}
}

// TestAppendReplicatedLargerThanSegment: a follower appends what one fetch
// brought — more than segment.bytes — in runs that fit, rolling segments,
// with every batch at its offset.
func TestAppendReplicatedLargerThanSegment(t *testing.T) {
	values := topicconfig.Typed(nil, map[string]string{"segment.bytes": "4096"})
	p, err := Open(Config{Dir: t.TempDir(), Topic: "t", TopicID: [16]byte{1}, Index: 0, Self: 2, Values: values, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.ApplyAssignment(metadata.Partition{Index: 0, Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}, time.Now())
	var data []byte
	for i := range 10 { // 10 batches of ~1 KiB: 2.5 segments
		batch, err := recordbatch.Build(recordbatch.BuildOptions{BaseOffset: int64(i)}, []recordbatch.Record{{Timestamp: 1, Value: bytes.Repeat([]byte{byte(i)}, 1000)}})
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, batch...)
	}
	if err := p.AppendReplicated(data, 10, 0); err != nil {
		t.Fatal(err)
	}
	if end := p.segments.EndOffset(); end != 10 {
		t.Fatalf("log end %d, want 10", end)
	}
	if n := len(p.Segments()); n < 3 {
		t.Fatalf("%d segments, want the 10 KiB over at least 3 of 4 KiB", n)
	}
	got, err := p.Read(0, 1<<20, 10, true)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want the %d appended", len(got), err, len(data))
	}
}

// TestHighWatermarkOverMaximalISR (forced order): a follower proposed into
// the ISR counts for the high watermark from the proposal on — while the
// change is in flight and after the controller committed it but before
// this leader applied it — so once in the ISR it holds everything below
// the high watermark; a follower proposed out counts until its removal is
// applied; a refused or lost proposal keeps counting until the partition
// epoch moves, and a lagging proposed member is proposed out.
func TestHighWatermarkOverMaximalISR(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	applied := metadata.Partition{Index: 0, Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 2}, PartitionEpoch: 4}
	p.ApplyAssignment(applied, t0)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 3)) + 3
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	expand, err := p.FollowerFetched(3, end, t0)
	if err != nil || !slices.Equal(expand, []int32{1, 2, 3}) {
		t.Fatalf("follower 3 caught up: proposal %v (%v)", expand, err)
	}
	// In flight: more records, follower 2 has them, follower 3 not yet.
	end2 := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 2)) + 2
	if _, err := p.FollowerFetched(2, end2, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end {
		t.Fatalf("expansion in flight: high watermark %d, want %d (follower 3's end)", hw, end)
	}
	// Committed by the controller, not applied here yet.
	committed := applied
	committed.ISR, committed.PartitionEpoch = []int32{1, 2, 3}, 5
	p.ISRChangeDone(ISROutcome{Committed: &committed})
	if _, err := p.FollowerFetched(2, end2, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end {
		t.Fatalf("expansion committed, not applied: high watermark %d, want %d", hw, end)
	}
	p.ApplyAssignment(committed, t0)
	if hw := p.HighWatermark(); hw != end {
		t.Fatalf("expansion applied: high watermark %d, want %d", hw, end)
	}
	if _, err := p.FollowerFetched(3, end2, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end2 {
		t.Fatalf("follower 3 caught up in the ISR: high watermark %d, want %d", hw, end2)
	}

	// Follower 3 stops fetching: proposed out; it counts until the shrink
	// is applied.
	end3 := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "c", 1)) + 1
	if _, err := p.FollowerFetched(2, end3, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if shrink := p.LaggingISR(t0.Add(time.Minute), time.Second); !slices.Equal(shrink, []int32{1, 2}) {
		t.Fatalf("follower 3 lagging: proposal %v, want [1 2]", shrink)
	}
	shrunk := committed
	shrunk.ISR, shrunk.PartitionEpoch = []int32{1, 2}, 6
	p.ISRChangeDone(ISROutcome{Committed: &shrunk})
	if hw := p.HighWatermark(); hw != end2 {
		t.Fatalf("shrink committed, not applied: high watermark %d, want %d", hw, end2)
	}
	p.ApplyAssignment(shrunk, t0.Add(time.Minute))
	if hw := p.HighWatermark(); hw != end3 {
		t.Fatalf("shrink applied: high watermark %d, want %d", hw, end3)
	}

	// A proposal whose outcome is unknown (a timeout) keeps counting and
	// is proposed again as it was, before anything else (a late commit of
	// the first try is then never taken for its absence); the second try
	// is refused (the first committed meanwhile: stale epoch), and the
	// pending member counts until the commit is applied.
	if expand, _ := p.FollowerFetched(3, end3, t0.Add(time.Minute)); !slices.Equal(expand, []int32{1, 2, 3}) {
		t.Fatalf("follower 3 caught up again: proposal %v", expand)
	}
	p.ISRChangeDone(ISROutcome{})
	end4 := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "d", 1)) + 1
	if _, err := p.FollowerFetched(2, end4, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end3 {
		t.Fatalf("expansion outcome unknown: high watermark %d, want %d", hw, end3)
	}
	if again, _ := p.FollowerFetched(2, end4, t0.Add(2*time.Minute)); again != nil {
		t.Fatalf("another change proposed while one's outcome is unknown: %v", again)
	}
	if retry := p.LaggingISR(t0.Add(2*time.Minute), time.Second); !slices.Equal(retry, []int32{1, 2, 3}) {
		t.Fatalf("outcome unknown: proposal %v, want the same [1 2 3] again", retry)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})
	if hw := p.HighWatermark(); hw != end3 {
		t.Fatalf("retry refused, epoch not moved here: high watermark %d, want %d", hw, end3)
	}
	lateCommit := shrunk
	lateCommit.ISR, lateCommit.PartitionEpoch = []int32{1, 2, 3}, 7
	p.ApplyAssignment(lateCommit, t0.Add(2*time.Minute))
	if hw := p.HighWatermark(); hw != end3 {
		t.Fatalf("late commit applied: high watermark %d, want %d", hw, end3)
	}

}

// TestLaggingPendingMemberProposedOut: a follower whose expansion was
// refused keeps counting for the high watermark until the partition epoch
// moves; when it stops fetching it is proposed out, and the controller's
// answer (no change) ends its count.
func TestLaggingPendingMemberProposedOut(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	applied := metadata.Partition{Index: 0, Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 2}, PartitionEpoch: 8}
	p.ApplyAssignment(applied, t0)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 2)) + 2
	if _, err := p.FollowerFetched(2, end, t0); err != nil {
		t.Fatal(err)
	}
	if expand, _ := p.FollowerFetched(3, end, t0); !slices.Equal(expand, []int32{1, 2, 3}) {
		t.Fatalf("follower 3 caught up: proposal %v", expand)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})
	end2 := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 1)) + 1
	if _, err := p.FollowerFetched(2, end2, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end {
		t.Fatalf("refused, epoch not moved: high watermark %d, want %d", hw, end)
	}
	if shrink := p.LaggingISR(t0.Add(time.Minute), time.Second); !slices.Equal(shrink, []int32{1, 2}) {
		t.Fatalf("proposed member 3 lagging: proposal %v, want [1 2]", shrink)
	}
	p.ISRChangeDone(ISROutcome{Committed: &applied})
	if hw := p.HighWatermark(); hw != end2 {
		t.Fatalf("the controller kept the ISR: high watermark %d, want %d", hw, end2)
	}
}

// TestStaleFetchResponseDiscarded (forced order): a fetch issued to the
// old leader under epoch 1 answers after this follower moved to epoch 2
// and truncated to agree with the new leader at exactly the offset the
// stale response starts at; the response is discarded (it continues a
// history the new leader does not have), and the new leader's data is
// appended.
func TestStaleFetchResponseDiscarded(t *testing.T) {
	oldLeader := replica(t, t.TempDir(), 1, nil)
	oldLeader.ApplyAssignment(assignment(1, 1, []int32{1, 2, 3}, []int32{1, 2, 3}), t0)
	for range 3 {
		mustAppend(t, oldLeader, batch(t, recordbatch.BuildOptions{}, "old", 2))
	}
	early, _ := oldLeader.Read(0, 1<<20, 4, true) // offsets 0..3
	stale, _ := oldLeader.Read(4, 1<<20, 6, true) // offsets 4..5: the response in flight

	follower := replica(t, t.TempDir(), 2, nil)
	follower.ApplyAssignment(assignment(1, 1, []int32{1, 2, 3}, []int32{1, 2, 3}), t0)
	if err := follower.AppendReplicated(early, 4, 1); err != nil {
		t.Fatal(err)
	}
	// Broker 3 leads at epoch 2 with epoch 1 ending at 4: the follower's
	// truncation keeps 0..3.
	follower.ApplyAssignment(assignment(3, 2, []int32{1, 2, 3}, []int32{2, 3}), t0)
	if err := follower.TruncateTo(4); err != nil {
		t.Fatal(err)
	}
	if err := follower.AppendReplicated(stale, 6, 1); !errors.Is(err, ErrStaleLeaderEpoch) {
		t.Fatalf("a response fetched under epoch 1 after the move to epoch 2: %v, want ErrStaleLeaderEpoch", err)
	}
	if follower.LogEndOffset() != 4 || follower.LatestEpoch() != 1 {
		t.Fatalf("after the stale response: end %d, latest epoch %d; want 4 and 1", follower.LogEndOffset(), follower.LatestEpoch())
	}
	fresh := batch(t, recordbatch.BuildOptions{BaseOffset: 4, PartitionLeaderEpoch: 2}, "new", 1)
	if err := follower.AppendReplicated(fresh, 5, 2); err != nil {
		t.Fatal(err)
	}
	got, _ := follower.Read(4, 1<<20, 5, true)
	if !bytes.Equal(got, fresh) {
		t.Fatal("the follower does not hold the new leader's record at offset 4")
	}
}

// registrations is a metadata state's broker registrations: id → epoch.
type registrations map[int32]int64

func (r registrations) Broker(id int32) (metadata.Broker, bool) {
	epoch, ok := r[id]
	return metadata.Broker{ID: id, Epoch: epoch}, ok
}

// TestRestartedFollowerProgressDoesNotCount: follower 3 fetched up to 7
// and then restarted (losing its unsynced tail) and registered again with
// a new broker epoch; what the leader knew of it no longer counts for the
// high watermark — it waits for the new incarnation's fetches — and it is
// not caught up until those reach the leader's end.
func TestRestartedFollowerProgressDoesNotCount(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	a := assignment(1, 1, []int32{1, 2, 3}, []int32{1, 2, 3})
	brokers := registrations{1: 10, 2: 11, 3: 12}
	p.ObserveRegistrations(a.Replicas, brokers)
	p.ApplyAssignment(a, t0)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 7)) + 7
	if _, err := p.FollowerFetched(3, end, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.FollowerFetched(2, 5, t0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("high watermark %d, want 5", hw)
	}
	// Broker 3 registers again (still in the ISR in this state).
	brokers[3] = 20
	p.ObserveRegistrations(a.Replicas, brokers)
	p.ApplyAssignment(a, t0)
	if _, err := p.FollowerFetched(2, end, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("after follower 3 restarted: high watermark %d, want 5 until it fetches again", hw)
	}
	// The new incarnation fetches from where its log ends now: behind,
	// not caught up.
	if _, err := p.FollowerFetched(3, 5, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.FollowerFetched(2, end, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if shrink := p.LaggingISR(t0.Add(time.Minute), 10*time.Second); !slices.Equal(shrink, []int32{1, 2}) {
		t.Fatalf("restarted follower behind the leader: shrink %v, want [1 2]", shrink)
	}
	p.ISRChangeDone(ISROutcome{Refused: true})
	if _, err := p.FollowerFetched(3, end, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != end {
		t.Fatalf("restarted follower caught up: high watermark %d, want %d", hw, end)
	}
	// An unchanged registration changes nothing.
	p.ObserveRegistrations(a.Replicas, brokers)
	if hw := p.HighWatermark(); hw != end {
		t.Fatalf("high watermark %d, want %d", hw, end)
	}
}

// TestDivergingEpoch: a leader checks a follower's fetch position (Fetch
// v12+'s LastFetchedEpoch with its fetch offset) against its own log as
// Kafka's leader does: it answers the largest epoch at or below the
// follower's and where that epoch ends here when the follower's epoch is
// one this leader does not have, or ends here before the fetch offset;
// nothing when the logs agree below the fetch offset or the fetch states no
// epoch; out of range when the leader cannot say where the follower's
// epoch ends (no epochs, or the follower's is newer than the leader's
// latest). A diverging fetch counts for nothing: it neither moves the
// high watermark nor catches the follower up.
func TestDivergingEpoch(t *testing.T) {
	// The leader's log: epoch 2 at 0..3, epoch 4 at 4..6, epoch 6 from 7
	// to its end at 9; follower 2 is in the ISR and has not fetched yet.
	openLeader := func(t *testing.T) *Partition {
		leader := replica(t, t.TempDir(), 1, nil)
		for _, e := range []struct {
			epoch   int32
			records int
		}{{2, 4}, {4, 3}, {6, 2}} {
			leader.ApplyAssignment(assignment(1, e.epoch, []int32{1, 2}, []int32{1, 2}), t0)
			mustAppend(t, leader, batch(t, recordbatch.BuildOptions{}, "r", e.records))
		}
		if leader.LogEndOffset() != 9 || leader.HighWatermark() != 0 {
			t.Fatalf("setup: log end %d, high watermark %d", leader.LogEndOffset(), leader.HighWatermark())
		}
		return leader
	}
	for _, tc := range []struct {
		name      string
		position  FetchPosition
		diverging *EpochEnd
		err       error
	}{
		{"no epoch stated (before Fetch v12, or a log without epochs)", FetchPosition{Offset: 9, LastFetchedEpoch: -1}, nil, nil},
		{"the latest epoch, at the log end", FetchPosition{Offset: 9, LastFetchedEpoch: 6}, nil, nil},
		{"the latest epoch, behind the log end", FetchPosition{Offset: 8, LastFetchedEpoch: 6}, nil, nil},
		{"an earlier epoch, at its end here", FetchPosition{Offset: 7, LastFetchedEpoch: 4}, nil, nil},
		{"an earlier epoch, inside it", FetchPosition{Offset: 5, LastFetchedEpoch: 4}, nil, nil},
		{"an epoch that ends here before the fetch offset", FetchPosition{Offset: 8, LastFetchedEpoch: 4}, &EpochEnd{Epoch: 4, EndOffset: 7}, nil},
		{"the first epoch, ending before the fetch offset", FetchPosition{Offset: 6, LastFetchedEpoch: 2}, &EpochEnd{Epoch: 2, EndOffset: 4}, nil},
		{"an epoch this leader does not have", FetchPosition{Offset: 8, LastFetchedEpoch: 5}, &EpochEnd{Epoch: 4, EndOffset: 7}, nil},
		{"an epoch this leader does not have, below the fetch offset's", FetchPosition{Offset: 3, LastFetchedEpoch: 3}, &EpochEnd{Epoch: 2, EndOffset: 4}, nil},
		// As Kafka: this leader cannot end an epoch newer than its
		// latest (endOffsetFor's (-1, -1)): out of range.
		{"an epoch newer than this leader's", FetchPosition{Offset: 9, LastFetchedEpoch: 7}, nil, segment.ErrOffsetOutOfRange},
		// As Kafka: the follower's epoch itself, ending where this
		// leader's oldest epoch starts (the follower truncates there).
		{"an epoch older than every epoch here", FetchPosition{Offset: 2, LastFetchedEpoch: 1}, &EpochEnd{Epoch: 1, EndOffset: 0}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leader := openLeader(t)
			diverging, err := leader.DivergingEpoch(tc.position)
			if !reflect.DeepEqual(diverging, tc.diverging) || !errors.Is(err, tc.err) {
				t.Fatalf("DivergingEpoch(%+v) = %+v, %v; want %+v, %v", tc.position, diverging, err, tc.diverging, tc.err)
			}
			expand, diverging, err := leader.FollowerFetchedAt(2, tc.position, -1, t0)
			if !reflect.DeepEqual(diverging, tc.diverging) || !errors.Is(err, tc.err) || expand != nil {
				t.Fatalf("FollowerFetchedAt(%+v) = %v, %+v, %v; want %+v, %v", tc.position, expand, diverging, err, tc.diverging, tc.err)
			}
			// The follower's fetch counts only when its log agrees.
			want := tc.position.Offset
			if tc.diverging != nil || tc.err != nil {
				want = 0
			}
			if got := leader.HighWatermark(); got != want {
				t.Fatalf("after the fetch at %d: high watermark %d, want %d", tc.position.Offset, got, want)
			}
		})
	}
}

// TestFetchPosition: a follower states the epoch of its last batch below
// its fetch offset; an epoch that starts at the log end holds no batch (a
// former leader's epoch with nothing written) and is not the last fetched.
func TestFetchPosition(t *testing.T) {
	p := replica(t, t.TempDir(), 1, nil)
	if got := p.FetchPosition(); got != (FetchPosition{Offset: 0, LastFetchedEpoch: -1}) {
		t.Fatalf("empty log: %+v", got)
	}
	p.ApplyAssignment(assignment(1, 3, []int32{1, 2}, []int32{1}), t0)
	mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "r", 2))
	p.ApplyAssignment(assignment(1, 5, []int32{1, 2}, []int32{1}), t0) // epoch 5 starts at 2, empty
	p.ApplyAssignment(assignment(2, 6, []int32{1, 2}, []int32{2}), t0) // follows now
	if got := p.FetchPosition(); got != (FetchPosition{Offset: 2, LastFetchedEpoch: 3}) || p.LatestEpoch() != 5 {
		t.Fatalf("after an empty epoch 5: %+v (latest epoch %d); want offset 2, last fetched epoch 3", got, p.LatestEpoch())
	}
}
