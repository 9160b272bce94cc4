//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/internal/childproc"
)

// strataBin is the binary under test: $STRATA_BIN, or built once by TestMain
// (without -race, so timing-sensitive scenarios are not starved).
var strataBin string

func TestMain(m *testing.M) {
	code := func() int {
		strataBin = os.Getenv("STRATA_BIN")
		if strataBin == "" {
			dir, err := os.MkdirTemp("", "strata-e2e-bin")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			strataBin = filepath.Join(dir, "strata")
			build := exec.Command("go", "build", "-o", strataBin, "../cmd/strata")
			build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as make build: the compose test puts it on scratch
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "building strata:", err)
				return 1
			}
		}
		defer stopShared()
		defer removeMemberBin()
		return m.Run()
	}()
	os.Exit(code)
}

// brokerProcess is one strata serve process on loopback ports.
type brokerProcess struct {
	dataDir string
	addr    string // client listener
	admin   string
	ctrl    string
	extra   []string
	logPath string
	// maxFiles, when set, starts the process under `ulimit -n maxFiles`.
	maxFiles int
	// adminTLS, when set, reaches the admin listener over HTTPS
	// (--admin-ssl) with this client configuration (adminGet).
	adminTLS *tls.Config

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// picked holds every address freePort handed out in this test binary:
// the kernel may offer a port again as soon as it is closed, and a
// cluster's node once got the same port for its admin and controller
// listeners (one of them then failed to bind).
var picked = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// listenLoopback listens on a loopback port of the kernel's choosing that
// freePort has not handed out (a broker may not have bound that one yet),
// and records it so freePort never hands it out: a test's proxy once
// listened on the port picked for a broker's admin listener, and the
// broker failed to start.
func listenLoopback(tb testing.TB) net.Listener {
	tb.Helper()
	var taken []net.Listener
	defer func() {
		for _, ln := range taken {
			ln.Close()
		}
	}()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := ln.Addr().String()
		picked.Lock()
		fresh := !picked.addrs[addr]
		picked.addrs[addr] = true
		picked.Unlock()
		if fresh {
			return ln
		}
		taken = append(taken, ln) // held, so the kernel offers another
	}
}

// freePort returns a loopback address with a currently free port, never
// one it (or listenLoopback) returned before.
func freePort(tb testing.TB) string {
	tb.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		picked.Lock()
		fresh := !picked.addrs[addr]
		picked.addrs[addr] = true
		picked.Unlock()
		if fresh {
			return addr
		}
	}
}

// startBroker starts a broker with its own data dir. Extra flags are passed
// to strata serve. The process is killed at the end of the test; its log is
// printed when the test failed.
func startBroker(tb testing.TB, extra ...string) *brokerProcess {
	tb.Helper()
	return startBrokerWithFileLimit(tb, 0, extra...)
}

// startBrokerWithFileLimit is startBroker with the process's file
// descriptors limited to maxFiles (soft and hard, as prlimit
// --nofile=N:N); 0 leaves the limit alone.
func startBrokerWithFileLimit(tb testing.TB, maxFiles int, extra ...string) *brokerProcess {
	tb.Helper()
	dir := tb.TempDir()
	b := &brokerProcess{
		dataDir:  filepath.Join(dir, "data"),
		addr:     freePort(tb),
		admin:    freePort(tb),
		ctrl:     freePort(tb),
		extra:    extra,
		logPath:  filepath.Join(dir, "strata.log"),
		maxFiles: maxFiles,
	}
	tb.Cleanup(func() {
		b.kill()
		if tb.Failed() {
			logTail(tb, b.logPath)
		}
	})
	if err := b.startRetryingPorts(tb); err != nil {
		tb.Fatal(err)
	}
	return b
}

// errPortTaken: a port picked by freePort was taken by someone else before
// the broker bound it (freePort can only pick, not reserve).
var errPortTaken = errors.New("a picked port was taken before strata bound it")

// startRetryingPorts starts the process, picking fresh ports when one of
// the picked ones was taken in between.
func (b *brokerProcess) startRetryingPorts(tb testing.TB) error {
	for attempt := 0; ; attempt++ {
		err := b.start()
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 4 {
			return err
		}
		b.addr, b.admin, b.ctrl = freePort(tb), freePort(tb), freePort(tb)
	}
}

