package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-log/strata/broker/quota"
)

// The isolation phase's peer: the bytes a throttled cold replay moves
// through this host, moved by three plain processes with no Strata (and
// no S3 server, no Kafka client) in the path, at the replay's measured
// rate, while the same fixed-rate producer runs. A source process reads
// a file (as the S3 server reads its objects) and writes it to a loopback
// connection; a hop process reads it, writes it to rotating files (as the
// broker's chunk cache does) and writes it on to a second connection; a
// sink process reads and drops it (as the consumer takes its Fetch
// responses). Each moves relayUnit bytes at a time: Kafka's default
// max.partition.fetch.bytes, and the tier's chunk. The producer's p99
// during the relay over its p99 without is what moving these bytes costs
// the producer on this host before any broker work: the floor under the
// replay's figure. Printed next to the goal, never counted as one.

// relayUnit is the bytes each relay process reads or writes at a time.
const relayUnit = 1 << 20

// relayFileBytes is the size of the source's file (read over and over)
// and of each of the hop's files (it keeps the last relayHopFiles).
const (
	relayFileBytes = 32 << 20
	relayHopFiles  = 8
)

// relay is one run of the peer: its three processes.
type relay struct {
	source, hop, sink *relayChild
}

// relayChild is one of the relay's processes: this binary with --relay.
// It runs until its stdin closes, then prints the bytes it moved.
type relayChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
}

func startRelayChild(spec string) (*relayChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &relayChild{cmd: exec.Command(self, "--relay", spec)}
	c.cmd.Stderr = &c.stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.stdout = bufio.NewReader(out)
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	return c, nil
}

// line reads the child's next line of output.
func (c *relayChild) line() (string, error) {
	s, err := c.stdout.ReadString('\n')
	if err != nil {
		c.cmd.Wait()
		return "", fmt.Errorf("relay process: %w: %s", err, strings.TrimSpace(c.stderr.String()))
	}
	return strings.TrimSpace(s), nil
}

// stop closes the child's stdin and returns the bytes it moved.
func (c *relayChild) stop() (int64, error) {
	c.stdin.Close()
	s, err := c.line()
	if err != nil {
		return 0, err
	}
	if err := c.cmd.Wait(); err != nil {
		return 0, fmt.Errorf("relay process: %w: %s", err, strings.TrimSpace(c.stderr.String()))
	}
	return strconv.ParseInt(s, 10, 64)
}

// startRelay starts the sink, the hop and the source, which sends
// bytesPerSecond from a file in dir through the hop (writing files in
// dir) to the sink.
func startRelay(dir string, bytesPerSecond float64) (*relay, error) {
	src := filepath.Join(dir, "relay-source")
	if err := os.WriteFile(src, randomBytes(relayFileBytes), 0o600); err != nil {
		return nil, err
	}
	hopDir := filepath.Join(dir, "relay-hop")
	if err := os.MkdirAll(hopDir, 0o700); err != nil {
		return nil, err
	}
	var r relay
	var err error
	if r.sink, err = startRelayChild("sink"); err != nil {
		return nil, err
	}
	sinkAddr, err := r.sink.line()
	if err != nil {
		r.kill()
		return nil, err
	}
	if r.hop, err = startRelayChild("hop," + sinkAddr + "," + hopDir); err != nil {
		r.kill()
		return nil, err
	}
	hopAddr, err := r.hop.line()
	if err != nil {
		r.kill()
		return nil, err
	}
	if r.source, err = startRelayChild(fmt.Sprintf("source,%s,%.0f,%s", hopAddr, bytesPerSecond, src)); err != nil {
		r.kill()
		return nil, err
	}
	return &r, nil
}

// stop stops the source, then the others (each sees its connection
// close), and returns the bytes the sink received.
func (r *relay) stop() (int64, error) {
	var errs []error
	var sunk int64
	for _, c := range []*relayChild{r.source, r.hop, r.sink} {
		n, err := c.stop()
		errs = append(errs, err)
		if c == r.sink {
			sunk = n
		}
	}
	return sunk, errors.Join(errs...)
}

