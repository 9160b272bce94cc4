//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-log/strata/tiering/tieringtest"
)

// nemesisCluster is a 3-node cluster whose controller and inter-broker
// links go through linkProxies (cut and delayed per node), optionally
// tiering to versitygw through an s3FaultProxy, and optionally with every
// node's data dir (partition logs and metadata/ alike) on its own lazyFS.
type nemesisCluster struct {
	*cluster
	ctrlProxy, dataProxy map[int32]*linkProxy
	fs                   map[int32]*lazyFS // nil without lost-page-cache faults

	// Tiering: the real S3 server, the fault proxy the brokers talk to.
	s3      *s3Fixture
	s3proxy *s3FaultProxy
	prefix  string

	mu               sync.Mutex
	cutCtrl, cutData map[int32]bool
	paused           map[int32]bool
	logKept          map[int32]bool // a failed restart's log is in the artifacts
	lazyfsBinary     string
}

// Timings of the nemesis cluster (clusterTimingFlags: heartbeats every
// 200 ms, fenced after 1.5 s); a follower 2 s behind leaves the ISR.
const (
	nemesisSession   = 1500 * time.Millisecond
	nemesisLagMax    = 2000 * time.Millisecond
	nemesisLagMaxArg = "2000"
)

type nemesisClusterSpec struct {
	tiered bool
	lazyfs bool
	flags  []string // more serve flags for every node
}

func startNemesisCluster(t *testing.T, spec nemesisClusterSpec, seed uint64) *nemesisCluster {
	t.Helper()
	nc := &nemesisCluster{
		ctrlProxy: map[int32]*linkProxy{}, dataProxy: map[int32]*linkProxy{},
		cutCtrl: map[int32]bool{}, cutData: map[int32]bool{}, paused: map[int32]bool{}, logKept: map[int32]bool{},
	}
	if spec.lazyfs {
		nc.lazyfsBinary = requireLazyFS(t)
		nc.fs = map[int32]*lazyFS{}
	}
	var storeFlags []string
	if spec.tiered {
		server := startS3(t)
		nc.s3 = &s3Fixture{server: server, url: server.URL("strata-e2e"), bucket: "strata-e2e", mc: minioClient(t, server)}
		nc.s3proxy = startS3FaultProxy(t, server.Endpoint, seed)
		nc.prefix = fmt.Sprintf("nemesis-%d", time.Now().UnixNano()%1_000_000)
		proxied := fmt.Sprintf("s3://%s?endpoint=%s&region=%s&use_path_style=true", nc.s3.bucket, nc.s3proxy.endpoint(), tieringtest.S3Region)
		storeFlags = []string{"--object-store", proxied, "--object-store-prefix", nc.prefix,
			"--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300"}
	}
	// The proxies' listeners are open before the cluster picks its ports,
	// so they cannot take one of them.
	listeners := make([]net.Listener, 6)
	for i := range listeners {
		listeners[i] = listenLoopback(t)
	}
	ctrlCut := func(id int32) bool { nc.mu.Lock(); defer nc.mu.Unlock(); return nc.cutCtrl[id] }
	dataCut := func(id int32) bool { nc.mu.Lock(); defer nc.mu.Unlock(); return nc.cutData[id] }
	nc.cluster = startClusterWith(t, 3, func(id int32, b *brokerProcess) (string, []string) {
		if spec.lazyfs {
			node := filepath.Dir(b.dataDir)
			nc.fs[id] = startLazyFS(t, nc.lazyfsBinary, filepath.Join(node, "backing"), b.dataDir)
		}
		internal := freePort(t)
		nc.ctrlProxy[id] = startLinkProxyOn(t, listeners[2*(id-1)], id, b.ctrl, true, ctrlCut)
		nc.dataProxy[id] = startLinkProxyOn(t, listeners[2*(id-1)+1], id, internal, false, dataCut)
		flags := []string{"--controller-advertise", nc.ctrlProxy[id].addr(),
			"--listeners", "CLIENT=" + b.addr + ",INTERNAL=" + internal,
			"--advertise", "CLIENT=" + b.addr + ",INTERNAL=" + nc.dataProxy[id].addr(),
			"--inter-broker-listener", "INTERNAL", "--replica-lag-time-max-ms", nemesisLagMaxArg}
		flags = append(append(flags, storeFlags...), spec.flags...)
		return nc.ctrlProxy[id].addr(), flags
	})
	return nc
}

