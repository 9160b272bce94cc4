//go:build e2e

package e2e

import (
	"bufio"
	"maps"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// checkBucket: once the cluster is quiet the bucket holds no object the
// manifest does not name (orphans) and none the manifest names is missing
// or of the wrong size (`strata tiering scrub`). Late uploads of a deposed
// leader get a while to be found and deleted.
func checkBucket(t *testing.T, nc *nemesisCluster, r *nemesisReport) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, clean := scrub(t, nc.nodes[1])
		if clean {
			t.Logf("scrub: %s", strings.SplitN(out, "\n", 2)[0])
			return
		}
		if time.Now().After(deadline) {
			sc := bufio.NewScanner(strings.NewReader(out))
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "ORPHAN"):
					r.orphans++
					r.evidenceOf("orphan: %s", line)
				case strings.HasPrefix(line, "MISSING"), strings.HasPrefix(line, "WRONG SIZE"):
					r.violation("scrub: %s", line)
				}
			}
			if r.orphans == 0 && !strings.Contains(out, "MISSING") && !strings.Contains(out, "WRONG SIZE") {
				r.violation("scrub not clean: %.500s", out)
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// remoteEnds answers ListOffsets with timestamp -5 (the latest tiered
// offset, KIP-1005) for every partition of a topic; -1 where nothing is
// tiered or the partition did not answer.
func remoteEnds(t *testing.T, seeds []string, tp nemesisTopic) map[int32]int64 {
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...))
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = tp.name
	for p := range tp.partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -5
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	out := map[int32]int64{}
	for p := range tp.partitions {
		out[p] = -1
	}
	for _, shard := range cl.RequestSharded(testContext(t, 30*time.Second), req) {
		if shard.Err != nil {
			continue
		}
		for _, t := range shard.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == 0 {
					out[p.Partition] = p.Offset
				}
			}
		}
	}
	return out
}

// quietRemoteEnds waits until the topic's remote ends have not moved for
// a few upload passes and returns them. An upload pass commits a segment
// in the Raft manifest and then rewrites the partition's manifest snapshot
// in the bucket (what a recovery from the bucket alone reads): a cluster
// lost between the two recovers up to the segment before (the objects of
// the last one are in the bucket but no snapshot names them; a CI run
// killed the cluster in that window). The checker asks "quiet": the
// cluster's last pass over each partition has finished.
func quietRemoteEnds(t *testing.T, seeds []string, tp nemesisTopic) map[int32]int64 {
	return untilStill(func() map[int32]int64 { return remoteEnds(t, seeds, tp) }, maps.Equal)
}

// untilStill reads a value until it has not changed for 2 s (at most 30 s)
// and returns the last one read.
func untilStill[T any](read func() T, equal func(a, b T) bool) T {
	const quiet = 2 * time.Second
	last := read()
	stableSince := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && time.Since(stableSince) < quiet {
		time.Sleep(250 * time.Millisecond)
		if now := read(); !equal(now, last) {
			last, stableSince = now, time.Now()
		}
	}
	return last
}

// checkRecovery recovers the tiered topic from the bucket alone into a
// fresh broker (the cluster stopped first: nothing else writes to the
// bucket) and reads back every acknowledged record at or below the remote
// end the cluster had committed.
func checkRecovery(t *testing.T, nc *nemesisCluster, tp nemesisTopic, ledger *ackLedger, r *nemesisReport) {
	committed := quietRemoteEnds(t, nc.seeds(), tp)
	for _, b := range nc.nodes {
		b.kill()
	}
	fresh := startBroker(t, "--object-store", nc.s3.url, "--object-store-prefix", nc.prefix, "--remote-log-manager-task-interval-ms", "200")
	out, err := exec.Command(strataBin, "tiering", "recover", "--admin", fresh.admin).CombinedOutput()
	if err != nil {
		r.violation("strata tiering recover: %v: %.1000s", err, out)
		return
	}
	recovered := remoteEnds(t, []string{fresh.addr}, tp)
	for p, end := range committed {
		if recovered[p] < end {
			r.violation("recovery of %s[%d] reaches offset %d, the cluster had tiered up to %d", tp.name, p, recovered[p], end)
		}
	}
	read, unread := readBack(t, []string{fresh.addr}, tp, r)
	lost := 0
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for id, at := range ledger.acked {
		if at.topic != tp.name || at.offset > committed[at.partition] || unread[at.partition] {
			continue // unread partitions are a violation already
		}
		if !containsPos(read[id], position(at.partition, at.offset)) {
			lost++
			r.evidenceOf("lost in recovery: %s acknowledged at %s[%d]@%d (tiered up to %d), read at %s", id, tp.name, at.partition, at.offset, committed[at.partition], positions(read[id]))
		}
	}
	r.lost += lost
	t.Logf("recovered %s from the bucket alone into a fresh broker: remote ends %v (the cluster's %v), %d acknowledged records below them lost", tp.name, recovered, committed, lost)
}
