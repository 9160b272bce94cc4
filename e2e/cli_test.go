//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// strata runs the binary under test and returns its stdout; it fails the
// test unless the exit code is want.
func strataCLI(t *testing.T, want int, args ...string) string {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != want {
		t.Fatalf("strata %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, stderr.String())
	}
	return string(out)
}

// TestAdminCLI drives every topics, partitions and groups subcommand
// against a running broker, in table and JSON output, and checks what they
// report against what the test did.
func TestAdminCLI(t *testing.T) {
	b := startBroker(t, "--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300")
	bs := []string{"--bootstrap-server", b.addr}
	cli := func(want int, args ...string) string { return strataCLI(t, want, append(args, bs...)...) }
	topic := legalTopic(t)

	out := cli(0, "topics", "create", "--topic", topic, "--partitions", "2", "--config", "remote.storage.enable=true",
		"--config", "segment.bytes=65536", "--config", "local.retention.bytes=65536")
	if !strings.Contains(out, "created topic "+topic) {
		t.Fatalf("create: %s", out)
	}
	cli(1, "topics", "create", "--topic", topic) // exists: TOPIC_ALREADY_EXISTS, exit 1
	if out := cli(0, "topics", "list"); !strings.Contains(out, topic) || !strings.Contains(out, "PARTITIONS") {
		t.Fatalf("list: %s", out)
	}
	var topics []struct {
		Name       string `json:"name"`
		Partitions int    `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(cli(0, "topics", "list", "--output", "json")), &topics); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tp := range topics {
		found = found || (tp.Name == topic && tp.Partitions == 2)
	}
	if !found {
		t.Fatalf("list --output json lacks %s with 2 partitions: %+v", topic, topics)
	}
	cli(0, "topics", "alter-config", "--topic", topic, "--set", "retention.ms=-1")
	cli(1, "topics", "alter-config", "--topic", topic, "--set", "cleanup.policy=compact") // refused on a tiered topic
	var described struct {
		Configs    map[string]string `json:"configs"`
		Partitions []struct {
			Partition int32 `json:"partition"`
			Leader    int32 `json:"leader"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(cli(0, "topics", "describe", "--topic", topic, "--output", "json")), &described); err != nil {
		t.Fatal(err)
	}
	if described.Configs["retention.ms"] != "-1" || described.Configs["remote.storage.enable"] != "true" || len(described.Partitions) != 2 || described.Partitions[0].Leader != 1 {
		t.Fatalf("describe: %+v", described)
	}
	if out := cli(0, "topics", "describe", "--topic", topic); !strings.Contains(out, "retention.ms") || !strings.Contains(out, "HIGH WATERMARK") {
		t.Fatalf("describe table: %s", out)
	}

	// Data on partition 0, enough to tier; a group that read part of it.
	g := tierGen{topic: topic, size: 2 << 10, base: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	g.produce(t, newClient(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.ProducerBatchCompression(kgo.NoCompression())), 0, 400)
	var parts []struct {
		Partition     int32 `json:"partition"`
		LogStart      int64 `json:"log_start"`
		LocalStart    int64 `json:"local_start"`
		RemoteEnd     int64 `json:"remote_end"`
		HighWatermark int64 `json:"high_watermark"`
	}
	eventually(t, time.Minute, "partitions list showing tiered data", func() error {
		if err := json.Unmarshal([]byte(cli(0, "partitions", "list", "--topic", topic, "--output", "json")), &parts); err != nil {
			return err
		}
		if p := parts[0]; p.LogStart != 0 || p.LocalStart <= 0 || p.RemoteEnd < p.LocalStart || p.HighWatermark != 400 {
			return fmt.Errorf("%+v", p)
		}
		return nil
	})
	if out := cli(0, "partitions", "list", "--topic", topic); !strings.Contains(out, "LOCAL START") || !strings.Contains(out, "400") {
		t.Fatalf("partitions table: %s", out)
	}

	group := "cli-" + topic
	consumer := newClient(t, b.addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	ctx := testContext(t, time.Minute)
	var last *kgo.Record
	for last == nil || last.Partition != 0 {
		for _, r := range consumer.PollFetches(ctx).Records() {
			if r.Partition == 0 {
				last = r
			}
		}
		if ctx.Err() != nil {
			t.Fatal("the group read nothing")
		}
	}
	if err := consumer.CommitRecords(ctx, last); err != nil {
		t.Fatal(err)
	}
	if out := cli(0, "groups", "describe", "--group", group); !strings.Contains(out, "Stable") || !strings.Contains(out, topic) {
		t.Fatalf("describe group: %s", out)
	}
	cli(1, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute") // members present
	consumer.Close()
	if out := cli(0, "groups", "list"); !strings.Contains(out, group) {
		t.Fatalf("groups list: %s", out)
	}
	var listed []struct{ Group, State string }
	if err := json.Unmarshal([]byte(cli(0, "groups", "list", "--output", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	groupListed := false
	for _, g := range listed {
		groupListed = groupListed || (g.Group == group && g.State == "Empty")
	}
	if !groupListed {
		t.Fatalf("groups list --output json lacks %s (Empty): %+v", group, listed)
	}
	var describedGroup struct {
		Group string `json:"group"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(cli(0, "groups", "describe", "--group", group, "--output", "json")), &describedGroup); err != nil {
		t.Fatal(err)
	}
	if describedGroup.Group != group || describedGroup.State != "Empty" {
		t.Fatalf("groups describe --output json: %+v", describedGroup)
	}
	var lags []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Committed int64  `json:"committed"`
		End       int64  `json:"end"`
		Lag       int64  `json:"lag"`
	}
	if err := json.Unmarshal([]byte(cli(0, "groups", "lag", "--group", group, "--output", "json")), &lags); err != nil {
		t.Fatal(err)
	}
	lagOf := func(p int32) int64 {
		for _, l := range lags {
			if l.Topic == topic && l.Partition == p {
				return l.Lag
			}
		}
		t.Fatalf("no lag row for partition %d: %+v", p, lags)
		return 0
	}
	if want := 400 - last.Offset - 1; lagOf(0) != want {
		t.Fatalf("lag %d, want %d", lagOf(0), want)
	}
	if out := cli(0, "groups", "lag", "--group", group); !strings.Contains(out, "LAG") {
		t.Fatalf("lag table: %s", out)
	}
	if out := cli(0, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest"); !strings.Contains(out, "dry run") {
		t.Fatalf("reset plan: %s", out)
	}
	cli(0, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute")
	if err := json.Unmarshal([]byte(cli(0, "groups", "lag", "--group", group, "--output", "json")), &lags); err != nil {
		t.Fatal(err)
	}
	if lagOf(0) != 400 {
		t.Fatalf("lag after reset to earliest: %d, want 400", lagOf(0))
	}
	// strata tiering status (admin listener): the tiered partition with
	// bytes in the bucket.
	var status struct {
		Partitions []struct {
			Topic       string `json:"topic"`
			Partition   int32  `json:"partition"`
			RemoteBytes int64  `json:"remote_bytes"`
		} `json:"partitions"`
		BucketBytes int64 `json:"bucket_bytes"`
	}
	if err := json.Unmarshal([]byte(strataCLI(t, 0, "tiering", "status", "--admin", b.admin, "--output", "json")), &status); err != nil {
		t.Fatal(err)
	}
	if status.BucketBytes <= 0 || len(status.Partitions) != 2 || status.Partitions[0].Topic != topic || status.Partitions[0].RemoteBytes <= 0 {
		t.Fatalf("tiering status: %+v", status)
	}
	if out := strataCLI(t, 0, "tiering", "status", "--admin", b.admin); !strings.Contains(out, "BACKLOG BYTES") || !strings.Contains(out, "in the bucket") {
		t.Fatalf("tiering status table: %s", out)
	}

	// The key series after produce, consume (from remote data) and tiering.
	for _, series := range []string{
		`strata_request_duration_seconds_count{api="Produce"}`, `strata_request_duration_seconds_count{api="Fetch"}`,
		fmt.Sprintf(`strata_topic_bytes_in_total{topic=%q}`, topic), fmt.Sprintf(`strata_topic_bytes_out_total{topic=%q}`, topic),
		`strata_under_replicated_partitions`, `strata_offline_partitions`, `strata_isr_changes_total`,
		`strata_controller_active`, `strata_metadata_applied_index`, `strata_brokers_alive`,
		fmt.Sprintf(`strata_tiering_upload_lag_bytes{partition="0",topic=%q}`, topic),
		fmt.Sprintf(`strata_tiering_segments_committed_total{topic=%q}`, topic),
		fmt.Sprintf(`strata_tiering_remote_fetch_bytes_total{topic=%q}`, topic),
		`strata_tiering_bucket_puts_total`, `strata_tiering_bucket_gets_total`,
		`strata_tiering_cache_hits_total`, `strata_tiering_cache_misses_total`, `strata_local_log_bytes`,
	} {
		metricValue(t, b, series) // fails the test when the series is missing
	}
	if v := metricValue(t, b, `strata_controller_active`); v != 1 {
		t.Fatalf("strata_controller_active %v on a single node", v)
	}
	for _, series := range []string{`strata_tiering_bucket_puts_total`, `strata_tiering_bucket_gets_total`, fmt.Sprintf(`strata_tiering_remote_fetch_bytes_total{topic=%q}`, topic)} {
		if v := metricValue(t, b, series); v <= 0 {
			t.Fatalf("%s = %v after tiering and a replay from remote data", series, v)
		}
	}

	// strata tiering scrub, table and JSON: the bucket agrees with the manifest.
	if out := strataCLI(t, 0, "tiering", "scrub", "--admin", b.admin); !strings.Contains(out, "0 orphaned, 0 missing") {
		t.Fatalf("tiering scrub: %s", out)
	}
	var scrubbed struct {
		Clean bool `json:"clean"`
	}
	if err := json.Unmarshal([]byte(strataCLI(t, 0, "tiering", "scrub", "--admin", b.admin, "--output", "json")), &scrubbed); err != nil || !scrubbed.Clean {
		t.Fatalf("tiering scrub --output json: %+v %v", scrubbed, err)
	}
	// strata cluster status, table and JSON.
	if out := strataCLI(t, 0, "cluster", "status", "--admin", b.admin); !strings.Contains(out, "controller 1") {
		t.Fatalf("cluster status: %s", out)
	}
	var cluster struct {
		Controller int32 `json:"controller"`
	}
	if err := json.Unmarshal([]byte(strataCLI(t, 0, "cluster", "status", "--admin", b.admin, "--output", "json")), &cluster); err != nil || cluster.Controller != 1 {
		t.Fatalf("cluster status --output json: %+v %v", cluster, err)
	}
	// strata cluster confirm-clock: no jump seen, nothing to resume.
	if out := strataCLI(t, 0, "cluster", "confirm-clock", "--admin", b.admin); !strings.Contains(out, "nothing was paused") {
		t.Fatalf("cluster confirm-clock: %s", out)
	}
	// strata bucket create on a directory.
	bucketDir := t.TempDir() + "/new-bucket"
	if out := strataCLI(t, 0, "bucket", "create", "--object-store", "file://"+bucketDir); !strings.Contains(out, "ready") {
		t.Fatalf("bucket create: %s", out)
	}
	strataCLI(t, 2, "bucket", "create", "--object-store", "ftp://x")

	strataCLI(t, 2, "topics", "describe") // --topic missing: a usage error
	strataCLI(t, 2, "groups", "lag", "--output", "yaml")
	cli(0, "topics", "delete", "--topic", topic)
	if out := cli(0, "topics", "list"); strings.Contains(out, topic+" ") {
		t.Fatalf("deleted topic still listed: %s", out)
	}
}
