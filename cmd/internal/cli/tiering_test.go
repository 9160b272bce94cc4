package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTieringScrubPosts: the node starts a scrub on POST only (an
// operation: application/json, the admin token), so the CLI posts.
func TestTieringScrubPosts(t *testing.T) {
	var got string
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = fmt.Sprintf("%s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		fmt.Fprintln(w, `{"clean":true,"report":{}}`)
	}))
	defer server.Close()
	var stdout, stderr bytes.Buffer
	if err := runTiering([]string{"scrub", "--admin", strings.TrimPrefix(server.URL, "http://")}, &stdout, &stderr); err != nil {
		t.Fatalf("%v (stderr %q)", err, stderr.String())
	}
	if want := "POST /v1/tiering/scrub application/json"; got != want {
		t.Errorf("sent %q, want %q", got, want)
	}
	if !strings.Contains(stdout.String(), "0 orphaned, 0 missing") {
		t.Errorf("output %q", stdout.String())
	}
}
