package partition

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// TestIneligibleExpansionStopsCountingForTheHighWatermark: a follower
// proposed into the ISR counts for the high watermark from the proposal
// on; when the controller refuses it as ineligible (it is fenced — the
// leader's view of the registrations was behind — or registered again
// since its fetch) at the partition epoch the leader has applied, nothing
// of it can commit any more, and it stops counting, as Kafka's leader
// falls back to the committed state on INELIGIBLE_REPLICA. Before, it
// held the high watermark, and every acks=all produce, until the
// partition epoch moved, which nothing made happen when the follower was
// gone. After an earlier proposal with an unknown outcome (it may still
// commit) it keeps counting.
func TestIneligibleExpansionStopsCountingForTheHighWatermark(t *testing.T) {
	setup := func(t *testing.T) (p *Partition, end int64) {
		p = replica(t, t.TempDir(), 1, nil)
		p.ApplyAssignment(metadata.Partition{Index: 0, Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 2}, PartitionEpoch: 4}, t0)
		end = mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 3)) + 3
		if _, err := p.FollowerFetched(2, end, t0); err != nil {
			t.Fatal(err)
		}
		if expand, err := p.FollowerFetched(3, end, t0); err != nil || !slices.Equal(expand, []int32{1, 2, 3}) {
			t.Fatalf("follower 3 caught up: proposal %v (%v), want [1 2 3]", expand, err)
		}
		return p, end
	}
	// more appends records that follower 2 fetches and 3 does not.
	more := func(t *testing.T, p *Partition, at time.Time) int64 {
		end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 2)) + 2
		if _, err := p.FollowerFetched(2, end, at); err != nil {
			t.Fatal(err)
		}
		return end
	}

	t.Run("refused as ineligible", func(t *testing.T) {
		p, _ := setup(t)
		p.ISRChangeDone(ISROutcome{Refused: true, Ineligible: true})
		end2 := more(t, p, t0)
		if hw := p.HighWatermark(); hw != end2 {
			t.Fatalf("high watermark %d after the expansion was refused as ineligible, want %d (the ISR [1 2] has it)", hw, end2)
		}
	})
	t.Run("refused as ineligible after an unknown outcome", func(t *testing.T) {
		p, end := setup(t)
		p.ISRChangeDone(ISROutcome{}) // a timeout: the first try may still commit
		if retry := p.LaggingISR(t0, time.Hour); !slices.Equal(retry, []int32{1, 2, 3}) {
			t.Fatalf("outcome unknown: proposal %v, want [1 2 3] again", retry)
		}
		p.ISRChangeDone(ISROutcome{Refused: true, Ineligible: true})
		more(t, p, t0)
		if hw := p.HighWatermark(); hw != end {
			t.Fatalf("high watermark %d while the first try may still commit, want %d (follower 3's end)", hw, end)
		}
	})
	t.Run("refused otherwise", func(t *testing.T) {
		p, end := setup(t)
		p.ISRChangeDone(ISROutcome{Refused: true}) // a stale epoch: something else committed
		more(t, p, t0)
		if hw := p.HighWatermark(); hw != end {
			t.Fatalf("high watermark %d until the partition epoch moves, want %d (follower 3's end)", hw, end)
		}
	})
}
