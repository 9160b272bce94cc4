package cli

import (
	"bytes"
	"crypto/x509/pkix"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/cmd/internal/node"
)

// parseServe runs flag parsing, overrides and validation like runServe,
// without starting anything.
func parseServe(t *testing.T, args ...string) (node.Config, error) {
	t.Helper()
	var stderr bytes.Buffer
	fs, f := newServeFlagSet(&stderr)
	if err := fs.Parse(args); err != nil {
		return node.Config{}, err
	}
	if err := applyOverrides(fs, f.configFile); err != nil {
		return node.Config{}, err
	}
	return serveConfig(fs, f, slog.Default())
}

func TestServeDefaults(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != 1 || cfg.DataDir != "./data" || cfg.ControllerListen != "127.0.0.1:9093" || cfg.AdminListen != "127.0.0.1:9080" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if len(cfg.Broker.Listeners) != 1 || cfg.Broker.Listeners[0].Name != "CLIENT" || cfg.Broker.Listeners[0].Address != "127.0.0.1:9092" {
		t.Fatalf("listeners: %+v", cfg.Broker.Listeners)
	}
	if len(cfg.Broker.TopicDefaults) != 0 {
		t.Fatalf("topic defaults set without flags: %v", cfg.Broker.TopicDefaults)
	}
	if cfg.Broker.DisableAutoCreateTopics || cfg.Broker.NumPartitions != 1 {
		t.Fatalf("broker defaults: %+v", cfg.Broker)
	}
	// Kafka's transaction coordinator defaults.
	if b := cfg.Broker; b.TransactionStateLogNumPartitions != 50 || b.TransactionStateLogReplicationFactor != 3 || b.TransactionMaxTimeout != 15*time.Minute ||
		b.TransactionalIDExpiration != 7*24*time.Hour || b.TransactionAbortTimedOutInterval != 10*time.Second || b.TransactionVersion != 2 {
		t.Fatalf("transaction defaults: %+v", b)
	}
}

// The chunk cache goes through the page cache unless
// --remote-log-cache-direct-io (true) asks for O_DIRECT.
func TestRemoteLogCacheDirectIOFlag(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		buffered bool
	}{{nil, true}, {[]string{"--remote-log-cache-direct-io=false"}, true}, {[]string{"--remote-log-cache-direct-io"}, false}} {
		cfg, err := parseServe(t, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.RemoteCacheBuffered != tc.buffered {
			t.Errorf("%v: RemoteCacheBuffered %v, want %v", tc.args, cfg.RemoteCacheBuffered, tc.buffered)
		}
	}
}

func TestTransactionFlags(t *testing.T) {
	cfg, err := parseServe(t, "--transaction-state-log-num-partitions", "8", "--transaction-state-log-replication-factor", "1",
		"--transaction-max-timeout-ms", "60000", "--transactional-id-expiration-ms", "3600000",
		"--transaction-abort-timed-out-transaction-cleanup-interval-ms", "500", "--transaction-version", "1")
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Broker; b.TransactionStateLogNumPartitions != 8 || b.TransactionStateLogReplicationFactor != 1 || b.TransactionMaxTimeout != time.Minute ||
		b.TransactionalIDExpiration != time.Hour || b.TransactionAbortTimedOutInterval != 500*time.Millisecond || b.TransactionVersion != 1 {
		t.Fatalf("transaction settings: %+v", b)
	}
}

// TestGroupFlags: the group coordinator's limits default to Kafka's
// (group.min.session.timeout.ms 6 s, group.max.session.timeout.ms 30
// minutes, group.max.size Int.MAX_VALUE) and pass through to the broker, which reports the ones set as
// static broker configs.
func TestGroupFlags(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Broker; b.GroupMinSessionTimeout != 6*time.Second || b.GroupMaxSessionTimeout != 30*time.Minute || b.GroupMaxSize != math.MaxInt32 {
		t.Fatalf("defaults: min session %v, max session %v, max size %d", b.GroupMinSessionTimeout, b.GroupMaxSessionTimeout, b.GroupMaxSize)
	}
	cfg, err = parseServe(t, "--group-min-session-timeout-ms", "1000", "--group-max-session-timeout-ms", "60000", "--group-max-size", "5")
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Broker; b.GroupMinSessionTimeout != time.Second || b.GroupMaxSessionTimeout != time.Minute || b.GroupMaxSize != 5 {
		t.Fatalf("min session %v, max session %v, max size %d; want 1s, 1m, 5", b.GroupMinSessionTimeout, b.GroupMaxSessionTimeout, b.GroupMaxSize)
	}
	if want := []string{"group.max.session.timeout.ms", "group.max.size", "group.min.session.timeout.ms"}; !slices.Equal(cfg.Broker.StaticConfigs, want) {
		t.Errorf("static configs %v, want %v", cfg.Broker.StaticConfigs, want)
	}
}