// setCut cuts (or heals) a node's controller and inter-broker links.
func (nc *nemesisCluster) setCut(id int32, ctrl, data bool) {
	nc.mu.Lock()
	nc.cutCtrl[id], nc.cutData[id] = ctrl, data
	nc.mu.Unlock()
	isCut := func(m map[int32]bool) func(int32) bool {
		return func(x int32) bool { nc.mu.Lock(); defer nc.mu.Unlock(); return m[x] }
	}
	for _, p := range nc.ctrlProxy {
		p.cut(isCut(nc.cutCtrl))
	}
	for _, p := range nc.dataProxy {
		p.cut(isCut(nc.cutData))
	}
}

// setDelay delays every link into node id (controller and inter-broker).
func (nc *nemesisCluster) setDelay(id int32, d time.Duration) {
	nc.ctrlProxy[id].setDelay(d)
	nc.dataProxy[id].setDelay(d)
}

// healAll ends every fault: links whole and prompt, processes running,
// the object store answering, disks with room.
func (nc *nemesisCluster) healAll(t *testing.T, r *nemesisReport) {
	for id := range nc.nodes {
		nc.setCut(id, false, false)
		nc.setDelay(id, 0)
		if fs := nc.fs[id]; fs != nil {
			for _, off := range []string{"enospc off", "fsync-delay 0", "fsync-error off"} {
				if _, err := fs.do(off); err != nil {
					r.violation("node %d: lazyfs %s: %v", id, off, err)
				}
			}
		}
		nc.resume(id)
		if !nc.nodes[id].running() {
			nc.restartNode(t, r, id)
		}
	}
	if nc.s3proxy != nil {
		nc.s3proxy.set(0, 0, 0, 0)
	}
}

func (nc *nemesisCluster) pause(id int32) {
	nc.mu.Lock()
	nc.paused[id] = true
	nc.mu.Unlock()
	nc.nodes[id].sendSignal(syscall.SIGSTOP)
}

func (nc *nemesisCluster) resume(id int32) {
	nc.mu.Lock()
	was := nc.paused[id]
	delete(nc.paused, id)
	nc.mu.Unlock()
	if was {
		nc.nodes[id].sendSignal(syscall.SIGCONT)
	}
}

// isPaused: the monitor does not wait on a frozen node.
func (nc *nemesisCluster) isPaused(id int32) bool {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	return nc.paused[id]
}

// restartNode starts a killed node again on its ports (the proxies point
// there); a node that does not come back is a finding (recorded with the
// end of its log; healAll tries once more), not the end of the run.
func (nc *nemesisCluster) restartNode(t *testing.T, r *nemesisReport, id int32) {
	if err := nc.nodes[id].start(); err != nil {
		lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
		why := lines[len(lines)-1] // the line strata exits with
		for _, l := range lines {
			if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
				why = l
				break
			}
		}
		r.violation("node %d did not restart: %s", id, why)
		nc.mu.Lock()
		first := !nc.logKept[id]
		nc.logKept[id] = true
		nc.mu.Unlock()
		if first {
			r.evidenceOf("node %d's log when it first did not restart: %s", id, nc.keepLog(t, r, id))
		}
	}
}

// keepLog copies a node's log as it is now into the artifacts directory
// (the test's temporary directory goes away) and returns the copy's path.
func (nc *nemesisCluster) keepLog(t *testing.T, r *nemesisReport, id int32) string {
	data, err := os.ReadFile(nc.nodes[id].logPath)
	if err != nil {
		return err.Error()
	}
	path := filepath.Join(artifactDir(t), fmt.Sprintf("nemesis-%s-seed%d-node%d-%s.log", r.scenario, r.seed, id, time.Now().Format("150405.000")))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err.Error()
	}
	return path
}
