//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/tiering/tieringtest"
)

// composeCommand returns how to run Docker Compose here (the v2 plugin or
// docker-compose v1), or why the compose test cannot run.
func composeCommand() ([]string, string) {
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, "no docker binary on PATH"
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("no Docker engine reachable (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, ""
	}
	if path, err := exec.LookPath("docker-compose"); err == nil {
		return []string{path}, ""
	}
	return nil, "neither `docker compose` nor docker-compose is installed"
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// buildImages builds strata:dev from deploy/Dockerfile around the binary
// under test, and strata-test-s3:dev around the versitygw binary the other
// tiering tests use (with the C library it links, on scratch).
func buildImages(t *testing.T, repo string) {
	t.Helper()
	context := t.TempDir()
	copyFile(t, strataBin, filepath.Join(context, "bin", "strata"), 0o755)
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(context, "bin", "image", "ca-certificates.crt"), 0o644)
	} else {
		os.MkdirAll(filepath.Join(context, "bin", "image"), 0o755)
		os.WriteFile(filepath.Join(context, "bin", "image", "ca-certificates.crt"), nil, 0o644)
	}
	copyFile(t, filepath.Join(repo, "deploy", "image", "data", "README"), filepath.Join(context, "deploy", "image", "data", "README"), 0o644)
	run(t, context, "docker", "build", "-q", "-f", filepath.Join(repo, "deploy", "Dockerfile"), "-t", "strata:dev", ".")

	versitygw, err := tieringtest.VersityGWBinary()
	if err != nil {
		t.Fatal(err)
	}
	s3 := t.TempDir()
	copyFile(t, versitygw, filepath.Join(s3, "versitygw"), 0o755)
	// busybox gives deploy/s3-init.sh the shell and tools it finds in
	// MinIO's image.
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (the Debian package busybox-static) is needed to run deploy/s3-init.sh in the test image: run `make deps`: %v", err)
	}
	copyFile(t, busybox, filepath.Join(s3, "busybox"), 0o755)
	dockerfile := "FROM scratch\nCOPY versitygw /bin/versitygw\nCOPY busybox /bin/busybox\n"
	// A cgo build links the C library: copy what it needs.
	if out, err := exec.Command("ldd", versitygw).Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			for _, field := range strings.Fields(line) {
				if strings.HasPrefix(field, "/") {
					copyFile(t, field, filepath.Join(s3, "lib", field), 0o755)
					dockerfile += fmt.Sprintf("COPY lib%s %s\n", field, field)
				}
			}
		}
	}
	dockerfile += "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nWORKDIR /iam\nWORKDIR /data\nENTRYPOINT [\"/bin/versitygw\"]\n"
	if err := os.WriteFile(filepath.Join(s3, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, s3, "docker", "build", "-q", "-t", "strata-test-s3:dev", ".")
}

// composeRootUser and composeRootPassword are the S3 server's root
// account in deploy/compose.yaml when MINIO_ROOT_USER/PASSWORD are not set.
const (
	composeRootUser     = "minio-root"
	composeRootPassword = "minio-root-secret"
)

