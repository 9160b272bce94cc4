package replica

import (
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/metadata"
)

// TestThrottle: an unlimited throttle never holds traffic back; a limited
// one lets a second's worth through, then holds throttled traffic until
// the rate has paid for what went over, and a new rate applies at once.
func TestThrottle(t *testing.T) {
	clock := time.Unix(1000, 0)
	throttle := NewThrottle(func() time.Time { return clock })
	throttle.Record(1 << 30)
	if throttle.Delay() > 0 {
		t.Fatal("unlimited throttle exceeded")
	}
	throttle.SetRate(1000)
	if got := throttle.Allowance(); got != 1000 {
		t.Fatalf("allowance %d at the start, want a second's worth (1000)", got)
	}
	throttle.Record(400)
	if got := throttle.Allowance(); got != 600 {
		t.Fatalf("allowance %d after 400 bytes, want 600", got)
	}
	throttle.Record(600)
	if throttle.Delay() > 0 {
		t.Fatal("exceeded within one second's worth")
	}
	throttle.Record(500)
	if got := throttle.Delay(); got != 500*time.Millisecond {
		t.Fatalf("delay %v after 500 bytes over a 1000 B/s rate, want 500ms", got)
	}
	clock = clock.Add(250 * time.Millisecond)
	if got := throttle.Delay(); got != 250*time.Millisecond {
		t.Fatalf("delay %v a quarter second later, want 250ms", got)
	}
	clock = clock.Add(250 * time.Millisecond)
	if throttle.Delay() > 0 {
		t.Fatal("still exceeded once the rate paid for the excess")
	}
	// Idle time accrues at most one second's worth.
	clock = clock.Add(time.Hour)
	throttle.Record(1001)
	if throttle.Delay() == 0 || throttle.Allowance() != 0 {
		t.Fatal("an idle hour let more than a second's worth through")
	}
	// Kafka's default (Long.MAX_VALUE) is unlimited.
	throttle.SetRate(math.MaxInt64)
	if throttle.Delay() > 0 || throttle.Allowance() != math.MaxInt64 || throttle.Rate() != 0 {
		t.Fatal("Long.MAX_VALUE is not unlimited")
	}
}

// TestFollowerThrottleHoldsAddingReplica: a fetcher of a partition this
// broker is being added to (throttled) fetches while under
// follower.replication.throttled.rate, then sends nothing for it until the
// rate has paid for what it fetched; the clock is the test's.
func TestFollowerThrottleHoldsAddingReplica(t *testing.T) {
	leader := startKfakeLeader(t, 50)
	const self = 77
	follower := leader.follower(t, self, topicconfig.Values{})
	clock := time.Unix(1000, 0)
	throttle := NewThrottle(func() time.Time { return clock })
	throttle.SetRate(100) // bytes per second
	client, err := kgo.NewClient(kgo.SeedBrokers(leader.address))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	f := NewFetchers(FetchersConfig{NodeID: self, Logger: slog.New(slog.DiscardHandler), Throttle: throttle})
	t.Cleanup(f.Close)
	rf := &fetcher{f: f, leader: leaderKey{id: leader.id, address: leader.address}, client: client, partitions: map[*partition.Partition]*followed{}}
	rf.assign(map[*partition.Partition]*followed{follower: {part: follower, topic: leader.topic, epoch: leader.epoch, throttled: true}})
	round := func() error { return rf.fetchOnce(leader.ctx, rf.snapshot()) }

	// Under the rate: each fetch asks for what the rate allows now (here
	// the first second's 100 bytes; a batch comes whole), until the
	// traffic is over the rate and the partition is left out.
	var throttled *throttledError
	rounds := 0
	for {
		before := follower.LogEndOffset()
		err := round()
		if errors.As(err, &throttled) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if follower.LogEndOffset() <= before {
			t.Fatalf("round %d under the rate fetched nothing", rounds)
		}
		if rounds++; rounds > 10 {
			t.Fatal("never over a 100 B/s rate")
		}
	}
	held := follower.LogEndOffset()
	if held >= 50 || throttled.delay <= 0 {
		t.Fatalf("held at %d of 50 (delay %v): the rate did not bound the catch-up", held, throttled.delay)
	}
	if err := round(); !errors.As(err, &throttled) || follower.LogEndOffset() != held {
		t.Fatalf("over the rate: %v, at %d (held at %d)", err, follower.LogEndOffset(), held)
	}
	// Once the rate has paid for it, fetching resumes.
	clock = clock.Add(throttled.delay + time.Second)
	if err := round(); err != nil {
		t.Fatal(err)
	}
	if end := follower.LogEndOffset(); end <= held {
		t.Fatalf("follower still at %d after the throttle allowed it", end)
	}
	// Unthrottled (the rate lifted), it catches up at once.
	throttle.SetRate(0)
	leader.produce(t, 50, 60)
	for range 3 {
		if err := round(); err != nil {
			t.Fatal(err)
		}
	}
	if end := follower.LogEndOffset(); end != 60 {
		t.Fatalf("follower at %d unthrottled, want 60", end)
	}
}

// TestFollowerThrottledReplicas: a follower counts its fetching against
// follower.replication.throttled.rate while a reassignment adds it, or
// while it is outside the ISR and the topic's
// follower.replication.throttled.replicas names it ('*' names every
// replica); never while in sync.
func TestFollowerThrottledReplicas(t *testing.T) {
	topic := func(list string, p metadata.Partition) metadata.Topic {
		tp := metadata.Topic{Name: "t", Partitions: []metadata.Partition{p}}
		if list != "" {
			tp.Configs = map[string]string{topicconfig.FollowerReplicationThrottledReplicas: list}
		}
		return tp
	}
	outOfSync := metadata.Partition{Replicas: []int32{1, 3}, ISR: []int32{1}, Leader: 1}
	inSync := metadata.Partition{Replicas: []int32{1, 3}, ISR: []int32{1, 3}, Leader: 1}
	adding := metadata.Partition{Replicas: []int32{1, 3}, ISR: []int32{1}, Leader: 1, AddingReplicas: []int32{3}}
	tests := []struct {
		name string
		t    metadata.Topic
		want bool
	}{
		{"unlisted", topic("", outOfSync), false},
		{"adding", topic("", adding), true},
		{"listed out of sync", topic("0:3", outOfSync), true},
		{"listed in sync", topic("0:3", inSync), false},
		{"another broker listed", topic("0:1,1:3", outOfSync), false},
		{"wildcard", topic("*", outOfSync), true},
	}
	for _, tt := range tests {
		if got := followerThrottled(tt.t, 0, 3); got != tt.want {
			t.Errorf("%s: throttled %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFollowerThrottleSparesInSyncAddingReplica: an adding replica that
// has joined the ISR (the reassignment waits for another one) no longer
// counts its fetching against follower.replication.throttled.rate: as in
// Kafka (shouldFollowerThrottle), an in-sync replica is never throttled,
// or it would hold the leader's high watermark to the throttled rate.
func TestFollowerThrottleSparesInSyncAddingReplica(t *testing.T) {
	inSync := metadata.Topic{Name: "t", Partitions: []metadata.Partition{{Replicas: []int32{1, 3, 4}, Leader: 1, ISR: []int32{1, 3},
		AddingReplicas: []int32{3, 4}}}}
	if followerThrottled(inSync, 0, 3) {
		t.Error("the in-sync adding replica 3 is throttled")
	}
	if !followerThrottled(inSync, 0, 4) {
		t.Error("the adding replica 4, not in sync, is not throttled")
	}
}
