//go:build linux

package tiering_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/tiering"
)

// threadNice reads a thread's nice value from /proc (field 19 of stat).
func threadNice(t *testing.T, path string) int {
	t.Helper()
	stat, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	nice, err := strconv.Atoi(fields[16]) // fields from 3 (state) on: nice is field 19
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return nice
}

// The disk cache's writer runs on a thread of its own at nice 19, as the
// kernel sees it (/proc), while the rest of the process keeps its
// priority; the thread ends when the tier closes, so no other goroutine
// ever runs on it. Before, the writer ran on any of the process's
// threads at the process's priority.
func TestCacheWriterThreadAtLowestPriority(t *testing.T) {
	mainNice := threadNice(t, "/proc/self/stat") // the main thread: what tools show as the process's
	if mainNice == 19 {
		t.Skip("the test runs at nice 19 already")
	}
	local, bucket, segments := uploadedLog(t, 250)
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: 64 << 10})
	replaySegments(t, tier, local, segments[:1], 16<<10)
	tiering.WaitCacheWrites(tier)
	if tier.Stats().CacheBytes == 0 {
		t.Fatal("nothing written to the disk cache")
	}
	tid := tiering.CacheWriterThread(tier)
	if tid == 0 {
		t.Fatal("the cache writer did not lower its thread's priority (see the tier log)")
	}
	task := "/proc/self/task/" + strconv.Itoa(tid)
	if nice := threadNice(t, task+"/stat"); nice != 19 {
		t.Fatalf("the cache writer's thread %d runs at nice %d, want 19", tid, nice)
	}
	if nice := threadNice(t, "/proc/self/stat"); nice != mainNice {
		t.Fatalf("the process's main thread runs at nice %d, want %d as before (only the writer's thread is lowered)", nice, mainNice)
	}
	if err := tier.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(task); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache writer's thread %d still exists after Close: another goroutine could run at nice 19", tid)
		}
	}
}