// TestRemoteLogManagerQuotaFlags: KIP-956's quotas default to Kafka's
// Long.MAX_VALUE (unlimited) and pass through to the node.
func TestRemoteLogManagerQuotaFlags(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RemoteCopyMaxBytesPerSecond != math.MaxInt64 || cfg.RemoteFetchMaxBytesPerSecond != math.MaxInt64 {
		t.Fatalf("defaults: copy %d, fetch %d; want Long.MAX_VALUE", cfg.RemoteCopyMaxBytesPerSecond, cfg.RemoteFetchMaxBytesPerSecond)
	}
	cfg, err = parseServe(t, "--remote-log-manager-copy-max-bytes-per-second", "1000", "--remote-log-manager-fetch-max-bytes-per-second", "2000")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RemoteCopyMaxBytesPerSecond != 1000 || cfg.RemoteFetchMaxBytesPerSecond != 2000 {
		t.Fatalf("copy %d, fetch %d; want 1000, 2000", cfg.RemoteCopyMaxBytesPerSecond, cfg.RemoteFetchMaxBytesPerSecond)
	}
}

// TestQueuedMaxResponseBytesFlag: queued.max.response.bytes defaults to
// 512 MiB and passes through to the broker.
func TestQueuedMaxResponseBytesFlag(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Broker.QueuedMaxResponseBytes; got != 512<<20 {
		t.Fatalf("default %d, want 512 MiB", got)
	}
	if cfg, err = parseServe(t, "--queued-max-response-bytes", "33554432"); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Broker.QueuedMaxResponseBytes; got != 32<<20 {
		t.Fatalf("--queued-max-response-bytes 33554432: %d", got)
	}
}

func TestSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	ca := authntest.NewCA(t, "ca")
	files := ca.WriteFiles(t, dir, pkix.Name{CommonName: "node-1"})
	cfg, err := parseServe(t, "--listeners", "CLIENT=127.0.0.1:9092,INTERNAL=127.0.0.1:9094", "--inter-broker-listener", "INTERNAL",
		"--listener-security-protocol-map", "INTERNAL:SSL", "--ssl-cert-file", files.Cert, "--ssl-key-file", files.Key,
		"--ssl-ca-file", files.CA, "--ssl-client-auth", "required")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]authn.Protocol{}
	for _, l := range cfg.Broker.Listeners {
		got[l.Name] = l.SecurityProtocol
	}
	// Unmapped listeners stay PLAINTEXT (the broker's default).
	if got["INTERNAL"] != authn.SSL || got["CLIENT"] != "" {
		t.Fatalf("protocols %v", got)
	}
	if cfg.Broker.TLS == nil {
		t.Fatal("no TLS identity")
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("alice:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = parseServe(t, "--listeners", "CLIENT=127.0.0.1:9092,INTERNAL=127.0.0.1:9094", "--inter-broker-listener", "INTERNAL",
		"--listener-security-protocol-map", "CLIENT:SASL_PLAINTEXT", "--sasl-plain-users-file", users)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Broker.PlainUsers == nil || !cfg.Broker.PlainUsers.Verify("alice", "secret") || cfg.Broker.Listeners[0].SecurityProtocol != authn.SASLPlaintext {
		t.Fatalf("SASL settings: %+v", cfg.Broker)
	}
	if cfg, err := parseServe(t); err != nil || cfg.Broker.TLS != nil {
		t.Fatalf("defaults: TLS %v, err %v", cfg.Broker.TLS, err)
	}
}

func TestPrecedenceFlagOverEnvOverFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "strata.conf")
	content := "# comment\nnode-id = 7\ndata-dir=/from/file\nnum-partitions = 3\nlog-retention-ms = 1000\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_DATA_DIR", "/from/env")
	t.Setenv("STRATA_NUM_PARTITIONS", "5")
	cfg, err := parseServe(t, "--config", file, "--num-partitions", "9")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != 7 {
		t.Errorf("node id %d, want 7 from the file", cfg.NodeID)
	}
	if cfg.DataDir != "/from/env" {
		t.Errorf("data dir %q, want the environment's", cfg.DataDir)
	}
	if cfg.Broker.NumPartitions != 9 {
		t.Errorf("num partitions %d, want the flag's 9", cfg.Broker.NumPartitions)
	}
	if cfg.Broker.TopicDefaults[topicconfig.RetentionMs] != "1000" {
		t.Errorf("retention default %q, want 1000 from the file", cfg.Broker.TopicDefaults[topicconfig.RetentionMs])
	}
	// Set by the operator, wherever from: DescribeConfigs reports them
	// STATIC_BROKER_CONFIG, the others DEFAULT_CONFIG.
	if want := []string{"broker.id", "log.dirs", "node.id", "num.partitions"}; !slices.Equal(cfg.Broker.StaticConfigs, want) {
		t.Errorf("static configs %v, want %v", cfg.Broker.StaticConfigs, want)
	}
}

