//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Issue 14's probes against the admin listener, replayed on the real
// binary: each is refused and leaves the voter set as it was. And the way
// back from a quorum whose majority is gone: strata cluster recover-quorum.

// adminProbe is one raw HTTP request to an admin listener.
type adminProbe struct {
	method, path, body  string
	contentType, origin string
	host, token         string
}

// send sends the probe and returns the status and body.
func (p adminProbe) send(t *testing.T, admin string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(p.method, "http://"+admin+p.path, strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	if p.contentType != "" {
		req.Header.Set("Content-Type", p.contentType)
	}
	if p.origin != "" {
		req.Header.Set("Origin", p.origin)
	}
	if p.host != "" {
		req.Host = p.host
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.method, p.path, err)
	}
	defer resp.Body.Close()
	// Enough for every check here; a profile would flood a failure message.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// votersOf reads GET /v1/cluster's voters as id@address.
func votersOf(t *testing.T, admin string) string {
	t.Helper()
	return votersOfWithToken(t, admin, "")
}

// votersOfWithToken is votersOf on a node with an admin token.
func votersOfWithToken(t *testing.T, admin, token string) string {
	t.Helper()
	status, body := adminProbe{method: http.MethodGet, path: "/v1/cluster", token: token}.send(t, admin)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/cluster: %d %s", status, body)
	}
	var s clusterStatus
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range s.Voters {
		out = append(out, fmt.Sprintf("%d@%s voting=%t", v.NodeID, v.Address, v.Voting))
	}
	return strings.Join(out, ",")
}

// strataOutput runs the binary and returns its stdout and stderr together;
// it fails the test unless the exit code is want.
func strataOutput(t *testing.T, want int, args ...string) string {
	t.Helper()
	out, err := exec.Command(strataBin, args...).CombinedOutput()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != want {
		t.Fatalf("strata %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return string(out)
}

// unreachableVoter is issue 14's add-voter body: a voter nobody runs.
const unreachableVoter = `{"node_id":9,"address":"127.0.0.1:1"}`

// TestAdminIssueProbe replays the issue's request on a default node
// (loopback admin listener, no token file: the operator routes are open to
// local tools): POST /v1/voters as text/plain from a foreign Origin, which
// any web page the operator has open can make the browser send. It is
// refused, as are its variants, and the voter set is unchanged; the
// node's own JSON request still works (it is the CLI's).
func TestAdminIssueProbe(t *testing.T) {
	b := startBroker(t)
	before := votersOf(t, b.admin)
	probes := []struct {
		name  string
		probe adminProbe
		want  int
	}{
		{"text/plain from a foreign origin (the issue's probe)", adminProbe{contentType: "text/plain", origin: "http://evil.example"}, http.StatusForbidden},
		{"text/plain, no origin", adminProbe{contentType: "text/plain"}, http.StatusUnsupportedMediaType},
		{"form from a foreign origin", adminProbe{contentType: "application/x-www-form-urlencoded", origin: "https://evil.example"}, http.StatusForbidden},
		{"JSON from a foreign origin", adminProbe{contentType: "application/json", origin: "http://evil.example"}, http.StatusForbidden},
		{"JSON through a rebinding host name", adminProbe{contentType: "application/json", host: "evil.example"}, http.StatusForbidden},
		{"JSON, Origin null", adminProbe{contentType: "application/json", origin: "null"}, http.StatusForbidden},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			probe := p.probe
			probe.method, probe.path, probe.body = http.MethodPost, "/v1/voters", unreachableVoter
			status, body := probe.send(t, b.admin)
			if status != p.want {
				t.Fatalf("%d %q, want %d", status, body, p.want)
			}
			if after := votersOf(t, b.admin); after != before {
				t.Fatalf("voters changed from %s to %s", before, after)
			}
		})
	}
	t.Run("pprof is off", func(t *testing.T) {
		for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/", "/debug/pprof/heap"} {
			if status, body := (adminProbe{method: http.MethodGet, path: path}).send(t, b.admin); status != http.StatusNotFound || !strings.Contains(body, "--admin-pprof") {
				t.Errorf("GET %s: %d %q, want 404 naming --admin-pprof", path, status, body)
			}
		}
	})
	t.Run("the CLI's JSON request on loopback works", func(t *testing.T) {
		out := strataOutput(t, 0, "tiering", "recover", "--admin", b.admin)
		if !strings.Contains(out, "recovery finished") {
			t.Fatalf("strata tiering recover: %s", out)
		}
	})
	if !b.running() {
		t.Fatal("the node exited")
	}
}