func (r *relay) kill() {
	for _, c := range []*relayChild{r.source, r.hop, r.sink} {
		if c != nil {
			c.stdin.Close()
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	}
}

// runRelayChild is a --relay process: "source,ADDR,BYTES_PER_SECOND,FILE",
// "hop,NEXT_ADDR,DIR" or "sink". The hop and the sink print the address
// they listen on first; each prints the bytes it moved when its stdin
// closes (or, for the hop and the sink, when the connection in ends).
func runRelayChild(spec string) error {
	parts := strings.Split(spec, ",")
	stopped := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stopped)
	}()
	var moved int64
	var err error
	switch {
	case parts[0] == "source" && len(parts) == 4:
		var rate float64
		if rate, err = strconv.ParseFloat(parts[2], 64); err == nil {
			moved, err = relaySource(parts[1], rate, parts[3], stopped)
		}
	case parts[0] == "hop" && len(parts) == 3:
		moved, err = relayHop(parts[1], parts[2])
	case parts[0] == "sink" && len(parts) == 1:
		moved, err = relaySink()
	default:
		return fmt.Errorf("want source,ADDR,RATE,FILE, hop,NEXT,DIR or sink, got %q", spec)
	}
	if err != nil {
		return err
	}
	<-stopped
	fmt.Println(moved)
	return nil
}

// relaySource sends file over and over to addr at bytesPerSecond,
// relayUnit bytes at a time, until stopped.
func relaySource(addr string, bytesPerSecond float64, file string, stopped <-chan struct{}) (int64, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, relayUnit)
	pacer := quota.NewPacer(quota.PacerConfig{BytesPerSecond: int64(bytesPerSecond), Burst: relayUnit})
	var sent int64
	for {
		select {
		case <-stopped:
			return sent, nil
		default:
		}
		n, err := f.Read(buf)
		if err == io.EOF {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return sent, err
			}
			continue
		}
		if err != nil {
			return sent, err
		}
		pacer.Wait(context.Background(), int64(n))
		if _, err := conn.Write(buf[:n]); err != nil {
			return sent, err
		}
		sent += int64(n)
	}
}

// relayListen listens on a loopback port, prints its address and accepts
// one connection.
func relayListen() (net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	fmt.Println(ln.Addr())
	return ln.Accept()
}

// relayHop copies what arrives to next and to files in dir (a new one
// every relayFileBytes, keeping the last relayHopFiles), relayUnit bytes
// at a time, until the connection in ends.
func relayHop(next, dir string) (int64, error) {
	in, err := relayListen()
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := net.Dial("tcp", next)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	buf := make([]byte, relayUnit)
	var (
		moved  int64
		file   *os.File
		files  int
		inFile int64
	)
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			if file == nil || inFile >= relayFileBytes {
				if file != nil {
					file.Close()
					os.Remove(filepath.Join(dir, strconv.Itoa(files-relayHopFiles)))
				}
				if file, err = os.Create(filepath.Join(dir, strconv.Itoa(files))); err != nil {
					return moved, err
				}
				files, inFile = files+1, 0
			}
			if _, err := file.Write(buf[:n]); err != nil {
				return moved, err
			}
			inFile += int64(n)
			if _, err := out.Write(buf[:n]); err != nil {
				return moved, err
			}
			moved += int64(n)
		}
		if err != nil {
			return moved, nil // the source stopped
		}
	}
}

// relaySink reads and drops what arrives, relayUnit bytes at a time,
// until the connection ends.
func relaySink() (int64, error) {
	in, err := relayListen()
	if err != nil {
		return 0, err
	}
	defer in.Close()
	buf := make([]byte, relayUnit)
	var moved int64
	for {
		n, err := io.ReadFull(in, buf)
		moved += int64(n)
		if err != nil {
			return moved, nil
		}
	}
}

// relayFor runs the relay at bytesPerSecond for d (or until ctx ends)
// and returns the bytes the sink received.
func relayFor(ctx context.Context, dir string, bytesPerSecond float64, d time.Duration) (int64, error) {
	r, err := startRelay(dir, bytesPerSecond)
	if err != nil {
		return 0, err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	sunk, err := r.stop()
	if err != nil {
		return 0, err
	}
	return sunk, ctx.Err()
}
