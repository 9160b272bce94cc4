// Package tieringtest holds test helpers for the tiering package: a real
// S3-compatible server process (versitygw over a posix directory) and a
// fault-injecting Bucket wrapper.
package tieringtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/strata-log/strata/internal/childproc"
)

// Credentials of the test server's root account. Tests export them as
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY so that s3:// URLs find them
// through the standard AWS chain.
const (
	S3AccessKey = "strata-test-access"
	S3SecretKey = "strata-test-secret-key-0123456789"
	S3Region    = "us-east-1"
)

// InstallHint says how to get the server binary; tests that need it fail
// (or, outside CI, skip) with this message when it is missing.
const InstallHint = "versitygw not found: install it with `make deps` " +
	"(go install github.com/versity/versitygw/cmd/versitygw@v1.8.0, about 4 minutes on 2 cores) or point VERSITYGW_BIN at the binary"

// VersityGWBinary finds the versitygw binary: $VERSITYGW_BIN, else
// versitygw in PATH, else $(go env GOPATH)/bin/versitygw.
func VersityGWBinary() (string, error) {
	if path := os.Getenv("VERSITYGW_BIN"); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("VERSITYGW_BIN=%s: %w; %s", path, err, InstallHint)
		}
		return path, nil
	}
	if path, err := exec.LookPath("versitygw"); err == nil {
		return path, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		path := filepath.Join(dir, "bin", "versitygw")
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
	}
	return "", errors.New(InstallHint)
}

// S3Server is a versitygw process serving S3 on a loopback port over a
// posix directory (each bucket a subdirectory).
type S3Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Dir      string // the posix root

	command *exec.Cmd
	output  *lockedBuffer
	exited  chan struct{}
	tls     []string // --cert FILE --key FILE when serving HTTPS
}

// StartS3Server starts versitygw with its posix backend on dir and waits
// until it accepts connections. The caller stops it with Close.
func StartS3Server(dir string) (*S3Server, error) { return startS3Server(dir) }

// StartS3ServerTLS is StartS3Server serving HTTPS with the certificate and
// key in certFile and keyFile (PEM); Endpoint is https://. Clients trust
// the certificate through AWS_CA_BUNDLE.
func StartS3ServerTLS(dir, certFile, keyFile string) (*S3Server, error) {
	return startS3Server(dir, "--cert", certFile, "--key", keyFile)
}

// Pid is the versitygw process's id (for its CPU time, /proc/PID/stat).
func (s *S3Server) Pid() int { return s.command.Process.Pid }

// Restart starts the server again on the same address and directory after
// Close (an object store outage that ends), waiting until it listens.
func (s *S3Server) Restart() error {
	binary, err := VersityGWBinary()
	if err != nil {
		return err
	}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ { // the old socket may linger briefly
		server, err := startS3ServerOn(binary, s.Dir, s.address(), s.tls...)
		if err == nil {
			*s = *server
			return nil
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	return lastErr
}

// address is the server's host:port.
func (s *S3Server) address() string {
	_, address, _ := strings.Cut(s.Endpoint, "://")
	return address
}

func startS3Server(dir string, tls ...string) (*S3Server, error) {
	binary, err := VersityGWBinary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a freed port can be taken before the server binds it
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		address := listener.Addr().String()
		listener.Close()
		server, err := startS3ServerOn(binary, dir, address, tls...)
		if err == nil {
			return server, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startS3ServerOn(binary, dir, address string, tls ...string) (*S3Server, error) {
	output := &lockedBuffer{}
	// --keep-alive: versitygw closes every connection after one request
	// unless told otherwise (Connection: close), so each bucket request
	// paid a TCP connection on both sides; S3 services keep connections
	// open. VERSITYGW_FLAGS adds global flags (e.g. --keep-alive=false).
	args := append(append([]string{"--port", address, "--keep-alive"}, tls...), strings.Fields(os.Getenv("VERSITYGW_FLAGS"))...)
	command := exec.Command(binary, append(args, "posix", dir)...)
	command.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+S3AccessKey, "ROOT_SECRET_KEY="+S3SecretKey)
	command.Stdout, command.Stderr = output, output
	if err := childproc.Start(command); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	scheme := "http://"
	if len(tls) > 0 {
		scheme = "https://"
	}
	server := &S3Server{Endpoint: scheme + address, Dir: dir, command: command, output: output, exited: make(chan struct{}), tls: tls}
	go func() {
		command.Wait()
		close(server.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-server.exited:
			return nil, fmt.Errorf("versitygw exited at start: %s", output.String())
		default:
		}
		if conn, err := net.DialTimeout("tcp", address, time.Second); err == nil {
			conn.Close()
			return server, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	server.Close()
	return nil, fmt.Errorf("versitygw did not listen on %s within 30s: %s", address, output.String())
}

// URL returns the s3:// URL of a bucket on this server.
func (s *S3Server) URL(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&region=%s&use_path_style=true", bucket, s.Endpoint, S3Region)
}

// Output returns what the server printed.
func (s *S3Server) Output() string { return s.output.String() }

// Close stops the server and waits for it.
func (s *S3Server) Close() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	s.command.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.command.Process.Kill()
		<-s.exited
	}
	return nil
}

// SetCredentialsEnv exports the server's credentials for the AWS chain.
func SetCredentialsEnv() {
	os.Setenv("AWS_ACCESS_KEY_ID", S3AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", S3SecretKey)
	os.Setenv("AWS_REGION", S3Region)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

type lockedBuffer struct {
	mu     sync.Mutex // guards buffer
	buffer bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buffer.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.String()
}
