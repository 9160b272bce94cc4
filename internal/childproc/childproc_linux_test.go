package childproc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// parentEnv makes the test binary act as a parent process (TestMain) that
// starts a child with Start, prints the child's pid and waits to be killed.
const parentEnv = "CHILDPROC_TEST_PARENT"

func TestMain(m *testing.M) {
	if os.Getenv(parentEnv) == "1" {
		child := exec.Command("sleep", "600")
		if err := Start(child); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(child.Process.Pid)
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// TestChildDiesWithKilledParent: SIGKILL a parent (the re-executed test
// binary) and its child is gone within seconds.
func TestChildDiesWithKilledParent(t *testing.T) {
	parent := exec.Command(os.Args[0])
	parent.Env = append(os.Environ(), parentEnv+"=1")
	parent.Stderr = os.Stderr
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(parent); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		parent.Process.Kill()
		parent.Wait()
		t.Fatalf("reading the child's pid from the parent: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if running(child) {
			syscall.Kill(child, syscall.SIGKILL)
		}
	})
	if !running(child) {
		t.Fatalf("child %d is not running before its parent is killed", child)
	}
	parent.Process.Kill()
	parent.Wait()
	if !waitUntil(5*time.Second, func() bool { return !running(child) }) {
		t.Fatalf("child %d still runs 5s after its parent was killed", child)
	}
}

// TestChildOutlivesStartingThread: the thread a caller of Start runs on may
// end (a goroutine exiting while locked to it) without killing the child,
// because children are forked from a thread that never ends.
func TestChildOutlivesStartingThread(t *testing.T) {
	child := exec.Command("sleep", "600")
	thread := make(chan int)
	errs := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime ends this thread when the goroutine returns
		thread <- syscall.Gettid()
		errs <- Start(child)
	}()
	tid := <-thread
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
	})
	if tid == os.Getpid() {
		t.Skip("the goroutine ran on the main thread, which the runtime never ends")
	}
	if !waitUntil(5*time.Second, func() bool { _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); return err != nil }) {
		t.Fatalf("thread %d did not end", tid)
	}
	// The parent-death signal is sent as the thread exits; give it time to land.
	if waitUntil(time.Second, func() bool { return !running(child.Process.Pid) }) {
		t.Fatal("the child died with the thread of the goroutine that called Start")
	}
}

// running reports whether pid is a live process (not gone, not a zombie
// waiting to be reaped).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state …: comm may hold spaces and parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func waitUntil(timeout time.Duration, condition func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if condition() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
