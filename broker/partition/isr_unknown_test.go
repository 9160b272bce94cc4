package partition

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// assignmentAt is partition 0 of replicas [1 2] led by broker 1 at leader
// epoch 1, with isr at partition epoch.
func assignmentAt(partitionEpoch int32, isr ...int32) metadata.Partition {
	return metadata.Partition{Index: 0, Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, ISR: isr, PartitionEpoch: partitionEpoch}
}

// unknownExpansion is broker 1 leading with the ISR [1] at partition epoch
// 4 (assignmentAt(4, 1)), 3 records appended, whose proposal of [1 2]
// once follower 2 caught up (to caughtUp) timed out: its outcome is
// unknown, and the first try may still be queued at the controller.
func unknownExpansion(t *testing.T) (p *Partition, caughtUp int64) {
	t.Helper()
	p = replica(t, t.TempDir(), 1, nil)
	p.ApplyAssignment(assignmentAt(4, 1), t0)
	caughtUp = mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "a", 3)) + 3
	if expand, err := p.FollowerFetched(2, caughtUp, t0); err != nil || !slices.Equal(expand, []int32{1, 2}) {
		t.Fatalf("follower 2 caught up: proposal %v (%v), want [1 2]", expand, err)
	}
	p.ISRChangeDone(ISROutcome{}) // a timeout
	return p, caughtUp
}

// checkISRHasEveryAcknowledgedRecord checks that no member of p's ISR has
// its log (ending at logEnd[member]) end below p's high watermark.
func checkISRHasEveryAcknowledgedRecord(t *testing.T, p *Partition, logEnd map[int32]int64) {
	t.Helper()
	for _, r := range p.Assignment().ISR {
		if logEnd[r] < p.HighWatermark() {
			t.Fatalf("broker %d is in the ISR %v with its log ending at %d, below the high watermark %d: electing it loses acknowledged offsets %d..%d",
				r, p.Assignment().ISR, logEnd[r], p.HighWatermark(), logEnd[r], p.HighWatermark()-1)
		}
	}
}

// TestUnknownExpansionCountsUntilItsOutcomeIsApplied (forced order):
// broker 1 leads with the ISR [1] at partition epoch 4 and proposes [1 2]
// once follower 2 caught up; the proposal times out (it may still
// commit). Follower 2 then stops fetching for longer than
// replica.lag.time.max.ms while broker 1 appends more. The lag check does
// not shrink around it: it proposes the unknown expansion again, as it
// was, and follower 2 keeps counting for the high watermark, so nothing
// follower 2 lacks is acknowledged. Whichever way the controller decided
// — the first try committed, the retry did, or neither (something else
// moved the partition on) — once that is applied every ISR member has
// every record below the high watermark.
func TestUnknownExpansionCountsUntilItsOutcomeIsApplied(t *testing.T) {
	const lag = 30 * time.Second
	for _, tc := range []struct {
		name  string
		retry ISROutcome         // the retry's answer
		then  metadata.Partition // the assignment applied after it
	}{
		{"the first try committed", ISROutcome{Refused: true}, assignmentAt(5, 1, 2)},
		{"the retry committed", ISROutcome{Committed: new(assignmentAt(5, 1, 2))}, assignmentAt(5, 1, 2)},
		{"neither committed", ISROutcome{Refused: true}, assignmentAt(5, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, caughtUp := unknownExpansion(t)

			end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 2)) + 2
			later := t0.Add(2 * lag)
			if proposal := p.LaggingISR(later, lag); !slices.Equal(proposal, []int32{1, 2}) {
				t.Fatalf("follower 2 lagging while its expansion's outcome is unknown: proposal %v, want [1 2] again", proposal)
			}
			if hw := p.HighWatermark(); hw != caughtUp {
				t.Fatalf("high watermark %d while follower 2, which ends at %d, may be in the ISR", hw, caughtUp)
			}

			p.ISRChangeDone(tc.retry)
			p.ApplyAssignment(tc.then, later)
			checkISRHasEveryAcknowledgedRecord(t, p, map[int32]int64{1: end, 2: caughtUp})
			if !slices.Contains(tc.then.ISR, 2) && p.HighWatermark() != end {
				t.Fatalf("high watermark %d once the expansion can no longer commit, want %d", p.HighWatermark(), end)
			}
		})
	}
}

