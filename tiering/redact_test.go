package tiering_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"s3://bucket?endpoint=http://minio:9000&region=us-east-1", "s3://bucket"},
		{"s3://key:secret@bucket?endpoint=http://minio:9000", "s3://bucket"},
		{"s3://key:secret@bucket/", "s3://bucket/"},
		{"file:///var/lib/strata/bucket?create_dir=true", "file:///var/lib/strata/bucket"},
		{"file://user@localhost/dir", "file://localhost/dir"},
		{"mem://", "mem://"},
	} {
		if got := tiering.RedactURL(tc.url); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

// closedLoopbackAddress returns a loopback address nothing listens on.
func closedLoopbackAddress(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	listener.Close()
	return address
}

// TestObjectStoreErrorsHideTheURL: errors from an object store that cannot
// be reached or configured — which reach the log, the admin API and Kafka
// error messages — name the bucket but never the endpoint, its user info
// or a private query parameter (issue 14: the AWS SDK's errors carried the
// endpoint's URL into them).
func TestObjectStoreErrorsHideTheURL(t *testing.T) {
	address := closedLoopbackAddress(t)
	secrets := []string{address, "strata-user", "pw-secret-123", "private-profile-x"}
	endpoint := "http://strata-user:pw-secret-123@" + address
	storeURL := "s3://strata-redact?endpoint=" + endpoint + "&region=us-east-1&use_path_style=true"
	requireHidden := func(t *testing.T, what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error from an object store nobody serves", what)
		}
		for _, secret := range secrets {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error shows %q: %v", what, secret, err)
			}
		}
		t.Logf("%s: %v", what, err)
		if !strings.Contains(err.Error(), "s3://strata-redact") {
			t.Errorf("%s: error does not name the bucket: %v", what, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("get", func(t *testing.T) {
		bucket, err := tiering.OpenBucket(ctx, storeURL)
		if err != nil {
			t.Fatal(err)
		}
		defer bucket.Close()
		_, err = bucket.Get(ctx, "topic-id/0/00000000000000000000.log", 0, 100)
		requireHidden(t, "get", err)
		if !errors.Is(err, tiering.ErrUnavailable) {
			t.Errorf("get: %v does not wrap ErrUnavailable", err)
		}
		err = bucket.Upload(ctx, "topic-id/0/00000000000000000000.log", strings.NewReader("x"), 5<<20)
		requireHidden(t, "put", err)
	})
	t.Run("create bucket", func(t *testing.T) {
		requireHidden(t, "create bucket", tiering.CreateBucket(ctx, storeURL))
	})
	t.Run("open with an unknown profile", func(t *testing.T) {
		_, err := tiering.OpenBucket(ctx, storeURL+"&profile=private-profile-x")
		requireHidden(t, "open", err)
	})
}

// TestSharedCredentialsFile: with no credentials in the environment, the
// S3 client reads them from AWS_SHARED_CREDENTIALS_FILE (what README and
// SECURITY.md recommend: a file only the broker's user can read) and
// uploads and reads back; a wrong secret in the file is refused.
func TestSharedCredentialsFile(t *testing.T) {
	server := s3Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(name, "") // restored after the test
		os.Unsetenv(name)
	}
	file := filepath.Join(t.TempDir(), "credentials")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "config"))
	writeCredentials := func(secret string) {
		content := "[default]\naws_access_key_id = " + tieringtest.S3AccessKey + "\naws_secret_access_key = " + secret + "\n"
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	writeCredentials(tieringtest.S3SecretKey)
	url := server.URL("strata-credentials-file")
	if err := tiering.CreateBucket(ctx, url); err != nil {
		t.Fatal(err)
	}
	bucket, err := tiering.OpenBucket(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	if err := bucket.Upload(ctx, "key", strings.NewReader("from the credentials file"), 5<<20); err != nil {
		t.Fatalf("upload with credentials from the file: %v", err)
	}
	reader, err := bucket.Get(ctx, "key", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(reader)
	reader.Close()
	if err != nil || !bytes.Equal(got, []byte("from the credentials file")) {
		t.Fatalf("read back %q, %v", got, err)
	}

	writeCredentials("not-the-secret")
	wrong, err := tiering.OpenBucket(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if err := wrong.Upload(ctx, "key2", strings.NewReader("x"), 5<<20); err == nil {
		t.Fatal("upload with a wrong secret in the credentials file succeeded: the file is not what the client used")
	}
}
