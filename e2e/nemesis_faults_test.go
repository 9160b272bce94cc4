//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// A nemesis fault does its damage and undoes it before it returns (a killed
// node is restarted, a paused one resumed, a cut healed), drawing every
// choice — which node, how long — from the scenario's seeded rng.
type nemesisFault struct {
	name string
	do   func(f *faultEnv)
}

type faultEnv struct {
	t      *testing.T
	nc     *nemesisCluster
	rng    *rand.Rand
	r      *nemesisReport
	adm    *kadm.Client
	topics []nemesisTopic
}

// between draws a duration in [lo, hi).
func (f *faultEnv) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(f.rng.Int64N(int64(hi-lo)))
}

// victim picks the leader of a random partition (a leader is where faults
// hurt), or a random node when metadata does not answer.
func (f *faultEnv) victim() int32 {
	topic := f.topics[f.rng.IntN(len(f.topics))]
	p := int32(f.rng.IntN(int(topic.partitions)))
	ctx := testContext(f.t, 5*time.Second)
	if m, err := f.adm.Metadata(ctx, topic.name); err == nil {
		if leader := m.Topics[topic.name].Partitions[p].Leader; f.nc.nodes[leader] != nil {
			return leader
		}
	}
	return int32(1 + f.rng.IntN(len(f.nc.nodes)))
}

func (f *faultEnv) note(format string, args ...any) {
	f.t.Logf("  nemesis: "+format, args...)
}

// killRestart: kill -9 a leader and restart it before the controller
// fences its session (within), or well after (its leaderships moved).
func killRestart(within bool) nemesisFault {
	name := "kill -9, restart after the session timeout"
	if within {
		name = "kill -9, restart within the session timeout"
	}
	return nemesisFault{name, func(f *faultEnv) {
		id := f.victim()
		f.nc.nodes[id].kill()
		wait := f.between(2*nemesisSession, 3*nemesisSession)
		if within {
			wait = f.between(0, nemesisSession/3)
		}
		f.note("kill -9 node %d, restart after %v", id, wait.Round(time.Millisecond))
		time.Sleep(wait)
		f.nc.restartNode(f.t, f.r, id)
	}}
}

// pauseZombie: SIGSTOP a leader past the session and replica lag timeouts
// (it is fenced and replaced while it still believes it leads), then
// SIGCONT: a zombie leader with clients still connected.
var pauseZombie = nemesisFault{"SIGSTOP a leader past the session and lag timeouts", func(f *faultEnv) {
	id := f.victim()
	d := f.between(nemesisLagMax+time.Second, 2*nemesisLagMax+time.Second)
	f.note("SIGSTOP node %d for %v", id, d.Round(time.Millisecond))
	f.nc.pause(id)
	time.Sleep(d)
	f.nc.resume(id)
}}

// cutLinks: cut a node off from the quorum and the other brokers (clients
// still reach it), or from the quorum only, or from the brokers only.
var cutLinks = nemesisFault{"link cut (broker↔controller, broker↔broker)", func(f *faultEnv) {
	id := f.victim()
	ctrl, data := true, true
	switch f.rng.IntN(3) {
	case 1:
		data = false
	case 2:
		ctrl = false
	}
	d := f.between(nemesisSession, 3*nemesisSession)
	f.note("cut node %d (controller links %v, broker links %v) for %v", id, ctrl, data, d.Round(time.Millisecond))
	f.nc.setCut(id, ctrl, data)
	time.Sleep(d)
	f.nc.setCut(id, false, false)
}}

// delayLinks: slow a node's links (a slow follower, a far controller) for
// a while, sometimes past the lag timeout.
var delayLinks = nemesisFault{"link delay", func(f *faultEnv) {
	id := f.victim()
	delay := f.between(20*time.Millisecond, 400*time.Millisecond)
	d := f.between(nemesisSession, 3*nemesisSession)
	f.note("delay node %d's links by %v for %v", id, delay.Round(time.Millisecond), d.Round(time.Millisecond))
	f.nc.setDelay(id, delay)
	time.Sleep(d)
	f.nc.setDelay(id, 0)
}}

// s3Errors: a share of object-store calls fail with 503 or hang and drop.
var s3Errors = nemesisFault{"object store 5xx and timeouts", func(f *faultEnv) {
	fail, hang := 0.1+0.4*f.rng.Float64(), 0.2*f.rng.Float64()
	d := f.between(2*time.Second, 5*time.Second)
	f.note("object store: %.0f%% 503, %.0f%% hang 3s, for %v", 100*fail, 100*hang, d.Round(time.Millisecond))
	f.nc.s3proxy.set(fail, hang, 3*time.Second, 0)
	time.Sleep(d)
	f.nc.s3proxy.set(0, 0, 0, 0)
}}

// s3SlowPutDeposed: PUTs take seconds, and the leader is killed or paused
// while its uploads are in flight, so a deposed leader is still uploading
// when its successor starts to.
var s3SlowPutDeposed = nemesisFault{"slow PUTs, uploader deposed mid-upload", func(f *faultEnv) {
	slow := f.between(time.Second, 4*time.Second)
	f.nc.s3proxy.set(0, 0, 0, slow)
	time.Sleep(f.between(500*time.Millisecond, 2*time.Second))
	id := f.victim()
	if f.rng.IntN(2) == 0 {
		f.note("PUTs take %v; SIGSTOP node %d mid-upload", slow.Round(time.Millisecond), id)
		f.nc.pause(id)
		time.Sleep(f.between(nemesisLagMax+time.Second, 2*nemesisLagMax))
		f.nc.resume(id)
	} else {
		f.note("PUTs take %v; kill -9 node %d mid-upload", slow.Round(time.Millisecond), id)
		f.nc.nodes[id].kill()
		time.Sleep(f.between(nemesisSession, 2*nemesisSession))
		f.nc.restartNode(f.t, f.r, id)
	}
	time.Sleep(slow)
	f.nc.s3proxy.set(0, 0, 0, 0)
}}