// TestStaticConfigsNameSetFlags: broker.Config.StaticConfigs names the
// broker configs whose serve flag was given, none by default.
func TestStaticConfigsNameSetFlags(t *testing.T) {
	fs, _ := newServeFlagSet(new(bytes.Buffer))
	for name, flags := range staticConfigFlags {
		for _, flag := range flags {
			if fs.Lookup(flag) == nil {
				t.Errorf("%s: no serve flag --%s", name, flag)
			}
		}
	}
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Broker.StaticConfigs) != 0 {
		t.Errorf("static configs %v without flags", cfg.Broker.StaticConfigs)
	}
	cfg, err = parseServe(t, "--listeners", "CLIENT=127.0.0.1:9092", "--auto-create-topics=true", "--connections-max-idle-ms", "1000")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"auto.create.topics.enable", "connections.max.idle.ms", "listeners"}; !slices.Equal(cfg.Broker.StaticConfigs, want) {
		t.Errorf("static configs %v, want %v", cfg.Broker.StaticConfigs, want)
	}
}

func TestInvalidSettingsAreNamed(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.conf")
	os.WriteFile(badFile, []byte("no-such-setting = 1\n"), 0o644)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--node-id", "-1"}, want: "--node-id"},
		{args: []string{"--listen", "nonsense"}, want: "--listen"},
		{args: []string{"--listen", "0.0.0.0:9092"}, want: "--advertise"},
		{args: []string{"--listeners", "CLIENT=0.0.0.0:9092", "--advertise", "CLIENT=0.0.0.0:9092"}, want: "--advertise"},
		{args: []string{"--advertise", "OTHER=h:1"}, want: "--advertise"},
		{args: []string{"--inter-broker-listener", "INTERNAL"}, want: "--inter-broker-listener"},
		{args: []string{"--controller-quorum", "2@a,3@b:2"}, want: "--controller-quorum"},
		{args: []string{"--process-roles", "shredder"}, want: "--process-roles"},
		{args: []string{"--process-roles", "broker"}, want: "--process-roles"},
		{args: []string{"--controller-quorum", "2@a:1", "--process-roles", "controller"}, want: "--process-roles"},
		{args: []string{"--controller-quorum", "2@a:1"}, want: "--process-roles"},
		{args: []string{"--controller-quorum", "1@a:1,2@b:2", "--controller-advertise", "c:3"}, want: "--controller-advertise"},
		{args: []string{"--broker-heartbeat-interval-ms", "5000", "--broker-session-timeout-ms", "9000"}, want: "--broker-session-timeout-ms"},
		{args: []string{"--controller-quorum", "x"}, want: "--controller-quorum"},
		{args: []string{"--log-retention-ms", "abc"}, want: "--log-retention-ms"},
		{args: []string{"--log-cleanup-policy", "shred"}, want: "--log-cleanup-policy"},
		{args: []string{"--log-cleaner-min-cleanable-ratio", "2"}, want: "--log-cleaner-min-cleanable-ratio"},
		{args: []string{"--offsets-topic-segment-bytes", "10"}, want: "--offsets-topic-segment-bytes"},
		{args: []string{"--offsets-topic-replication-factor", "0"}, want: "--offsets-topic-replication-factor"},
		{args: []string{"--transaction-state-log-replication-factor", "0"}, want: "--transaction-state-log-replication-factor"},
		{args: []string{"--transaction-state-log-num-partitions", "0"}, want: "--transaction-state-log-num-partitions"},
		{args: []string{"--transaction-max-timeout-ms", "0"}, want: "--transaction-max-timeout-ms"},
		{args: []string{"--transaction-version", "3"}, want: "--transaction-version"},
		{args: []string{"--transactional-id-expiration-ms", "0"}, want: "--transactional-id-expiration-ms"},
		{args: []string{"--transaction-abort-timed-out-transaction-cleanup-interval-ms", "0"}, want: "--transaction-abort-timed-out-transaction-cleanup-interval-ms"},
		{args: []string{"--log-cleaner-backoff-ms", "0"}, want: "--log-cleaner-backoff-ms"},
		{args: []string{"--group-min-session-timeout-ms", "0"}, want: "--group-min-session-timeout-ms"},
		{args: []string{"--group-max-size", "0"}, want: "--group-max-size"},
		{args: []string{"--group-min-session-timeout-ms", "60000", "--group-max-session-timeout-ms", "30000"}, want: "--group-min-session-timeout-ms"},
		{args: []string{"--num-partitions", "0"}, want: "--num-partitions"},
		{args: []string{"--object-store", "ftp://host/bucket"}, want: "--object-store"},
		{args: []string{"--object-store-prefix", "/a"}, want: "--object-store-prefix"},
		{args: []string{"--object-store-shared"}, want: "--object-store-shared"},
		{args: []string{"--object-store", "mem://", "--object-store-shared"}, want: "--object-store-shared"},
		{args: []string{"--remote-log-cache-bytes", "10"}, want: "--remote-log-cache-bytes"},
		{args: []string{"--remote-log-memory-cache-bytes", "1048576"}, want: "--remote-log-memory-cache-bytes"},
		{args: []string{"--remote-log-manager-task-interval-ms", "0"}, want: "--remote-log-manager-task-interval-ms"},
		{args: []string{"--remote-log-reader-threads", "0"}, want: "--remote-log-reader-threads"},
		{args: []string{"--remote-log-reader-max-pending-tasks", "-1"}, want: "--remote-log-reader-max-pending-tasks"},
		{args: []string{"--remote-log-manager-copy-max-bytes-per-second", "0"}, want: "--remote-log-manager-copy-max-bytes-per-second"},
		{args: []string{"--remote-log-manager-fetch-max-bytes-per-second", "-1"}, want: "--remote-log-manager-fetch-max-bytes-per-second"},
		{args: []string{"--local-disk-limit-bytes", "-1"}, want: "--local-disk-limit-bytes"},
		{args: []string{"--log-local-retention-bytes", "-5"}, want: "--log-local-retention-bytes"},
		{args: []string{"--socket-request-max-bytes", "10"}, want: "--socket-request-max-bytes"},
		{args: []string{"--queued-max-response-bytes", "1000"}, want: "--queued-max-response-bytes"},
		{args: []string{"--listener-security-protocol-map", "CLIENT:TLS"}, want: "--listener-security-protocol-map"},
		{args: []string{"--listener-security-protocol-map", "OTHER:SSL"}, want: "--listener-security-protocol-map"},
		{args: []string{"--listener-security-protocol-map", "CLIENT:SASL_SSL"}, want: "--ssl-cert-file"},
		{args: []string{"--listeners", "CLIENT=127.0.0.1:9092,INTERNAL=127.0.0.1:9094", "--inter-broker-listener", "INTERNAL",
			"--listener-security-protocol-map", "CLIENT:SASL_PLAINTEXT"}, want: "--sasl-plain-users-file"},
		{args: []string{"--sasl-plain-users-file", badFile}, want: "--sasl-plain-users-file"},
		{args: []string{"--sasl-enabled-mechanisms", "GSSAPI"}, want: "--sasl-enabled-mechanisms"},
		{args: []string{"--listener-security-protocol-map", "CLIENT:SSL"}, want: "--ssl-cert-file"},
		{args: []string{"--listener-security-protocol-map", "CLIENT:SSL", "--ssl-cert-file", badFile, "--ssl-key-file", badFile}, want: "--ssl-cert-file"},
		{args: []string{"--ssl-client-auth", "maybe"}, want: "--ssl-client-auth"},
		{args: []string{"--ssl-cert-file", badFile, "--ssl-key-file", badFile}, want: "--listener-security-protocol-map"},
		{args: []string{"--config", badFile}, want: "no-such-setting"},
		{env: map[string]string{"STRATA_NODE_ID": "seven"}, want: "STRATA_NODE_ID"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " ")+tc.want, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := parseServe(t, tc.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"serve", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	fs, _ := newServeFlagSet(&bytes.Buffer{})
	help := stderr.String()
	for _, name := range []string{"node-id", "cluster-id", "listen", "listeners", "advertise", "inter-broker-listener", "data-dir",
		"controller-listen", "controller-advertise", "controller-quorum", "admin-listen", "config", "log-retention-ms"} {
		if fs.Lookup(name) == nil || !strings.Contains(help, "--"+name) {
			t.Errorf("--help lacks --%s", name)
		}
	}
	if !strings.Contains(help, "(default \"127.0.0.1:9092\")") {
		t.Errorf("--help does not show defaults:\n%s", help)
	}
}

func TestUnknownCommandAndBadFlagExitTwo(t *testing.T) {
	var out bytes.Buffer
	if code := Run([]string{"frobnicate"}, &out, &out); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code := Run([]string{"serve", "--no-such-flag"}, &out, &out); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
}

func TestFormat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"format", "--cluster-id", "test-cluster", "--node-id", "3", "--data-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("format: exit %d: %s", code, stderr.String())
	}
	if code := Run([]string{"format", "--cluster-id", "test-cluster", "--node-id", "3", "--data-dir", dir}, &stdout, &stderr); code == 0 {
		t.Fatal("formatting twice succeeded")
	}
	if code := Run([]string{"format", "--node-id", "3", "--data-dir", t.TempDir()}, &stdout, &stderr); code != 2 {
		t.Fatalf("format without a cluster id: exit %d", code)
	}
}
