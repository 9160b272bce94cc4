package lazyfs

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Controller is what the control socket drives: a Mount (its Drop also
// invalidates the kernel's caches; the faults and counters are the FS's).
type Controller interface {
	Drop() error
	FS() *FS
}

var _ Controller = (*Mount)(nil)

// Control serves the control protocol (see the package doc) on a Unix
// socket.
type Control struct {
	listener   net.Listener
	controller Controller
	logger     *slog.Logger

	wg    sync.WaitGroup // the accept loop and one goroutine per connection
	mu    sync.Mutex     // guards conns
	conns map[net.Conn]bool
}

// ServeControl listens on the Unix socket path (replacing a stale socket
// file) and serves commands until Close.
func ServeControl(path string, controller Controller, logger *slog.Logger) (*Control, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lazyfs: control socket: %w", err)
	}
	listener, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: control socket: %w", err)
	}
	c := &Control{listener: listener, controller: controller, logger: logger, conns: map[net.Conn]bool{}}
	c.wg.Add(1)
	go c.accept()
	return c, nil
}

func (c *Control) accept() {
	defer c.wg.Done()
	for {
		conn, err := c.listener.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conns[conn] = true
		c.mu.Unlock()
		c.wg.Add(1)
		go c.serve(conn)
	}
}

func (c *Control) serve(conn net.Conn) {
	defer c.wg.Done()
	defer func() {
		c.mu.Lock()
		delete(c.conns, conn)
		c.mu.Unlock()
		conn.Close()
	}()
	scanner := bufio.NewScanner(conn)
	for scanner.Scan() {
		answer := Execute(c.controller, scanner.Text())
		c.logger.Info("lazyfs: control", "command", scanner.Text(), "answer", answer)
		if _, err := fmt.Fprintln(conn, answer); err != nil {
			return
		}
	}
}

// Close stops serving, closes every connection and waits for their
// goroutines; the socket file is removed.
func (c *Control) Close() error {
	err := c.listener.Close()
	c.mu.Lock()
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return err
}

// Execute runs one command line and returns its one-line answer: "ok",
// the stats line, or "error: <text>".
func Execute(controller Controller, line string) string {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "error: empty command"
	}
	switch command, args := fields[0], fields[1:]; {
	case command == "drop" && len(args) == 0:
		if err := controller.Drop(); err != nil {
			return "error: " + err.Error()
		}
		return "ok"
	case command == "enospc" && len(args) == 1 && (args[0] == "on" || args[0] == "off"):
		controller.FS().SetENOSPC(args[0] == "on")
		return "ok"
	case command == "fsync-error" && len(args) == 1 && (args[0] == "on" || args[0] == "off"):
		controller.FS().SetFsyncError(args[0] == "on")
		return "ok"
	case command == "fsync-delay" && len(args) == 1:
		ms, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || ms < 0 {
			return "error: fsync-delay wants a number of milliseconds >= 0"
		}
		controller.FS().SetFsyncDelay(time.Duration(ms) * time.Millisecond)
		return "ok"
	case command == "stats" && len(args) == 0:
		return controller.FS().Stats().String()
	default:
		return fmt.Sprintf("error: unknown command %q (drop | enospc on|off | fsync-delay MS | fsync-error on|off | stats)", line)
	}
}
