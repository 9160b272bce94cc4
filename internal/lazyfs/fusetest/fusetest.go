// Package fusetest tells a test whether FUSE mounts can run here. It is
// its own package, importing nothing of lazyfs, so that both package
// lazyfs's own tests and package lazyfstest (which imports lazyfs) can use
// it without an import cycle.
package fusetest

import (
	"os"
	"os/exec"
	"testing"
)

// Require skips the test where FUSE is missing, or fails it under CI
// (env CI set), where a skipped power-loss test would hide a regression.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		missing = append(missing, "fusermount3")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("FUSE is needed and missing here: %v (CI is set, so this fails instead of skipping)", missing)
	}
	t.Skipf("skipping: FUSE is missing here: %v (install fuse3 and load the fuse module to run the lost-page-cache tests)", missing)
}
