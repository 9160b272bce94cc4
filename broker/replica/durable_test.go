package replica

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/topicconfig"
)

// TestDurableFollowerFetchOffsetIsFsynced: in durable mode
// (flush.messages=1) every fetch offset a follower sends its leader (a
// real Kafka-protocol leader, kfake, over loopback) is at most what the
// follower has fsynced when the leader reads it, and the follower still
// keeps up: all records replicated and fsynced.
func TestDurableFollowerFetchOffsetIsFsynced(t *testing.T) {
	leader := startKfakeLeader(t, 40)
	const self = 77
	follower := leader.follower(t, self, topicconfig.Typed(nil, map[string]string{"flush.messages": "1"}))

	// The leader checks each replica fetch against the follower's fsynced
	// end as it receives it.
	var mu sync.Mutex
	var violations []string
	fetches := 0
	leader.ControlKey(kmsg.Fetch.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		synced := follower.SyncedEnd()
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range req.(*kmsg.FetchRequest).Topics {
			for _, rp := range rt.Partitions {
				fetches++
				if rp.FetchOffset > synced {
					violations = append(violations, fmt.Sprintf("fetch offset %d, fsynced %d", rp.FetchOffset, synced))
				}
			}
		}
		return nil, nil, false
	})

	f := leader.follow(t, self, follower)
	caughtUp := func(end int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for follower.SyncedEnd() < end || follower.HighWatermark() < end {
			if time.Now().After(deadline) {
				t.Fatalf("follower at end %d, fsynced %d, high watermark %d; want %d", follower.LogEndOffset(), follower.SyncedEnd(), follower.HighWatermark(), end)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	caughtUp(40)
	leader.produce(t, 40, 70)
	caughtUp(70)
	f.Close()
	mu.Lock()
	defer mu.Unlock()
	if fetches < 2 || len(violations) > 0 {
		t.Fatalf("%d fetches; offsets past the fsynced end: %v", fetches, violations)
	}
}