// TestUnknownExpansionNotDroppedByANoOpShrink (forced order): broker 1
// leads with the ISR [1] at partition epoch 4 and proposes [1 2] once
// follower 2 caught up; the proposal times out, though it still sits in
// the controller's queue. The retry is refused as ineligible (broker 2
// is fenced now), so follower 2 keeps counting: the first try may still
// commit. Follower 2 lags; broker 1 appends more. Before, the lag check
// then proposed follower 2 "out" — the ISR [1], what the partition
// already was — and the controller's answer to that no-op (the partition
// as it was, at epoch 4) ended follower 2's count: the high watermark
// passed its log end, acks=all produces were acknowledged without it,
// and then broker 2 was unfenced and the first try committed at epoch 4,
// putting follower 2, lacking those records, into the ISR. A no-op moves
// no partition epoch and so fences no earlier proposal: it is not
// proposed while one may still commit. The ISR as it is with the leader
// epoch bumped is (the lag check's way to stop waiting for follower 2):
// committed, it moves the partition epoch, and the first try can no
// longer commit.
func TestUnknownExpansionNotDroppedByANoOpShrink(t *testing.T) {
	const lag = 30 * time.Second
	p, caughtUp := unknownExpansion(t)
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 2)) + 2
	later := t0.Add(2 * lag)
	if retry := p.LaggingISR(later, lag); !slices.Equal(retry, []int32{1, 2}) {
		t.Fatalf("outcome unknown: proposal %v, want [1 2] again", retry)
	}
	p.ISRChangeDone(ISROutcome{Refused: true, Ineligible: true}) // broker 2 is fenced
	// Broker 2 is unfenced later, and the first try commits — unless the
	// partition epoch has moved past 4 by then.
	then := assignmentAt(5, 1, 2)
	if proposal := p.LaggingISR(later, lag); proposal != nil {
		if !slices.Equal(proposal, []int32{1}) || p.ISRChangeBasis().PartitionEpoch != 4 {
			t.Fatalf("proposal %v at partition epoch %d, want [1] at 4", proposal, p.ISRChangeBasis().PartitionEpoch)
		}
		// The controller at partition epoch 4 with the ISR [1]: a change
		// to the same ISR is a no-op, answered with the partition as is;
		// with the leader epoch bumped it is committed at partition epoch
		// 5, and the first try, computed at 4, is refused from then on.
		answer := assignmentAt(4, 1)
		if p.ISRChangeBumpsLeaderEpoch() {
			answer = assignmentAt(5, 1)
			answer.LeaderEpoch++
			then = answer
		}
		p.ISRChangeDone(ISROutcome{Committed: &answer})
	}
	p.ApplyAssignment(then, later)
	checkISRHasEveryAcknowledgedRecord(t, p, map[int32]int64{1: end, 2: caughtUp})
}

// TestLeaderEpochBumpRetriedAsABump (forced order): broker 1 leads with
// the ISR [1] at partition epoch 4; follower 2's expansion times out, its
// retry is refused as ineligible (broker 2 fenced), and follower 2, gone,
// lags. The lag check proposes the ISR as it is with the leader epoch
// bumped, which would fence the first try. When the bump's own outcome is
// unknown, follower 2 keeps counting, and the bump is proposed again as a
// bump: retried as the ISR alone it would be the no-op whose answer, at
// the same partition epoch, ends follower 2's count without fencing the
// first try. Once the bump is applied, follower 2 no longer counts.
func TestLeaderEpochBumpRetriedAsABump(t *testing.T) {
	const lag = 30 * time.Second
	p, caughtUp := unknownExpansion(t)
	if retry := p.LaggingISR(t0, lag); !slices.Equal(retry, []int32{1, 2}) || p.ISRChangeBumpsLeaderEpoch() {
		t.Fatalf("outcome unknown: proposal %v (bump %t), want [1 2] again, no bump", retry, p.ISRChangeBumpsLeaderEpoch())
	}
	p.ISRChangeDone(ISROutcome{Refused: true, Ineligible: true}) // broker 2 is fenced
	end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "b", 2)) + 2

	later := t0.Add(2 * lag)
	for try := 1; try <= 2; try++ {
		if proposal := p.LaggingISR(later, lag); !slices.Equal(proposal, []int32{1}) || !p.ISRChangeBumpsLeaderEpoch() || p.ISRChangeBasis().PartitionEpoch != 4 {
			t.Fatalf("try %d: proposal %v (bump %t) at partition epoch %d, want [1] with the leader epoch bumped at 4",
				try, proposal, p.ISRChangeBumpsLeaderEpoch(), p.ISRChangeBasis().PartitionEpoch)
		}
		if try == 1 {
			p.ISRChangeDone(ISROutcome{}) // a timeout
			if hw := p.HighWatermark(); hw != caughtUp {
				t.Fatalf("high watermark %d while the first try may still commit, want %d (follower 2's end)", hw, caughtUp)
			}
		}
	}
	bumped := assignmentAt(5, 1)
	bumped.LeaderEpoch++
	p.ISRChangeDone(ISROutcome{Committed: &bumped})
	p.ApplyAssignment(bumped, later)
	if hw := p.HighWatermark(); hw != end {
		t.Fatalf("high watermark %d once the bump is applied (the first try can no longer commit), want %d", hw, end)
	}
	if proposal := p.LaggingISR(later.Add(2*lag), lag); proposal != nil {
		t.Fatalf("after the bump: proposal %v, want none", proposal)
	}
}