// TestAdminToken: a node started with --admin-token-file (on loopback, so
// only the token file makes it required) and --admin-pprof refuses the
// operator routes, pprof and the reads without the token (only /healthz
// and /readyz stay open), and the CLI sends the token from --admin-token-file or
// STRATA_ADMIN_TOKEN_FILE.
func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	const token, nextToken = "e2e-admin-token-0123456789", "e2e-next-admin-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"+nextToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, "--admin-token-file", tokenFile, "--admin-pprof")
	before := votersOfWithToken(t, b.admin, token)

	t.Run("operator routes need the token", func(t *testing.T) {
		for _, p := range []adminProbe{
			{method: http.MethodPost, path: "/v1/voters", body: unreachableVoter, contentType: "application/json"},
			{method: http.MethodPost, path: "/v1/voters", body: unreachableVoter, contentType: "application/json", token: "wrong-token-0123456789"},
			{method: http.MethodPost, path: "/v1/voters", body: unreachableVoter, contentType: "text/plain", origin: "http://evil.example"},
			{method: http.MethodDelete, path: "/v1/voters/1", contentType: "application/json"},
			{method: http.MethodPost, path: "/v1/tiering/recover", contentType: "application/json"},
			{method: http.MethodPost, path: "/v1/clock/confirm", contentType: "application/json"},
			{method: http.MethodGet, path: "/debug/pprof/cmdline"},
		} {
			status, body := p.send(t, b.admin)
			if status != http.StatusUnauthorized && status != http.StatusForbidden {
				t.Errorf("%s %s without the token: %d %q, want 401 or 403", p.method, p.path, status, body)
			}
		}
		if after := votersOfWithToken(t, b.admin, token); after != before {
			t.Fatalf("voters changed from %s to %s", before, after)
		}
	})
	t.Run("reads need the token, health stays open", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/healthz", "/readyz", "/v1/cluster", "/v1/partitions", "/"} {
			want := http.StatusUnauthorized
			if path == "/healthz" || path == "/readyz" {
				want = http.StatusOK
			}
			if status, body := (adminProbe{method: http.MethodGet, path: path}).send(t, b.admin); status != want {
				t.Errorf("GET %s without the token: %d %q, want %d", path, status, body, want)
			}
			if status, body := (adminProbe{method: http.MethodGet, path: path, token: nextToken}).send(t, b.admin); status != http.StatusOK {
				t.Errorf("GET %s with the token: %d %q", path, status, body)
			}
		}
	})
	t.Run("pprof with the token", func(t *testing.T) {
		status, body := adminProbe{method: http.MethodGet, path: "/debug/pprof/cmdline", token: nextToken}.send(t, b.admin)
		if status != http.StatusOK || !strings.Contains(body, "--admin-token-file") {
			t.Errorf("cmdline with the second token: %d %q", status, body)
		}
		if status, body := (adminProbe{method: http.MethodGet, path: "/debug/pprof/profile?seconds=3600", token: token}).send(t, b.admin); status != http.StatusBadRequest {
			t.Errorf("a one-hour profile: %d %q, want 400", status, body)
		}
	})
	t.Run("the CLI", func(t *testing.T) {
		out := strataOutput(t, 1, "tiering", "recover", "--admin", b.admin)
		if !strings.Contains(out, "--admin-token-file") {
			t.Errorf("refusal without a token does not say how to pass one: %s", out)
		}
		out = strataOutput(t, 1, "cluster", "add-voter", "--admin", b.admin, "--node-id", "9", "--address", "127.0.0.1:1")
		if !strings.Contains(out, "admin token") {
			t.Errorf("add-voter without a token: %s", out)
		}
		if after := votersOfWithToken(t, b.admin, token); after != before {
			t.Fatalf("voters changed from %s to %s", before, after)
		}
		if out := strataOutput(t, 0, "tiering", "recover", "--admin", b.admin, "--admin-token-file", tokenFile); !strings.Contains(out, "recovery finished") {
			t.Errorf("recover with --admin-token-file: %s", out)
		}
		cmd := exec.Command(strataBin, "tiering", "recover", "--admin", b.admin)
		cmd.Env = append(os.Environ(), "STRATA_ADMIN_TOKEN_FILE="+tokenFile)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "recovery finished") {
			t.Errorf("recover with STRATA_ADMIN_TOKEN_FILE: %v %s", err, out)
		}
	})
}

