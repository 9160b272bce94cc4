//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestComposeTLS brings up the TLS + SASL_SSL compose variant
// (deploy/compose.yaml with deploy/compose.tls.yaml, and the test override
// that swaps MinIO for a local image) with certificates from
// scripts/gen-certs (what `make certs` runs), and checks it with
// scripts/compose-tls-check (what `make compose-tls-check` runs): the
// nodes turn healthy over HTTPS (CONTROLLER:SSL lets them form the
// quorum), kcat produces and consumes over SASL_SSL with mutual TLS on one
// node and another, a wrong password or a missing client certificate
// gets no metadata, and the admin API answers /v1/cluster only with the
// token while /healthz is open.
func TestComposeTLS(t *testing.T) {
	compose, why := composeCommand()
	if compose == nil {
		t.Skipf("SKIP: the compose test needs a Docker engine with Compose: %s", why)
	}
	if runtime.GOOS != "linux" {
		t.Skip("SKIP: the compose test builds linux images from the test binary")
	}
	requireTool(t, "kcat")
	requireTool(t, "curl")
	requireTool(t, "openssl")
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Dir(filepath.Dir(file))
	buildImages(t, repo)
	certs := t.TempDir()
	runCmd(t, nil, time.Minute, filepath.Join(repo, "scripts", "gen-certs"), certs, "3")

	ctx := testContext(t, 5*time.Minute)
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "scripts", "compose-tls-check"))
	cmd.Dir = repo
	cmd.Env = append(os.Environ(),
		"STRATA_TLS_DIR="+certs,
		"COMPOSE="+strings.Join(compose, " "),
		"COMPOSE_EXTRA_FILES=deploy/compose.test.yaml",
		"TLS_INIT_IMAGE=strata-test-s3:dev",
		"STRATA="+strataBin,
	)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "compose-tls-check: ok") {
		t.Fatalf("scripts/compose-tls-check: %v\n%s", err, out)
	}
}
