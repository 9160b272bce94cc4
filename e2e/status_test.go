//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// chromiumBinary finds a headless-capable Chromium (make deps installs
// Debian's chromium).
func chromiumBinary(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("Chromium is needed for the status page test: apt-get install chromium (make deps does it)")
	return ""
}

// artifactDir is where tests leave files for people to look at
// (e2e/artifacts, or $STRATA_ARTIFACTS).
func artifactDir(t *testing.T) string {
	dir := os.Getenv("STRATA_ARTIFACTS")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStatusPage renders the admin listener's status page in headless
// Chromium and checks the DOM: the cluster, the broker, a tiered partition
// with both a cold (object store) and a hot (local) range drawn, the
// tiering backlog column and a consumer group's lag. The screenshot is kept
// in the artifacts directory.
func TestStatusPage(t *testing.T) {
	chromium := chromiumBinary(t)
	b := startBroker(t, "--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300")
	adm := newAdmin(t, b.addr)
	topic := legalTopic(t)
	if r := createOne(t, adm, 1, 1, tieredTopicConfigs(128<<10, 256<<10), topic); r.Err != nil {
		t.Fatal(r.Err)
	}
	g := tierGen{topic: topic, size: 4 << 10, base: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	cl := newClient(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(32<<10))
	g.produce(t, cl, 0, 500)
	eventually(t, time.Minute, "a partition with both cold and hot data", func() error {
		if start := offsetAt(t, []string{b.addr}, topic, -4); start < 100 {
			return fmt.Errorf("local log starts at %d", start)
		}
		return nil
	})
	// A consumer group that read part of the topic: its lag shows.
	group := "status-" + topic
	consumer := newClient(t, b.addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(64<<10))
	ctx := testContext(t, time.Minute)
	var last *kgo.Record
	for last == nil {
		fetches := consumer.PollRecords(ctx, 10)
		if ctx.Err() != nil {
			t.Fatal("consumer group read nothing")
		}
		if records := fetches.Records(); len(records) > 0 {
			last = records[len(records)-1]
		}
	}
	if err := consumer.CommitRecords(ctx, last); err != nil {
		t.Fatal(err)
	}
	consumer.Close()

	dir := artifactDir(t)
	screenshot := filepath.Join(dir, "status-page.png")
	os.Remove(screenshot)
	url := "http://" + b.admin + "/"
	browse := func(args ...string) string {
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, chromium, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
			"--user-data-dir=" + t.TempDir(), "--window-size=1400,1000"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return string(out)
	}
	dom := browse("--dump-dom", url)
	if err := os.WriteFile(filepath.Join(dir, "status-page.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?s)<tr class="partition" data-topic="` + regexp.QuoteMeta(topic) + `" data-partition="0">(.*?)</tr>`).FindStringSubmatch(dom)
	if row == nil {
		t.Fatalf("no row for %s partition 0 in the rendered page (see %s/status-page.html)", topic, dir)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`class="remote-range" data-start="0" data-end="[1-9][0-9]*"`),
		regexp.MustCompile(`class="local-range" data-start="[1-9][0-9]*" data-end="500"`),
		regexp.MustCompile(`<div class="cold" style="left:0\.00%;width:[1-9][0-9.]*%"`),
		regexp.MustCompile(`<div class="hot" style="left:[1-9][0-9.]*%;width:[1-9][0-9.]*%"`),
		regexp.MustCompile(`class="hw">500<`),
		regexp.MustCompile(`class="backlog">`),
	} {
		if !want.MatchString(row[1]) {
			t.Errorf("partition row lacks %s:\n%s", want, row[1])
		}
	}
	for _, want := range []string{`id="cluster-id"`, `class="broker" data-broker="1"`, `data-group="` + group + `"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %s (see %s/status-page.html)", want, dir)
		}
	}
	lag := regexp.MustCompile(`(?s)data-group="` + regexp.QuoteMeta(group) + `".*?<td class="lag">([0-9]+)</td>`).FindStringSubmatch(dom)
	if lag == nil || lag[1] == "0" || fmt.Sprint(500-last.Offset-1) != lag[1] {
		t.Errorf("group lag %v, want %d", lag, 500-last.Offset-1)
	}
	browse("--screenshot="+screenshot, url)
	if info, err := os.Stat(screenshot); err != nil || info.Size() < 1000 {
		t.Fatalf("screenshot %s: %v", screenshot, err)
	}
	t.Logf("status page screenshot: %s", screenshot)
}
