//go:build e2e

// Command strata-groupmember is one franz-go consumer group member for the
// e2e fault tests, run as its own process so tests can SIGTERM, SIGSTOP and
// restart it.
//
// Stdout, one line per event:
//
//	<partition> <offset> <value>    a consumed record (printed before commit)
//	# committed <partition> <next>  a commit the broker acknowledged
//	# assigned|revoked|lost <p,...> a change of assignment
//	# meta <member-id> <generation> whenever the member id or generation changes
//
// Records are committed synchronously after they are printed, and rebalances
// are blocked while a polled batch is processed (commit after process). On
// SIGTERM/SIGINT the member finishes its batch and closes the client: a
// dynamic member leaves the group, a static one (--instance-id) does not.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var outMu sync.Mutex

func emit(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func parts(m map[string][]int32, topic string) string {
	ps := append([]int32(nil), m[topic]...)
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ",")
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	group := flag.String("group", "", "group id")
	topic := flag.String("topic", "", "topic")
	instanceID := flag.String("instance-id", "", "group.instance.id (static membership) if set")
	balancer := flag.String("balancer", "cooperative-sticky", "range|cooperative-sticky")
	session := flag.Duration("session-timeout", 6*time.Second, "session timeout")
	flag.Parse()
	if *group == "" || *topic == "" {
		fmt.Fprintln(os.Stderr, "--group and --topic are required")
		os.Exit(2)
	}
	var bal kgo.GroupBalancer
	switch *balancer {
	case "range":
		bal = kgo.RangeBalancer()
	case "cooperative-sticky":
		bal = kgo.CooperativeStickyBalancer()
	default:
		fmt.Fprintln(os.Stderr, "unknown balancer", *balancer)
		os.Exit(2)
	}
	t := *topic
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(t),
		kgo.Balancers(bal),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(*session),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.FetchMaxWait(300 * time.Millisecond),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			emit("# assigned %s", parts(a, t))
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			emit("# revoked %s", parts(r, t))
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			emit("# lost %s", parts(r, t))
		}),
	}
	if *instanceID != "" {
		opts = append(opts, kgo.InstanceID(*instanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	go func() {
		var lastID string
		lastGen := int32(-2)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			id, gen := cl.GroupMetadata()
			if id != lastID || gen != lastGen {
				emit("# meta %s %d", id, gen)
				lastID, lastGen = id, gen
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachError(func(topic string, p int32, err error) {
			if err != context.Canceled {
				fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v\n", topic, p, err)
			}
		})
		recs := fetches.Records()
		if len(recs) > 0 {
			next := map[int32]int64{}
			for _, r := range recs {
				emit("%d %d %s", r.Partition, r.Offset, r.Value)
				next[r.Partition] = r.Offset + 1
			}
			cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err := cl.CommitRecords(cctx, recs...)
			cancel()
			if err != nil {
				fmt.Fprintf(os.Stderr, "commit: %v\n", err)
			} else {
				for p, o := range next {
					emit("# committed %d %d", p, o)
				}
			}
		}
		cl.AllowRebalance()
	}
	cl.Close()
	fmt.Fprintln(os.Stderr, "closed")
}