func logTail(tb testing.TB, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if len(data) > 20000 {
		data = data[len(data)-20000:]
	}
	tb.Logf("broker log %s (tail):\n%s", path, data)
}

func (b *brokerProcess) args() []string {
	return append([]string{"serve",
		"--data-dir", b.dataDir,
		"--listen", b.addr,
		"--admin-listen", b.admin,
		"--controller-listen", b.ctrl,
		"--log-level", "debug",
	}, b.extra...)
}

// start launches the process and waits until /readyz answers.
func (b *brokerProcess) start() error {
	logFile, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(strataBin, b.args()...)
	if b.maxFiles > 0 {
		cmd = exec.Command("bash", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, b.maxFiles), strataBin}, b.args()...)...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Every process the suite starts goes through childproc.Start, so it dies
	// with the test binary even when that is killed (bash execs strata and
	// passes the parent-death signal on).
	if err := childproc.Start(cmd); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(done)
	}()
	b.mu.Lock()
	b.cmd, b.done = cmd, done
	b.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			tail, _ := os.ReadFile(b.logPath)
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			if bytes.Contains(tail, []byte("address already in use")) {
				return fmt.Errorf("%w: %s", errPortTaken, tail)
			}
			return fmt.Errorf("strata exited during start-up; log %s:\n%s", b.logPath, tail)
		default:
		}
		resp, err := b.adminGet("/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("strata not ready after 60s; see %s", b.logPath)
}

func (b *brokerProcess) signal(sig syscall.Signal, wait time.Duration) error {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("strata did not exit within %s of %v", wait, sig)
	}
}

// kill9 kills the process without any chance to flush.
func (b *brokerProcess) kill() { b.signal(syscall.SIGKILL, 10*time.Second) }

// stop asks for a graceful shutdown (SIGTERM) and waits for it.
func (b *brokerProcess) stop() error { return b.signal(syscall.SIGTERM, 30*time.Second) }

// exitCode returns the exit code of a stopped process.
func (b *brokerProcess) exitCode() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || b.cmd.ProcessState == nil {
		return -1
	}
	return b.cmd.ProcessState.ExitCode()
}

// restart starts a stopped (or killed) broker again. One still running is
// refused: a second process on its data directory would exit at once
// while the first answered /readyz, and nothing would have restarted.
func (b *brokerProcess) restart(tb testing.TB) {
	tb.Helper()
	if b.running() {
		tb.Fatal("restart of a running broker: stop or kill it first")
	}
	if err := b.start(); err != nil {
		tb.Fatal(err)
	}
}

// running reports whether the process was started and has not exited.
func (b *brokerProcess) running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

func (b *brokerProcess) logContains(s string) bool {
	data, _ := os.ReadFile(b.logPath)
	return bytes.Contains(data, []byte(s))
}

// shared is one broker that tests which only need their own topics use, so
// the suite starts fewer processes.
var (
	sharedOnce sync.Once
	sharedB    *brokerProcess
	sharedErr  error
	sharedDir  string
)

func sharedBroker(tb testing.TB) *brokerProcess {
	tb.Helper()
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "strata-e2e-shared")
		if sharedErr != nil {
			return
		}
		ports := make([]string, 3)
		for i := range ports {
			ports[i] = freePort(tb)
		}
		sharedB = &brokerProcess{
			dataDir: filepath.Join(sharedDir, "data"),
			addr:    ports[0], admin: ports[1], ctrl: ports[2],
			logPath: filepath.Join(sharedDir, "strata.log"),
		}
		sharedErr = sharedB.startRetryingPorts(tb)
	})
	if sharedErr != nil {
		tb.Fatalf("shared broker: %v", sharedErr)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			logTail(tb, sharedB.logPath)
		}
	})
	return sharedB
}

func stopShared() {
	if sharedB != nil {
		sharedB.stop()
		if sharedB.exitCode() != 0 {
			fmt.Fprintf(os.Stderr, "shared broker exited with %d; log: %s\n", sharedB.exitCode(), sharedB.logPath)
		}
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
}

// client returns a franz-go client for the broker, closed with the test.
func newClient(tb testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// uniqueTopic makes a topic name from the test name.
func uniqueTopic(tb testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-", "#", "-").Replace(tb.Name())
	return fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%1_000_000)
}

func testContext(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