// fullDisk: a node's disk refuses writes (ENOSPC) for a while.
var fullDisk = nemesisFault{"full disk", func(f *faultEnv) {
	id := f.victim()
	d := f.between(2*time.Second, 4*time.Second)
	f.note("node %d: disk full for %v", id, d.Round(time.Millisecond))
	if _, err := f.nc.fs[id].do("enospc on"); err != nil {
		f.r.violation("node %d: lazyfs enospc on: %v", id, err)
		return
	}
	time.Sleep(d)
	if _, err := f.nc.fs[id].do("enospc off"); err != nil {
		f.r.violation("node %d: lazyfs enospc off: %v", id, err)
	}
	if !f.nc.nodes[id].running() {
		// A node whose Raft log cannot be written stops, as Kafka's does
		// when its metadata log directory fails; its supervisor restarts it.
		f.note("node %d stopped itself (its raft log could not be written); restarting it, as a supervisor would", id)
		f.nc.restartNode(f.t, f.r, id)
	}
}}

// slowDisk: every fsync on a node takes 50–300 ms for a while (a slow
// follower, or a leader whose durable acknowledgements lag).
var slowDisk = nemesisFault{"slow fsync", func(f *faultEnv) {
	id := f.victim()
	delay := f.between(50*time.Millisecond, 300*time.Millisecond)
	d := f.between(2*time.Second, 4*time.Second)
	f.note("node %d: fsync takes %v for %v", id, delay.Round(time.Millisecond), d.Round(time.Millisecond))
	if _, err := f.nc.fs[id].do(fmt.Sprintf("fsync-delay %d", delay.Milliseconds())); err != nil {
		f.r.violation("node %d: lazyfs fsync-delay: %v", id, err)
		return
	}
	time.Sleep(d)
	if _, err := f.nc.fs[id].do("fsync-delay 0"); err != nil {
		f.r.violation("node %d: lazyfs fsync-delay 0: %v", id, err)
	}
}}

// failingDisk: every fsync on a node fails with EIO for a while; a broker
// whose log failed stops using it until it restarts, so the operator's
// restart (kill -9, the page cache kept) ends the fault.
var failingDisk = nemesisFault{"failing fsync (EIO), then a restart", func(f *faultEnv) {
	id := f.victim()
	d := f.between(time.Second, 3*time.Second)
	f.note("node %d: fsync fails with EIO for %v, then kill -9 and restart", id, d.Round(time.Millisecond))
	if _, err := f.nc.fs[id].do("fsync-error on"); err != nil {
		f.r.violation("node %d: lazyfs fsync-error on: %v", id, err)
		return
	}
	time.Sleep(d)
	f.nc.nodes[id].kill()
	if _, err := f.nc.fs[id].do("fsync-error off"); err != nil {
		f.r.violation("node %d: lazyfs fsync-error off: %v", id, err)
	}
	f.nc.restartNode(f.t, f.r, id)
}}

// powerLoss: kill -9 a node and drop what it had not fsynced (its page
// cache), then restart it within the session timeout or after it.
func powerLoss(within bool) nemesisFault {
	name := "power loss of one node, back after the session timeout"
	if within {
		name = "power loss of one node, back within the session timeout"
	}
	return nemesisFault{name, func(f *faultEnv) {
		id := f.victim()
		wait := f.between(2*nemesisSession, 3*nemesisSession)
		if within {
			wait = f.between(0, nemesisSession/3)
		}
		f.nc.nodes[id].kill()
		f.note("power loss of node %d (%s), restart after %v", id, f.dropCache(id), wait.Round(time.Millisecond))
		time.Sleep(wait)
		f.nc.restartNode(f.t, f.r, id)
		f.healed()
	}}
}

// healed waits, after a power loss, until every partition is led with a
// full ISR again, then lets the workload write for a moment. In the
// page-cache mode, as in Kafka, an acknowledged write survives one
// machine's power loss because the others hold it: a second machine
// losing power before the first has caught up is a correlated failure of
// the kind only the durable mode survives. "One node at a time" means
// that; the all-nodes scenarios test the correlated case.
func (f *faultEnv) healed() {
	waitQuiet(f.t, f.adm, f.topics, f.r, 60*time.Second)
	time.Sleep(f.between(time.Second, 3*time.Second))
}

// powerLossAll: every node loses power at once.
var powerLossAll = nemesisFault{"power loss of every node at once", func(f *faultEnv) {
	for _, b := range f.nc.nodes {
		b.kill()
	}
	for id := range f.nc.nodes {
		f.note("power loss of node %d (%s)", id, f.dropCache(id))
	}
	time.Sleep(f.between(0, nemesisSession))
	f.restartAll()
	f.healed()
}}

// dropCache forgets a stopped node's unsynced writes and says how much.
func (f *faultEnv) dropCache(id int32) string {
	stats, _ := f.nc.fs[id].do("stats")
	if _, err := f.nc.fs[id].do("drop"); err != nil {
		f.r.violation("node %d: lazyfs drop: %v", id, err)
	}
	return fmt.Sprintf("before the drop: %s", stats)
}

// restartAll starts every stopped node together: they wait for a quorum.
func (f *faultEnv) restartAll() {
	done := make(chan struct{})
	n := 0
	for id, b := range f.nc.nodes {
		if b.running() {
			continue
		}
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			f.nc.restartNode(f.t, f.r, id)
		}()
	}
	for range n {
		<-done
	}
}
