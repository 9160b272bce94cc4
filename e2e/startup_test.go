//go:build e2e

package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/internal/childproc"
)

// TestInvalidSettingsRefusedAtStart: the binary exits non-zero with a
// message naming the setting, before binding anything.
func TestInvalidSettingsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "--advertise"},
		{[]string{"--node-id", "-3"}, "--node-id"},
		{[]string{"--log-retention-ms", "forever"}, "--log-retention-ms"},
		{[]string{"--log-cleanup-policy", "shred"}, "not a cleanup policy"},
		{[]string{"--log-cleaner-min-cleanable-ratio", "2"}, "not between 0 and 1"},
		{[]string{"--controller-quorum", "2@127.0.0.1:1,3@127.0.0.1:2"}, "--controller-quorum"},
		{[]string{"--max-connections-per-ip", "0"}, "--max-connections-per-ip"},
		{[]string{"--queued-max-request-bytes", "1048576"}, "--queued-max-request-bytes"},
		{[]string{"--log-message-timestamp-after-max-ms", "-1"}, "--log-message-timestamp-after-max-ms"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", filepath.Join(dir, "d"), "--admin-listen", "-"}, tc.args...)
			cmd := exec.Command(strataBin, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			done := make(chan error, 1)
			if err := childproc.Start(cmd); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("exited 0; output:\n%s", out.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running with an invalid setting; output:\n%s", out.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Fatalf("message does not name %q:\n%s", tc.want, out.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	out, _ := exec.Command(strataBin, "serve", "--help").CombinedOutput()
	for _, want := range []string{"--node-id", "--data-dir", "--listen", "--advertise", "--controller-quorum", "--admin-listen", "--config", "STRATA_", "(default \"./data\")"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("strata serve --help lacks %q", want)
		}
	}
}

// TestIdleConnectionsClosed: connections.max.idle.ms closes idle clients.
func TestIdleConnectionsClosed(t *testing.T) {
	b := startBroker(t, "--connections-max-idle-ms", "300")
	c := dialRaw(t, b.addr)
	c.roundTrip(kmsg.NewPtrApiVersionsRequest())
	c.expectClosed()
}

// TestOldProduceVersionsRefused: Produce v0-2 are advertised (librdkafka
// looks for v0) but old message formats get UNSUPPORTED_VERSION.
func TestOldProduceVersionsRefused(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	c := dialRaw(t, b.addr)
	versions := c.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse)
	var produceMin int16 = -1
	for _, k := range versions.ApiKeys {
		if k.ApiKey == 0 {
			produceMin = k.MinVersion
		}
	}
	if produceMin != 0 {
		t.Fatalf("Produce advertised from v%d, want v0", produceMin)
	}
	for v := int16(0); v <= 2; v++ {
		req := produceRequest(topic, 0, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
		req.Version = v
		resp := c.roundTrip(req).(*kmsg.ProduceResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnsupportedVersion.Code {
			t.Fatalf("Produce v%d: error %d, want UNSUPPORTED_VERSION", v, code)
		}
	}
}

// TestAdminEndpoints: health, readiness and Prometheus metrics are served,
// and the metrics move with traffic.
func TestAdminEndpoints(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, 0, "m1", "m2")
	consumeAll(t, b.addr, topic, 2)
	get := func(path string) string {
		resp, err := http.Get("http://" + b.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return string(body)
	}
	get("/healthz")
	get("/readyz")
	metrics := get("/metrics")
	for _, want := range []string{
		`strata_topic_bytes_in_total{topic="` + topic + `"}`,
		`strata_topic_bytes_out_total{topic="` + topic + `"}`,
		`strata_request_duration_seconds_count{api="Produce"}`,
		`strata_request_duration_seconds_count{api="Fetch"}`,
		"strata_client_connections",
		"strata_clock_jump_paused 0",
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	out, err := exec.Command(strataBin, "healthcheck", "--admin", b.admin).CombinedOutput()
	if err != nil {
		t.Fatalf("strata healthcheck: %v: %s", err, out)
	}
}