// TestCompose brings up deploy/compose.yaml (3 Strata nodes tiering to an
// S3 server, with the test override that swaps MinIO for a local image),
// produces and consumes with a real client, stops one broker container,
// keeps producing with acks=all and checks nothing acknowledged is lost and
// that segments land in the bucket. Issue 14: the brokers reach the bucket
// as a user that may use that bucket only, with its key in a read-only
// owner-only credentials file and no S3 secret in their environment; the
// controller and INTERNAL ports are not published and admin only on
// loopback; the image's default command keeps controller and admin on the
// container's loopback.
func TestCompose(t *testing.T) {
	compose, why := composeCommand()
	if compose == nil {
		t.Skipf("SKIP: the compose test needs a Docker engine with Compose: %s", why)
	}
	if runtime.GOOS != "linux" {
		t.Skip("SKIP: the compose test builds linux images from the test binary")
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Dir(filepath.Dir(file))
	buildImages(t, repo)
	t.Run("image default command", func(t *testing.T) { testImageDefaultCommand(t) })
	project := fmt.Sprintf("strata-e2e-%d", time.Now().UnixNano()%1_000_000)
	dc := func(args ...string) string {
		full := append(append(append([]string(nil), compose[1:]...), "-p", project,
			"-f", filepath.Join(repo, "deploy", "compose.yaml"), "-f", filepath.Join(repo, "deploy", "compose.test.yaml")), args...)
		return run(t, repo, compose[0], full...)
	}
	// Taken down without the graceful stop (nothing is checked after it):
	// a clean stop of three brokers took ~10 s.
	t.Cleanup(func() {
		if t.Failed() {
			cmd := exec.Command(compose[0], append(append([]string(nil), compose[1:]...), "-p", project,
				"-f", filepath.Join(repo, "deploy", "compose.yaml"), "-f", filepath.Join(repo, "deploy", "compose.test.yaml"), "logs", "--no-color", "--tail", "60")...)
			out, _ := cmd.CombinedOutput()
			t.Logf("compose logs:\n%s", out)
		}
		cmd := exec.Command(compose[0], append(append([]string(nil), compose[1:]...), "-p", project,
			"-f", filepath.Join(repo, "deploy", "compose.yaml"), "-f", filepath.Join(repo, "deploy", "compose.test.yaml"), "down", "-v", "--remove-orphans", "--timeout", "1")...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	dc("up", "-d", "minio", "s3-init", "strata-1", "strata-2", "strata-3")
	seeds := []string{"127.0.0.1:19091", "127.0.0.1:19092", "127.0.0.1:19093"}
	admins := []string{"127.0.0.1:19081", "127.0.0.1:19082", "127.0.0.1:19083"}
	eventually(t, 3*time.Minute, "every node ready (strata healthcheck)", func() error {
		for _, admin := range admins {
			if out, err := exec.Command(strataBin, "healthcheck", "--admin", admin).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v %s", admin, err, bytes.TrimSpace(out))
			}
		}
		return nil
	})
	// The image's exec-form health check (no shell in the image) turns
	// healthy.
	id := strings.TrimSpace(dc("ps", "-q", "strata-1"))
	eventually(t, time.Minute, "Docker reporting strata-1 healthy", func() error {
		out, err := exec.Command("docker", "inspect", "--format", "{{.State.Health.Status}} {{.Config.User}}", id).Output()
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(out)); got != "healthy 65532:65532" {
			return fmt.Errorf("health and user: %q", got)
		}
		return nil
	})

	brokerUser, brokerSecret := requireComposeHardening(t, id)

	adm := newAdmin(t, seeds[0])
	topic := "compose-orders"
	// A node ready itself may not see the other brokers yet: retry while
	// the replication factor is refused.
	eventually(t, time.Minute, "creating an RF=3 topic", func() error {
		if r := createOne(t, adm, 3, 3, tieredTopicConfigs(256<<10, 512<<10), topic); r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("%v %s", r.Err, r.ErrMessage)
		}
		return nil
	})
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testContext(t, 3*time.Minute)
	produced := map[string]bool{}
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			value := fmt.Sprintf("record-%06d-%s", i, strings.Repeat("x", 2000))
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(value)}).FirstErr(); err != nil {
				t.Fatalf("produce %d (acks=all): %v", i, err)
			}
			produced[value] = true
		}
	}
	produce(0, 1500)
	dc("stop", "strata-2")
	produce(1500, 3000) // acks=all with one broker down: two of three in sync

	got := consumeAll(t, seeds[0], topic, len(produced), kgo.SeedBrokers(seeds[0], seeds[2]))
	seen := map[string]bool{}
	for _, r := range got {
		if !produced[string(r.Value)] {
			t.Fatalf("consumed a record never produced: %.40q", r.Value)
		}
		seen[string(r.Value)] = true
	}
	if len(seen) != len(produced) {
		t.Fatalf("consumed %d distinct of %d acknowledged records", len(seen), len(produced))
	}

	// Segments land in the bucket (the S3 server's API is on
	// 127.0.0.1:9000), listed with the brokers' own scoped credentials.
	mc, err := minio.New("127.0.0.1:9000", &minio.Options{Creds: credentials.NewStaticV4(brokerUser, brokerSecret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "segments of the topic in the bucket", func() error {
		n := 0
		for obj := range mc.ListObjects(context.Background(), "strata", minio.ListObjectsOptions{Prefix: topic + "-", Recursive: true}) {
			if obj.Err != nil {
				return obj.Err
			}
			if strings.HasSuffix(obj.Key, ".log") {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("no .log object yet")
		}
		return nil
	})
	dc("start", "strata-2")
	eventually(t, 2*time.Minute, "the restarted broker ready", func() error {
		return exec.Command(strataBin, "healthcheck", "--admin", admins[1]).Run()
	})
}

// requireComposeHardening checks, on the running strata-1 container, what
// issue 14 asked of the compose file, and returns the S3 key the brokers
// use:
//   - no S3 secret in the brokers' environment: the key is in a shared
//     credentials file, mode 0400, owned by the strata user, on a volume
//     mounted read-only;
//   - that key is not the root account's and may use the strata bucket
//     only: another bucket and creating buckets are refused;
//   - the controller (9093) and INTERNAL (9094) ports are not published,
//     the client and admin ports on 127.0.0.1 only.
func requireComposeHardening(t *testing.T, container string) (user, secret string) {
	t.Helper()
	var inspected []struct {
		Config struct {
			Env []string
		}
		HostConfig struct {
			PortBindings map[string][]struct{ HostIp, HostPort string }
		}
		Mounts []struct {
			Destination string
			RW          bool
		}
	}
	out, err := exec.Command("docker", "inspect", container).Output()
	if err != nil {
		t.Fatalf("docker inspect: %v", err)
	}
	if err := json.Unmarshal(out, &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("docker inspect: %v: %s", err, out)
	}
	c := inspected[0]
	credentialsFile, clusterSecretFile := "", ""
	for _, variable := range c.Config.Env {
		name, value, _ := strings.Cut(variable, "=")
		switch {
		case name == "AWS_SHARED_CREDENTIALS_FILE":
			credentialsFile = value
		case name == "STRATA_CLUSTER_SECRET_FILE":
			clusterSecretFile = value
		case strings.Contains(name, "SECRET") || strings.Contains(name, "PASSWORD") || name == "AWS_ACCESS_KEY_ID" || strings.Contains(value, composeRootPassword):
			t.Errorf("broker environment holds %s", name)
		}
	}
	if credentialsFile == "" || clusterSecretFile == "" {
		t.Fatalf("broker environment has no AWS_SHARED_CREDENTIALS_FILE or STRATA_CLUSTER_SECRET_FILE: %q", c.Config.Env)
	}
	// The cluster secret, generated by the cluster-secret step: the
	// strata user's alone.
	secretArchive, err := exec.Command("docker", "cp", container+":"+clusterSecretFile, "-").Output()
	if err != nil {
		t.Fatalf("docker cp %s: %v", clusterSecretFile, err)
	}
	secretHeader, err := tar.NewReader(bytes.NewReader(secretArchive)).Next()
	if err != nil {
		t.Fatal(err)
	}
	if secretHeader.Uid != 65532 || secretHeader.FileInfo().Mode().Perm() != 0o600 {
		t.Errorf("cluster secret file: uid %d mode %v, want uid 65532 mode -rw-------", secretHeader.Uid, secretHeader.FileInfo().Mode().Perm())
	}
	for _, mount := range c.Mounts {
		if strings.HasPrefix(credentialsFile, mount.Destination+"/") && mount.RW {
			t.Errorf("the credentials volume %s is mounted read-write", mount.Destination)
		}
	}
	for port, bindings := range c.HostConfig.PortBindings {
		for _, binding := range bindings {
			switch {
			case strings.HasPrefix(port, "9093/") || strings.HasPrefix(port, "9094/"):
				t.Errorf("port %s is published on %s:%s", port, binding.HostIp, binding.HostPort)
			case binding.HostIp != "127.0.0.1":
				t.Errorf("port %s is published on %q, not on loopback only", port, binding.HostIp)
			}
		}
	}

	// docker cp streams the file as a tar archive: its header has the
	// owner and mode.
	archive, err := exec.Command("docker", "cp", container+":"+credentialsFile, "-").Output()
	if err != nil {
		t.Fatalf("docker cp %s: %v", credentialsFile, err)
	}
	reader := tar.NewReader(bytes.NewReader(archive))
	header, err := reader.Next()
	if err != nil {
		t.Fatal(err)
	}
	if header.Uid != 65532 || header.FileInfo().Mode().Perm() != 0o400 {
		t.Errorf("credentials file: uid %d mode %v, want uid 65532 mode -r--------", header.Uid, header.FileInfo().Mode().Perm())
	}
	content, err := io.ReadAll(reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(content), "\n") {
		key, value, _ := strings.Cut(line, "=")
		switch strings.TrimSpace(key) {
		case "aws_access_key_id":
			user = strings.TrimSpace(value)
		case "aws_secret_access_key":
			secret = strings.TrimSpace(value)
		}
	}
	if user == "" || secret == "" || user == composeRootUser || secret == composeRootPassword {
		t.Fatalf("credentials file holds user %q and a secret of %d bytes: want a scoped user, not the root account", user, len(secret))
	}

	ctx := testContext(t, time.Minute)
	root, err := minio.New("127.0.0.1:9000", &minio.Options{Creds: credentials.NewStaticV4(composeRootUser, composeRootPassword, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.MakeBucket(ctx, "not-strata", minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("root creates another bucket: %v", err)
	}
	scoped, err := minio.New("127.0.0.1:9000", &minio.Options{Creds: credentials.NewStaticV4(user, secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scoped.PutObject(ctx, "strata", "scope-check", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("the brokers' user cannot write its bucket: %v", err)
	}
	if err := scoped.RemoveObject(ctx, "strata", "scope-check", minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("the brokers' user cannot delete from its bucket: %v", err)
	}
	if _, err := scoped.PutObject(ctx, "not-strata", "x", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err == nil {
		t.Error("the brokers' user wrote to another bucket")
	}
	for object := range scoped.ListObjects(ctx, "not-strata", minio.ListObjectsOptions{}) {
		if object.Err == nil {
			t.Errorf("the brokers' user lists another bucket: %s", object.Key)
		}
	}
	if err := scoped.MakeBucket(ctx, "strata-other", minio.MakeBucketOptions{}); err == nil {
		t.Error("the brokers' user created a bucket")
	}
	return user, secret
}

// testImageDefaultCommand runs strata:dev with its default command and
// every port published: it turns healthy (the health check reaches admin
// on the container's loopback), while the published admin and controller
// ports lead nowhere, since those listeners are not on the container's
// network interface.
func testImageDefaultCommand(t *testing.T) {
	// Probed every second (the image's check command, its default 5 s
	// interval shortened for the test).
	out, err := exec.Command("docker", "run", "-d", "--health-interval", "1s", "-p", "127.0.0.1::9080", "-p", "127.0.0.1::9093", "strata:dev").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run strata:dev: %v: %s", err, out)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("docker", "logs", "--tail", "40", id).CombinedOutput()
			t.Logf("container log:\n%s", logs)
		}
		exec.Command("docker", "rm", "-f", "-v", id).Run()
	})
	eventually(t, time.Minute, "the container healthy", func() error {
		out, err := exec.Command("docker", "inspect", "--format", "{{.State.Health.Status}}", id).Output()
		if err != nil {
			return err
		}
		if status := strings.TrimSpace(string(out)); status != "healthy" {
			return fmt.Errorf("health %q", status)
		}
		return nil
	})
	for _, port := range []string{"9080", "9093"} {
		out, err := exec.Command("docker", "port", id, port).Output()
		if err != nil {
			t.Fatalf("docker port %s: %v", port, err)
		}
		address := strings.TrimSpace(strings.Split(string(out), "\n")[0])
		// Docker's proxy accepts on the host and closes when the
		// container refuses: no byte of an answer comes back.
		conn, err := net.DialTimeout("tcp", address, 5*time.Second)
		if err != nil {
			continue
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET /healthz HTTP/1.0\r\n\r\n")
		answer, _ := io.ReadAll(conn)
		conn.Close()
		if len(answer) > 0 {
			t.Errorf("container port %s, published on %s, answered from outside the container: %.80q", port, address, answer)
		}
	}
}