// TestRecoverQuorum: a 3-voter cluster takes acks=all writes, then loses
// two nodes for good. The survivor reports not ready (no metadata
// leader); recover-quorum refuses to touch its data dir while it runs;
// stopped, it is rewritten with itself as the only voter, restarted, elects
// itself and serves every acknowledged record.
func TestRecoverQuorum(t *testing.T) {
	// A short lag time lets the survivor, once it leads, drop the dead
	// replicas from the ISR within seconds.
	c := startClusterWith(t, 3, func(id int32, b *brokerProcess) (string, []string) {
		return "", []string{"--replica-lag-time-max-ms", "5000", "--broker-session-timeout-ms", "10000"}
	})
	ctx := testContext(t, 5*time.Minute)
	topic := legalTopic(t)
	adm := c.admin()
	if resp, err := adm.CreateTopic(ctx, 3, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
	producer := c.client(t, manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()))
	const perPartition = 100
	var want []string
	for p := range int32(3) {
		var values []string
		for i := range perPartition {
			values = append(values, fmt.Sprintf("p%d-r%d", p, i))
		}
		eventually(t, 30*time.Second, "acks=all produce", func() error {
			var recs []*kgo.Record
			for _, v := range values {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
			}
			return producer.ProduceSync(ctx, recs...).FirstErr()
		})
		want = append(want, values...)
	}
	producer.Close()
	// Node 1 must hold every acknowledged record: acks=all covers the ISR,
	// and a slow node may have left it for a while.
	// Every node's view must agree: one that has not applied a shrink yet
	// would show node 1 in an ISR it already left.
	views := c.client(t)
	eventually(t, time.Minute, "node 1 in every partition's ISR, on every node", func() error {
		for id := range c.nodes {
			request := kmsg.NewPtrMetadataRequest()
			requestTopic := kmsg.NewMetadataRequestTopic()
			requestTopic.Topic = kmsg.StringPtr(topic)
			request.Topics = append(request.Topics, requestTopic)
			response, err := request.RequestWith(ctx, views.Broker(int(id)))
			if err != nil {
				return err
			}
			for _, responseTopic := range response.Topics {
				for _, p := range responseTopic.Partitions {
					if !containsID(p.ISR, 1) {
						return fmt.Errorf("node %d: partition %d ISR %v", id, p.Partition, p.ISR)
					}
				}
			}
		}
		return nil
	})

	survivor := c.nodes[1]
	c.nodes[2].kill()
	c.nodes[3].kill()
	eventually(t, 30*time.Second, "the survivor's /readyz reporting the lost quorum", func() error {
		status, body := adminProbe{method: http.MethodGet, path: "/readyz"}.send(t, survivor.admin)
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "no leader") {
			return fmt.Errorf("%d %q", status, body)
		}
		return nil
	})

	if out := strataOutput(t, 1, "healthcheck", "--admin", survivor.admin); !strings.Contains(out, "no leader") {
		t.Errorf("strata healthcheck without a quorum: %s", out)
	}

	self := "1@" + survivor.ctrl
	out := strataOutput(t, 1, "cluster", "recover-quorum", "--data-dir", survivor.dataDir, "--voters", self)
	if !strings.Contains(out, "stop it first") {
		t.Fatalf("recover-quorum on a running node: %s", out)
	}
	if err := survivor.stop(); err != nil {
		t.Logf("stopping the survivor: %v", err)
	}
	out = strataOutput(t, 0, "cluster", "recover-quorum", "--data-dir", survivor.dataDir, "--voters", self)
	t.Logf("recover-quorum:\n%s", out)
	if !strings.Contains(out, "members now:    "+self+"\n") || !strings.Contains(out, "2@"+c.nodes[2].ctrl) {
		t.Fatalf("recover-quorum output: %s", out)
	}
	survivor.restart(t) // waits for /readyz: a leader again

	s := c.status(1)
	if s.Controller != 1 || len(s.Voters) != 1 || s.Voters[0].NodeID != 1 || !s.Voters[0].Voting {
		t.Fatalf("after recovery: controller %d, voters %+v; want node 1 alone", s.Controller, s.Voters)
	}
	eventually(t, time.Minute, "node 1 leading every partition", func() error {
		m, err := newAdmin(t, survivor.addr).Metadata(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range m.Topics[topic].Partitions {
			if p.Leader != 1 {
				return fmt.Errorf("partition %d led by %d", p.Partition, p.Leader)
			}
		}
		return nil
	})
	got := consumeAll(t, survivor.addr, topic, len(want))
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	for _, v := range want {
		if !seen[v] {
			t.Fatalf("acknowledged record %s lost (read %d records)", v, len(got))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
}

// TestRecoverQuorumFromAddedUnreachableVoter is the issue's own outage: a
// single node given a second voter that is never heard from again never
// elects a leader after a restart. Adding a voter nobody runs is refused
// now (the leader probes it first); a voter that joins and then dies for
// good leaves the same quorum, and recover-quorum brings it back.
func TestRecoverQuorumFromAddedUnreachableVoter(t *testing.T) {
	b := startBroker(t, "--controller-quorum-timeout-ms", "5000")
	topic := legalTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, 0, "before the outage")
	before := votersOf(t, b.admin)
	out := strataOutput(t, 1, "cluster", "add-voter", "--admin", b.admin, "--node-id", "9", "--address", "127.0.0.1:1")
	if !strings.Contains(out, "--cluster-secret-file") {
		t.Errorf("adding a voter nobody runs: %s", out)
	}
	if after := votersOf(t, b.admin); after != before {
		t.Fatalf("voters changed from %s to %s", before, after)
	}
	if status, body := (adminProbe{method: http.MethodGet, path: "/readyz"}).send(t, b.admin); status != http.StatusOK {
		t.Fatalf("/readyz after the refused voter: %d %q", status, body)
	}

	properties, err := os.ReadFile(filepath.Join(b.dataDir, "meta.properties"))
	if err != nil {
		t.Fatal(err)
	}
	clusterID := ""
	for _, line := range strings.Split(string(properties), "\n") {
		if value, ok := strings.CutPrefix(line, "cluster.id="); ok {
			clusterID = value
		}
	}
	second := startBroker(t, "--node-id", "2", "--cluster-id", clusterID, "--controller-quorum", "1@"+b.ctrl,
		"--process-roles", "broker", "--cluster-secret-file", filepath.Join(b.dataDir, "cluster.secret"))
	strataOutput(t, 0, "cluster", "add-voter", "--admin", b.admin, "--node-id", "2", "--address", second.ctrl)
	second.kill() // for good
	eventually(t, 30*time.Second, "/readyz reporting the stalled quorum", func() error {
		status, body := adminProbe{method: http.MethodGet, path: "/readyz"}.send(t, b.admin)
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "no leader") {
			return fmt.Errorf("%d %q", status, body)
		}
		return nil
	})
	if err := b.stop(); err != nil {
		t.Logf("stopping: %v", err)
	}
	if err := b.start(); err == nil {
		t.Fatal("the node became ready with a quorum of two, one gone")
	}
	b.kill()
	out = strataOutput(t, 0, "cluster", "recover-quorum", "--data-dir", b.dataDir, "--voters", "1@"+b.ctrl)
	if !strings.Contains(out, "2@"+second.ctrl) || !strings.Contains(out, "members now:    1@"+b.ctrl+"\n") {
		t.Fatalf("recover-quorum output: %s", out)
	}
	b.restart(t)
	got := consumeAll(t, b.addr, topic, 1)
	if string(got[0].Value) != "before the outage" {
		t.Fatalf("read %q", got[0].Value)
	}
}
