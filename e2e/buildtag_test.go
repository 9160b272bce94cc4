// Package e2e is the end-to-end suite: black-box tests that start the real
// binary and drive it with real clients. Its files carry the build tag e2e,
// so `go test ./...` runs unit tests only; `make e2e` (or
// `go test -tags e2e ./e2e/`) runs the suite.
package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestSuiteFilesTagged: every other test file here starts with the e2e
// build tag. An untagged one would run (or fail to compile) in the unit tests.
func TestSuiteFilesTagged(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if file == "buildtag_test.go" {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("//go:build e2e\n")) {
			t.Errorf("%s does not start with //go:build e2e", file)
		}
	}
}
