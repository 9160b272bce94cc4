//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-log/strata/internal/lazyfs/fusetest"

	"github.com/strata-log/strata/internal/childproc"
)

// lazyFS is one strata-lazyfs process: a FUSE file system mounted over a
// broker's data dir that passes writes through to a backing directory but
// keeps what was not fsynced, and forgets it on `drop` (a power loss). Its
// contract (e2e/cmd/strata-lazyfs): `strata-lazyfs --backing DIR --mount DIR
// --control SOCKET` prints "ready" once mounted; the control socket takes one
// command a line — drop, enospc on|off, fsync-delay MS, stats — and answers
// "ok" or "error: ..."; SIGTERM unmounts.
type lazyFS struct {
	mount   string
	control string
	cmd     *exec.Cmd
	done    chan struct{}
}

var (
	lazyfsOnce sync.Once
	lazyfsPath string
	lazyfsErr  error
)

// lazyfsBin is $STRATA_LAZYFS_BIN, or strata-lazyfs built once from
// e2e/cmd/strata-lazyfs; "" with a reason when neither exists.
func lazyfsBin(t *testing.T) (string, string) {
	t.Helper()
	if p := os.Getenv("STRATA_LAZYFS_BIN"); p != "" {
		return p, ""
	}
	if _, err := os.Stat("cmd/strata-lazyfs"); err != nil {
		return "", "e2e/cmd/strata-lazyfs is not in this tree (branch lazyfs not merged yet)"
	}
	lazyfsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-lazyfs-bin")
		if err != nil {
			lazyfsErr = err
			return
		}
		lazyfsPath = filepath.Join(dir, "strata-lazyfs")
		if out, err := exec.Command("go", "build", "-o", lazyfsPath, "./cmd/strata-lazyfs").CombinedOutput(); err != nil {
			lazyfsErr = fmt.Errorf("building strata-lazyfs: %v\n%s", err, out)
		}
	})
	if lazyfsErr != nil {
		t.Fatal(lazyfsErr)
	}
	return lazyfsPath, ""
}

// requireLazyFS returns the strata-lazyfs binary, or skips the test with the
// reason it cannot run here — except under CI (CI=true), where a machine
// without FUSE fails the test: the power-loss scenarios must run there.
func requireLazyFS(t *testing.T) string {
	t.Helper()
	fusetest.Require(t) // /dev/fuse and fusermount3: skip here, fail under CI
	bin, reason := lazyfsBin(t)
	if reason == "" {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("lost-page-cache scenarios cannot run: %s (CI=true: they must)", reason)
	}
	t.Skipf("lost-page-cache scenarios skipped: %s", reason)
	return ""
}

// startLazyFS mounts a lazy file system at mount over backing. It is
// unmounted (fusermount3 -uz, so a hung daemon never leaves a busy mount
// behind) when the test ends, after the processes started later are gone.
func startLazyFS(t *testing.T, bin, backing, mount string) *lazyFS {
	t.Helper()
	for _, d := range []string{backing, mount} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Unix socket paths are short (108 bytes): not under t.TempDir.
	sockDir, err := os.MkdirTemp("", "nemesis-lazyfs")
	if err != nil {
		t.Fatal(err)
	}
	l := &lazyFS{mount: mount, control: filepath.Join(sockDir, "ctl"), done: make(chan struct{})}
	l.cmd = exec.Command(bin, "--backing", backing, "--mount", mount, "--control", l.control)
	out, err := l.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(filepath.Dir(backing), "lazyfs.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	l.cmd.Stderr = logFile
	t.Cleanup(func() {
		l.stop()
		logFile.Close()
		os.RemoveAll(sockDir)
	})
	if err := childproc.Start(l.cmd); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if !said && strings.TrimSpace(sc.Text()) == "ready" {
				said = true
				ready <- nil
			}
		}
		if !said {
			ready <- errors.New("strata-lazyfs exited before printing ready")
		}
	}()
	go func() { l.cmd.Wait(); close(l.done) }()
	select {
	case err := <-ready:
		if err != nil {
			data, _ := os.ReadFile(logPath)
			t.Fatalf("%v:\n%s", err, data)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("strata-lazyfs not ready after 30s (log %s)", logPath)
	}
	return l
}

// stop unmounts: SIGTERM, then kill, and always a lazy unmount.
func (l *lazyFS) stop() {
	if l.cmd.Process != nil {
		l.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-l.done:
		case <-time.After(5 * time.Second):
			l.cmd.Process.Kill()
			<-l.done
		}
	}
	exec.Command("fusermount3", "-uz", l.mount).Run()
}

// do sends one control command and returns its answer.
func (l *lazyFS) do(command string) (string, error) {
	conn, err := net.DialTimeout("unix", l.control, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintln(conn, command); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("strata-lazyfs %q: %w", command, err)
	}
	answer = strings.TrimSpace(answer)
	if strings.HasPrefix(answer, "error") {
		return "", fmt.Errorf("strata-lazyfs %q: %s", command, answer)
	}
	return answer, nil // "ok", or the counters of stats
}
