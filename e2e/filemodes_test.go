//go:build e2e

package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// openToOthers walks root and names every file or directory whose mode
// gives any permission to the group or to others, and counts the regular
// files seen under each top-level entry of root (so a test can check that
// the walk covered what it claims to).
func openToOthers(t *testing.T, root string) (open []string, files map[string]int) {
	t.Helper()
	files = map[string]int{}
	err := filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			// A file removed between the listing and the stat (a
			// segment deleted by retention) is not a finding.
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		info, err := entry.Info()
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			open = append(open, fmt.Sprintf("%s %v", path, info.Mode()))
		}
		if info.Mode().IsRegular() {
			relative, _ := filepath.Rel(root, path)
			top, _, _ := strings.Cut(relative, string(filepath.Separator))
			files[top]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return open, files
}

// requireOwnerOnly fails the test when anything under dataDir is open to
// the group or to others, or when the walk did not see files of every kind
// the test produced.
func requireOwnerOnly(t *testing.T, dataDir, topic string, withRemoteCache bool) {
	t.Helper()
	open, files := openToOthers(t, dataDir)
	if len(open) > 0 {
		if len(open) > 20 {
			open = append(open[:20], fmt.Sprintf("… and %d more", len(open)-20))
		}
		t.Fatalf("open to the group or others under the data dir:\n%s", strings.Join(open, "\n"))
	}
	want := []string{"meta.properties", "metadata", topic + "-0", topic + "-local-0", "bucket"}
	if withRemoteCache {
		want = append(want, "remote-cache")
	}
	for _, top := range want {
		if files[top] == 0 {
			t.Fatalf("no file under %s/%s (files per top-level entry: %v): the walk does not cover what the test wrote", dataDir, top, files)
		}
	}
}

// TestDataDirPermissions: every file a node writes under its data dir —
// partition segments, indexes and checkpoints, meta.properties, the Raft
// log, the default file:// bucket of tiered segments and the remote chunk
// cache — is readable by its owner only, and every directory is closed to
// the group and others (issue 14: they were 0644 and 0755). A data dir
// left open by an earlier version is restricted to its owner at start.
func TestDataDirPermissions(t *testing.T) {
	b := startBroker(t, "--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300")
	if info, err := os.Stat(b.dataDir); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("data dir created with mode %v (%v), want drwx------", info.Mode(), err)
	}

	const (
		segmentBytes = 64 << 10
		localBytes   = 128 << 10
		records      = 300
		recordSize   = 4 << 10
	)
	adm := newAdmin(t, b.addr)
	topic := uniqueTopic(t)
	createOne(t, adm, 1, 1, tieredTopicConfigs(segmentBytes, localBytes), topic)
	createOne(t, adm, 1, 1, nil, topic+"-local")
	cl := newClient(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(32<<10), kgo.ProducerBatchCompression(kgo.NoCompression()))
	g := tierGen{topic: topic, size: recordSize, base: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	g.produce(t, cl, 0, records)
	if err := cl.ProduceSync(testContext(t, 30*time.Second), &kgo.Record{Topic: topic + "-local", Value: []byte("local")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "segments uploaded and removed from local disk", func() error {
		if local := localLogBytes(t, b.dataDir, topic, 0); local > localBytes+3*segmentBytes {
			return fmt.Errorf("local log still holds %d bytes", local)
		}
		return nil
	})
	// Reading from offset 0 goes through the remote chunk cache.
	g.requireReplay(t, []string{b.addr}, 0, records)
	requireOwnerOnly(t, b.dataDir, topic, true)

	// A clean shutdown writes checkpoints and producer snapshots.
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	requireOwnerOnly(t, b.dataDir, topic, false)

	// A data dir as an earlier version left it: the top-level directory,
	// which keeps other users out of everything below, is restricted again
	// at start, with a log line saying so.
	if err := os.Chmod(b.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.restart(t)
	if info, err := os.Stat(b.dataDir); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("data dir left at mode %v (%v) after a restart, want drwx------", info.Mode(), err)
	}
	if !b.logContains("restricted the data dir to its owner") {
		t.Fatal("no log line about restricting the data dir")
	}
}
