package lazyfs

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-log/strata/internal/lazyfs/fusetest"
)

// daemon is a strata-lazyfs process started by a test.
type daemon struct {
	cmd     *exec.Cmd
	mount   string
	control string
	exited  chan error
}

// buildBinary builds e2e/cmd/strata-lazyfs into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata-lazyfs")
	build := exec.Command("go", "build", "-o", bin, "github.com/strata-log/strata/e2e/cmd/strata-lazyfs")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startDaemon builds and starts a strata-lazyfs process on a fresh mount
// (the test skips where FUSE is missing); it is killed and the mount
// removed when the test ends.
func startDaemon(t *testing.T) *daemon {
	t.Helper()
	fusetest.Require(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	d := &daemon{mount: filepath.Join(dir, "mount"), control: filepath.Join(dir, "control.sock"), exited: make(chan error, 1)}
	if err := os.Mkdir(d.mount, 0o755); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "--backing", t.TempDir(), "--mount", d.mount, "--control", d.control)
	d.cmd.Stderr = os.Stderr
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		exec.Command("fusermount3", "-uz", d.mount).Run()
		<-d.exited
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() { d.exited <- d.cmd.Wait() }()
	if err != nil || line != "ready\n" {
		t.Fatalf("daemon printed %q (%v), want ready", line, err)
	}
	return d
}

func (d *daemon) command(t *testing.T, command string) string {
	t.Helper()
	conn, err := net.Dial("unix", d.control)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(command + "\n")); err != nil {
		t.Fatal(err)
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	return strings.TrimSuffix(answer, "\n")
}

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(mounts), " "+dir+" ")
}

// waitExit waits for a process that must end; the one-minute bound only
// turns a hang into a failure with a message instead of a test timeout.
func waitExit(t *testing.T, what string, exited <-chan error) error {
	t.Helper()
	select {
	case err := <-exited:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit: hung on the mount", what)
		return nil
	}
}

func TestBinaryControlAndSignal(t *testing.T) {
	d := startDaemon(t)
	path := filepath.Join(d.mount, "f")
	writeDurably(t, path, "synced")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("+lost"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, tc := range []struct{ command, answer string }{
		{"drop", "ok"},
		{"fsync-delay 1", "ok"},
		{"enospc off", "ok"},
		{"fsync-error off", "ok"},
		{"bogus", `error: unknown command "bogus" (drop | enospc on|off | fsync-delay MS | fsync-error on|off | stats)`},
		{"stats", "fsyncs=1 dir_fsyncs=1 drops=1 dropped_bytes=5 undone_creates=0 undone_renames=0 undone_unlinks=0 undo_bytes=0 drop_errors=0 enospc_refusals=0 fsync_errors=0"},
	} {
		if got := d.command(t, tc.command); got != tc.answer {
			t.Errorf("%s: answer %q, want %q", tc.command, got, tc.answer)
		}
	}
	requireContent(t, path, "synced")

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, "daemon after SIGTERM", d.exited); err != nil {
		t.Fatalf("daemon after SIGTERM: %v, want exit 0", err)
	}
	d.exited <- nil // for the cleanup
	if mounted(t, d.mount) {
		t.Fatalf("%s still mounted after SIGTERM", d.mount)
	}
}

// TestBinaryKilledLeavesNoHungProcess kills the daemon while a process is
// inside an fsync on the mount (held there by fsync-delay): after
// `fusermount3 -uz`, as the harness runs it, that process must end.
func TestBinaryKilledLeavesNoHungProcess(t *testing.T) {
	d := startDaemon(t)
	_, writerExited := startDelayedFsync(t, d)

	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, "daemon after SIGKILL", d.exited); err == nil {
		t.Fatal("daemon exited 0 after SIGKILL")
	}
	d.exited <- nil
	if out, err := exec.Command("fusermount3", "-uz", d.mount).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -uz: %v: %s", err, out)
	}
	if err := waitExit(t, "dd blocked in fsync on the killed mount", writerExited); err == nil {
		t.Fatal("dd succeeded, want its fsync to fail on the dead mount")
	}
	if mounted(t, d.mount) {
		t.Fatalf("%s still mounted", d.mount)
	}
}

// startDelayedFsync turns on a long fsync delay in d and starts a writer
// (dd) that fsyncs a file on its mount; it returns once the writer is
// blocked in that fsync, with the channel its exit is sent on.
func startDelayedFsync(t *testing.T, d *daemon) (*exec.Cmd, chan error) {
	t.Helper()
	if got := d.command(t, "fsync-delay 600000"); got != "ok" {
		t.Fatalf("fsync-delay: %s", got)
	}
	writer := exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(d.mount, "f"), "bs=4096", "count=1", "conv=fsync")
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	writerExited := make(chan error, 1)
	go func() { writerExited <- writer.Wait() }()
	// Wait until dd is blocked in the fsync: the daemon counts a pending one
	// only when it finishes, so watch dd's kernel stack state instead.
	for !blockedInFsync(writer.Process.Pid) {
		select {
		case err := <-writerExited:
			t.Fatalf("dd ended before the fsync delay: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return writer, writerExited
}

// blockedInFsync reports whether the process's current system call is
// fsync or fdatasync, from /proc/PID/syscall.
func blockedInFsync(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/syscall")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data))
	return len(fields) > 0 && (fields[0] == strconv.Itoa(unix.SYS_FSYNC) || fields[0] == strconv.Itoa(unix.SYS_FDATASYNC))
}

// TestBinaryKilledWriterLeavesFsyncDelay kills a process while the daemon
// holds its fsync in the fsync delay: the kernel interrupts the request,
// the delay ends, and the process exits; the daemon and the mount go on.
func TestBinaryKilledWriterLeavesFsyncDelay(t *testing.T) {
	d := startDaemon(t)
	writer, writerExited := startDelayedFsync(t, d)
	if err := writer.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, "dd killed inside a delayed fsync", writerExited)
	if got := d.command(t, "fsync-delay 0"); got != "ok" {
		t.Fatalf("fsync-delay 0: %s", got)
	}
	writeDurably(t, filepath.Join(d.mount, "g"), "still usable")
	requireContent(t, filepath.Join(d.mount, "g"), "still usable")
}
