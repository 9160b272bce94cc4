package partition

import (
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestAcksAllNotAnsweredAcrossATruncation (forced order): an acks=all
// append on leader 1 at epoch 1 that no follower has yet; leadership moves
// to broker 2 (epoch 2), which never had it; broker 1, now its follower,
// truncates the record away (DivergingEpoch) and replicates broker 2's
// different record at the same offset, with broker 2's high watermark past
// it. The wait for the lost append — checked only now, as WaitAll does
// when its wakeup comes after the fetcher ran, or when the produce request
// reaches awaitCommitted after the partition's other appends — must fail
// with NOT_LEADER_OR_FOLLOWER, as Kafka fails a delayed produce when its
// replica stops leading, and not be acknowledged because the high
// watermark passed its offset: the acknowledged record would be lost. The
// same holds once broker 1 leads again (epoch 3) and its follower has
// caught up: its high watermark passes the offset, but over broker 2's
// record.
func TestAcksAllNotAnsweredAcrossATruncation(t *testing.T) {
	for _, leadsAgain := range []bool{false, true} {
		name := "still following"
		if leadsAgain {
			name = "leading again"
		}
		t.Run(name, func(t *testing.T) {
			p := replica(t, t.TempDir(), 1, nil)
			p.ApplyAssignment(assignment(1, 1, []int32{1, 2}, []int32{1, 2}), t0)
			epoch := p.LeaderEpoch()
			end := mustAppend(t, p, batch(t, recordbatch.BuildOptions{}, "acked", 1)) + 1
			if done, code, _ := p.CommitStatus(end, epoch); done || code != 0 {
				t.Fatalf("before follower 2 fetched: done %v, code %d", done, code)
			}

			// Broker 2 leads at epoch 2 without the record and appends
			// another at offset 0.
			newLeader := replica(t, t.TempDir(), 2, nil)
			newLeader.ApplyAssignment(assignment(2, 2, []int32{1, 2}, []int32{1, 2}), t0)
			mustAppend(t, newLeader, batch(t, recordbatch.BuildOptions{}, "other", 1))
			p.ApplyAssignment(assignment(2, 2, []int32{1, 2}, []int32{1, 2}), t0)

			// Broker 1 follows: its fetch diverges, it truncates, fetches
			// again and takes broker 2's record and high watermark.
			diverging, err := newLeader.DivergingEpoch(p.FetchPosition())
			if err != nil || diverging == nil {
				t.Fatalf("broker 1's fetch position %+v: diverging %+v, %v", p.FetchPosition(), diverging, err)
			}
			if err := p.TruncateFollowing(diverging.EndOffset, 2); err != nil || p.LogEndOffset() != 0 {
				t.Fatalf("truncating to %d: %v, log end %d", diverging.EndOffset, err, p.LogEndOffset())
			}
			if _, _, err := newLeader.FollowerFetchedAt(1, p.FetchPosition(), -1, t0); err != nil {
				t.Fatal(err)
			}
			fetched, _ := newLeader.Read(0, 1<<20, newLeader.LogEndOffset(), true)
			if _, _, err := newLeader.FollowerFetchedAt(1, FetchPosition{Offset: 1, LastFetchedEpoch: 2}, -1, t0); err != nil || newLeader.HighWatermark() != 1 {
				t.Fatalf("broker 2's high watermark %d (%v), want 1", newLeader.HighWatermark(), err)
			}
			if err := p.AppendReplicated(fetched, newLeader.HighWatermark(), 2); err != nil {
				t.Fatal(err)
			}
			if got, _ := p.Read(0, 1<<20, 1, true); !bytes.Equal(got, fetched) || p.HighWatermark() != end {
				t.Fatalf("broker 1 does not hold broker 2's record at 0 below its high watermark %d", p.HighWatermark())
			}

			if leadsAgain {
				p.ApplyAssignment(assignment(1, 3, []int32{1, 2}, []int32{1, 2}), t0)
				if _, err := p.FollowerFetched(2, p.LogEndOffset(), t0); err != nil {
					t.Fatal(err)
				}
			}
			outcome := WaitAll([]Pending{{Partition: p, End: end, LeaderEpoch: epoch}}, time.Now().Add(time.Hour), nil)
			if outcome[0].Code != kerr.NotLeaderForPartition.Code {
				t.Fatalf("acks=all for the record truncated away: code %d (%s), want NOT_LEADER_OR_FOLLOWER", outcome[0].Code, outcome[0].Message)
			}
		})
	}
}
