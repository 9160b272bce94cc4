package node

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testToken     = "first-token-0123456789"
	testNextToken = "second-token-0123456789"
	testHost      = "127.0.0.1:9080"
)

// recordingRoutes are admin routes whose handlers only record that they
// ran (and the body they got).
type recordingRoutes struct {
	mu     sync.Mutex
	called []string // "METHOD path body"
	leader bool
}

func (rr *recordingRoutes) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rr.mu.Lock()
		rr.called = append(rr.called, strings.TrimSpace(name+" "+string(body)))
		rr.mu.Unlock()
		fmt.Fprintln(w, "ok")
	})
}

func (rr *recordingRoutes) calls() []string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]string(nil), rr.called...)
}

func (rr *recordingRoutes) Leader() (int32, bool) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return 1, rr.leader
}

func (rr *recordingRoutes) routes() adminRoutes {
	return adminRoutes{
		metrics: rr.handler("metrics"), status: rr.handler("status"), cluster: rr.handler("cluster"),
		partitions: rr.handler("partitions"), scrub: rr.handler("scrub"),
		addVoter: rr.handler("add-voter"), removeVoter: rr.handler("remove-voter"), recover: rr.handler("recover"),
		ready: func() error { return readiness(true, rr) },

		confirmClock: rr.handler("confirm-clock"),
	}
}

// writeTokenFile writes lines to a token file in a temp dir.
func writeTokenFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testAccess(tokenFile string, loopbackOnly, pprof bool) *adminAccess {
	return &adminAccess{
		tokenFile:    tokenFile,
		loopbackOnly: loopbackOnly,
		hostnames:    map[string]bool{"node-1.internal": true},
		pprof:        pprof,
		log:          slog.New(slog.DiscardHandler),
	}
}

// adminRequest is one request to the admin handler.
type adminRequest struct {
	method, path, body string
	host               string // default testHost
	contentType        string // default application/json for POST and DELETE; "-" = none
	origin, token      string
}

func serve(handler http.Handler, req adminRequest) *httptest.ResponseRecorder {
	r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
	r.Host = testHost
	if req.host != "" {
		r.Host = req.host
	}
	switch {
	case req.contentType == "-":
	case req.contentType != "":
		r.Header.Set("Content-Type", req.contentType)
	case req.method == http.MethodPost || req.method == http.MethodDelete:
		r.Header.Set("Content-Type", "application/json")
	}
	if req.origin != "" {
		r.Header.Set("Origin", req.origin)
	}
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	w := httptest.NewRecorder()
	handler.ServeHTTP(w, r)
	return w
}

var addVoterRequest = adminRequest{method: http.MethodPost, path: "/v1/voters", body: `{"node_id":9,"address":"10.0.0.9:9093"}`}

func with(req adminRequest, change func(*adminRequest)) adminRequest {
	change(&req)
	return req
}

// TestAdminOperatorRoutesNeedToken covers token × listener: with a token
// file both tokens are accepted and nothing else, on any listener; without
// one the operator routes are open on loopback and refused elsewhere.
func TestAdminOperatorRoutesNeedToken(t *testing.T) {
	tokenFile := writeTokenFile(t, testToken, testNextToken)
	operations := []adminRequest{
		addVoterRequest,
		{method: http.MethodDelete, path: "/v1/voters/3"},
		{method: http.MethodPost, path: "/v1/tiering/recover"},
		{method: http.MethodPost, path: "/v1/tiering/scrub"},
		{method: http.MethodPost, path: "/v1/clock/confirm"},
	}
	tests := []struct {
		name         string
		tokenFile    string
		loopbackOnly bool
		token        string
		want         int
	}{
		{"token file, loopback, no token", tokenFile, true, "", http.StatusUnauthorized},
		{"token file, loopback, wrong token", tokenFile, true, "not-the-token-0123456789", http.StatusUnauthorized},
		{"token file, loopback, a prefix of the token", tokenFile, true, testToken[:len(testToken)-1], http.StatusUnauthorized},
		{"token file, loopback, first token", tokenFile, true, testToken, http.StatusOK},
		{"token file, loopback, second token", tokenFile, true, testNextToken, http.StatusOK},
		{"token file, any address, no token", tokenFile, false, "", http.StatusUnauthorized},
		{"token file, any address, token", tokenFile, false, testToken, http.StatusOK},
		{"no token file, loopback", "", true, "", http.StatusOK},
		{"no token file, any address", "", false, "", http.StatusForbidden},
		{"no token file, any address, some token", "", false, testToken, http.StatusForbidden},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			for _, op := range operations {
				routes := &recordingRoutes{leader: true}
				handler := newAdminMux(testAccess(test.tokenFile, test.loopbackOnly, false), routes.routes())
				w := serve(handler, with(op, func(r *adminRequest) { r.token = test.token }))
				if w.Code != test.want {
					t.Fatalf("%s %s: %d %q, want %d", op.method, op.path, w.Code, w.Body, test.want)
				}
				called := routes.calls()
				if test.want == http.StatusOK && len(called) != 1 {
					t.Errorf("%s %s: handler calls %q, want one", op.method, op.path, called)
				}
				if test.want != http.StatusOK && len(called) != 0 {
					t.Errorf("%s %s refused, but the handler ran: %q", op.method, op.path, called)
				}
				if test.want == http.StatusForbidden && !strings.Contains(w.Body.String(), "--admin-token-file") {
					t.Errorf("refusal %q does not tell the operator to set --admin-token-file", w.Body)
				}
				if test.want == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: Bearer")
				}
			}
		})
	}
	t.Run("the body reaches the handler", func(t *testing.T) {
		routes := &recordingRoutes{leader: true}
		handler := newAdminMux(testAccess(tokenFile, false, false), routes.routes())
		if w := serve(handler, with(addVoterRequest, func(r *adminRequest) { r.token = testToken })); w.Code != http.StatusOK {
			t.Fatalf("%d %q", w.Code, w.Body)
		}
		if got, want := routes.calls(), []string{"add-voter " + addVoterRequest.body}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("calls %q, want %q", got, want)
		}
	})
}

// TestAdminTokenFileRotation: the file is read on every request, so a
// token added or removed takes effect without a restart.
func TestAdminTokenFileRotation(t *testing.T) {
	tokenFile := writeTokenFile(t, testToken)
	routes := &recordingRoutes{leader: true}
	handler := newAdminMux(testAccess(tokenFile, false, false), routes.routes())
	status := func(token string) int {
		return serve(handler, with(addVoterRequest, func(r *adminRequest) { r.token = token })).Code
	}
	if got := status(testNextToken); got != http.StatusUnauthorized {
		t.Fatalf("next token before rotation: %d", got)
	}
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"+testNextToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, b := status(testToken), status(testNextToken); a != http.StatusOK || b != http.StatusOK {
		t.Fatalf("during rotation: old token %d, new token %d; want both 200", a, b)
	}
	if err := os.WriteFile(tokenFile, []byte(testNextToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, b := status(testToken), status(testNextToken); a != http.StatusUnauthorized || b != http.StatusOK {
		t.Fatalf("after rotation: old token %d, new token %d; want 401, 200", a, b)
	}
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	if got := status(testNextToken); got != http.StatusServiceUnavailable {
		t.Fatalf("token file gone: %d, want 503 (refused)", got)
	}
}

func TestReadAdminTokens(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"one", testToken + "\n", []string{testToken}},
		{"two, blank lines and spaces", "\n  " + testToken + " \n\n" + testNextToken, []string{testToken, testNextToken}},
		{"empty", "\n\n", nil},
		{"three", testToken + "\n" + testNextToken + "\nthird-token-0123456789\n", nil},
		{"too short", "short\n", nil},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			os.WriteFile(path, []byte(test.content), 0o600)
			got, err := ReadAdminTokens(path)
			if test.want == nil {
				if err == nil {
					t.Fatalf("accepted %q as %q", test.content, got)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != strings.Join(test.want, "|") {
				t.Fatalf("got %q, %v; want %q", got, err, test.want)
			}
		})
	}
}

// TestAdminBrowserProbes: what a web page (or a DNS-rebinding one) can
// make a browser send is refused, token or not, loopback or not.
func TestAdminBrowserProbes(t *testing.T) {
	tokenFile := writeTokenFile(t, testToken)
	tests := []struct {
		name string
		req  adminRequest
		want int
	}{
		{"issue 14's probe: text/plain from a foreign origin", with(addVoterRequest, func(r *adminRequest) {
			r.contentType, r.origin = "text/plain", "http://evil.example"
		}), http.StatusForbidden},
		{"text/plain", with(addVoterRequest, func(r *adminRequest) { r.contentType = "text/plain" }), http.StatusUnsupportedMediaType},
		{"form", with(addVoterRequest, func(r *adminRequest) { r.contentType = "application/x-www-form-urlencoded" }), http.StatusUnsupportedMediaType},
		{"no content type", with(addVoterRequest, func(r *adminRequest) { r.contentType = "-" }), http.StatusUnsupportedMediaType},
		{"json with charset", with(addVoterRequest, func(r *adminRequest) { r.contentType = "application/json; charset=utf-8" }), http.StatusOK},
		{"foreign origin", with(addVoterRequest, func(r *adminRequest) { r.origin = "http://evil.example" }), http.StatusForbidden},
		{"null origin", with(addVoterRequest, func(r *adminRequest) { r.origin = "null" }), http.StatusForbidden},
		{"origin on another port", with(addVoterRequest, func(r *adminRequest) { r.origin = "http://127.0.0.1:8000" }), http.StatusForbidden},
		{"own origin", with(addVoterRequest, func(r *adminRequest) { r.origin = "http://" + testHost }), http.StatusOK},
		{"rebinding host name", with(addVoterRequest, func(r *adminRequest) { r.host = "evil.example:9080" }), http.StatusForbidden},
		{"no host", with(addVoterRequest, func(r *adminRequest) { r.host = " " }), http.StatusForbidden},
		{"localhost", with(addVoterRequest, func(r *adminRequest) { r.host = "localhost:9080" }), http.StatusOK},
		{"IPv6 loopback", with(addVoterRequest, func(r *adminRequest) { r.host = "[::1]:9080" }), http.StatusOK},
		{"another IP address", with(addVoterRequest, func(r *adminRequest) { r.host = "10.1.2.3:9080" }), http.StatusOK},
		{"the listener's host name", with(addVoterRequest, func(r *adminRequest) { r.host = "Node-1.Internal:9080" }), http.StatusOK},
		{"body over the cap", with(addVoterRequest, func(r *adminRequest) { r.body = `{"address":"` + strings.Repeat("x", adminMaxBodySize) + `"}` }), http.StatusRequestEntityTooLarge},
	}
	for _, access := range []struct {
		name         string
		tokenFile    string
		loopbackOnly bool
	}{{"loopback without token", "", true}, {"token", tokenFile, false}} {
		for _, test := range tests {
			t.Run(access.name+"/"+test.name, func(t *testing.T) {
				routes := &recordingRoutes{leader: true}
				handler := newAdminMux(testAccess(access.tokenFile, access.loopbackOnly, false), routes.routes())
				req := test.req
				if access.tokenFile != "" {
					req.token = testToken
				}
				w := serve(handler, req)
				if w.Code != test.want {
					t.Fatalf("%d %q, want %d", w.Code, w.Body, test.want)
				}
				if called := routes.calls(); (test.want == http.StatusOK) != (len(called) == 1) {
					t.Errorf("status %d, handler calls %q", w.Code, called)
				}
			})
		}
	}
}

// TestAdminReadsStayOpen: without a token file or client certificates,
// the GET routes need nothing, on any listener (what SECURITY.md allows).
func TestAdminReadsStayOpen(t *testing.T) {
	routes := &recordingRoutes{leader: true}
	handler := newAdminMux(testAccess("", false, false), routes.routes())
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/v1/cluster", "/v1/partitions", "/"} {
		if w := serve(handler, adminRequest{method: http.MethodGet, path: path, host: "strata-1:9080"}); w.Code != http.StatusOK {
			t.Errorf("GET %s: %d %q", path, w.Code, w.Body)
		}
	}
	// A read route does not change state with another method.
	if w := serve(handler, adminRequest{method: http.MethodPost, path: "/v1/cluster"}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/cluster: %d", w.Code)
	}
}

// TestAdminReadsNeedAuthentication: with a token file, or client
// certificates on an HTTPS listener, every route but /healthz and /readyz
// needs the token (bearer, or as a browser's Basic password) or a verified
// client certificate.
func TestAdminReadsNeedAuthentication(t *testing.T) {
	tokenFile := writeTokenFile(t, testToken)
	withToken := testAccess(tokenFile, false, false)
	withCerts := testAccess("", false, false)
	withCerts.clientCerts = true
	withBoth := testAccess(tokenFile, false, false)
	withBoth.clientCerts = true
	verified := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
	tests := []struct {
		name   string
		access *adminAccess
		change func(*http.Request)
		want   int // of the guarded reads; health is always 200
	}{
		{name: "token file, nothing sent", access: withToken, want: http.StatusUnauthorized},
		{name: "token file, bearer token", access: withToken, change: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testToken) }, want: http.StatusOK},
		{name: "token file, wrong bearer token", access: withToken, change: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testNextToken) }, want: http.StatusUnauthorized},
		{name: "token file, Basic with the token as password", access: withToken, change: func(r *http.Request) { r.SetBasicAuth("operator", testToken) }, want: http.StatusOK},
		{name: "token file, Basic with another password", access: withToken, change: func(r *http.Request) { r.SetBasicAuth(testToken, "guess-0123456789") }, want: http.StatusUnauthorized},
		{name: "token file, a client certificate is not asked for", access: withToken, change: func(r *http.Request) { r.TLS = verified }, want: http.StatusUnauthorized},
		{name: "client certificates, none sent", access: withCerts, change: func(r *http.Request) { r.TLS = &tls.ConnectionState{} }, want: http.StatusUnauthorized},
		{name: "client certificates, verified", access: withCerts, change: func(r *http.Request) { r.TLS = verified }, want: http.StatusOK},
		{name: "both, token only", access: withBoth, change: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testToken) }, want: http.StatusOK},
		{name: "both, certificate only", access: withBoth, change: func(r *http.Request) { r.TLS = verified }, want: http.StatusOK},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			routes := &recordingRoutes{leader: true}
			handler := newAdminMux(test.access, routes.routes())
			for _, path := range []string{"/metrics", "/v1/cluster", "/v1/partitions", "/", "/healthz", "/readyz"} {
				r := httptest.NewRequest(http.MethodGet, path, nil)
				r.Host = "strata-1:9080"
				if test.change != nil {
					test.change(r)
				}
				w := httptest.NewRecorder()
				handler.ServeHTTP(w, r)
				want := test.want
				if path == "/healthz" || path == "/readyz" {
					want = http.StatusOK
				}
				if w.Code != want {
					t.Errorf("GET %s: %d %q, want %d", path, w.Code, w.Body, want)
				}
				if w.Code == http.StatusUnauthorized && !strings.Contains(strings.Join(w.Header().Values("WWW-Authenticate"), ","), "Basic") {
					t.Errorf("GET %s: 401 without a Basic challenge (a browser would not ask for the token)", path)
				}
			}
			// Operations take the same credentials (and application/json).
			op := httptest.NewRequest(http.MethodPost, "/v1/clock/confirm", nil)
			op.Host = testHost
			op.Header.Set("Content-Type", "application/json")
			if test.change != nil {
				test.change(op)
			}
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, op)
			if w.Code != test.want {
				t.Errorf("POST /v1/clock/confirm: %d %q, want %d", w.Code, w.Body, test.want)
			}
		})
	}
}

func TestAdminPprof(t *testing.T) {
	tokenFile := writeTokenFile(t, testToken)
	get := func(access *adminAccess, path, token string) *httptest.ResponseRecorder {
		routes := &recordingRoutes{leader: true}
		return serve(newAdminMux(access, routes.routes()), adminRequest{method: http.MethodGet, path: path, token: token})
	}
	t.Run("off", func(t *testing.T) {
		for _, access := range []*adminAccess{testAccess(tokenFile, true, false), testAccess("", true, false)} {
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
				w := get(access, path, testToken)
				if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "--admin-pprof") {
					t.Errorf("GET %s: %d %q, want 404 naming --admin-pprof", path, w.Code, w.Body)
				}
			}
		}
	})
	t.Run("on", func(t *testing.T) {
		withToken := testAccess(tokenFile, false, true)
		if w := get(withToken, "/debug/pprof/cmdline", ""); w.Code != http.StatusUnauthorized {
			t.Errorf("cmdline without token: %d", w.Code)
		}
		if w := get(withToken, "/debug/pprof/cmdline", testToken); w.Code != http.StatusOK {
			t.Errorf("cmdline with token: %d %q", w.Code, w.Body)
		}
		if w := get(withToken, "/debug/pprof/heap", testToken); w.Code != http.StatusOK {
			t.Errorf("heap with token: %d", w.Code)
		}
		if w := get(testAccess("", false, true), "/debug/pprof/cmdline", ""); w.Code != http.StatusForbidden {
			t.Errorf("cmdline on a non-loopback listener without token file: %d", w.Code)
		}
		if w := get(testAccess("", true, true), "/debug/pprof/cmdline", ""); w.Code != http.StatusOK {
			t.Errorf("cmdline on loopback without token file: %d", w.Code)
		}
		for _, seconds := range []string{"61", "3600", "-1", "x"} {
			for _, path := range []string{"/debug/pprof/profile", "/debug/pprof/trace", "/debug/pprof/heap"} {
				if w := get(withToken, path+"?seconds="+seconds, testToken); w.Code != http.StatusBadRequest {
					t.Errorf("%s?seconds=%s: %d, want 400", path, seconds, w.Code)
				}
			}
		}
	})
}

func TestAdminReadyz(t *testing.T) {
	tests := []struct {
		name            string
		started, leader bool
		want            int
		body            string
	}{
		{"ready", true, true, http.StatusOK, "ready"},
		{"starting", false, true, http.StatusServiceUnavailable, "starting"},
		{"no metadata leader", true, false, http.StatusServiceUnavailable, "no leader"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			routes := &recordingRoutes{leader: test.leader}
			r := routes.routes()
			r.ready = func() error { return readiness(test.started, routes) }
			w := serve(newAdminMux(testAccess("", true, false), r), adminRequest{method: http.MethodGet, path: "/readyz"})
			if w.Code != test.want || !strings.Contains(w.Body.String(), test.body) {
				t.Fatalf("%d %q, want %d with %q", w.Code, w.Body, test.want, test.body)
			}
		})
	}
}

func TestIsLoopbackListener(t *testing.T) {
	for address, want := range map[string]bool{
		"127.0.0.1:9080": true, "127.0.0.2:9080": true, "[::1]:9080": true,
		"0.0.0.0:9080": false, "[::]:9080": false, "10.0.0.1:9080": false, "192.168.1.5:9080": false,
	} {
		addr, err := net.ResolveTCPAddr("tcp", address)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopbackListener(addr); got != want {
			t.Errorf("%s: loopback %t, want %t", address, got, want)
		}
	}
}

// TestAdminRouteDeadline: a route that outlives its deadline answers 503
// and its handler's context ends.
func TestAdminRouteDeadline(t *testing.T) {
	ended := make(chan error, 1)
	handler := withDeadline(10*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		ended <- r.Context().Err()
	}))
	w := serve(handler, adminRequest{method: http.MethodGet, path: "/"})
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("%d %q, want 503", w.Code, w.Body)
	}
	if err := <-ended; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler context: %v", err)
	}
}

// startAdminServer serves handler with newAdminServer on loopback.
func startAdminServer(t *testing.T, handler http.Handler, timeouts adminTimeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := newAdminServer(handler, timeouts, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() {
		defer close(done)
		server.Serve(ln)
	}()
	t.Cleanup(func() {
		server.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestAdminStreamingRoute: the recovery route's progress lines reach the
// client while the route runs (each flush goes out).
func TestAdminStreamingRoute(t *testing.T) {
	proceed := make(chan struct{})
	routes := &recordingRoutes{leader: true}
	r := routes.routes()
	r.recover = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"done":1}`)
		w.(http.Flusher).Flush()
		<-proceed
		fmt.Fprintln(w, `{"finished":true}`)
	})
	addr := startAdminServer(t, newAdminMux(testAccess("", true, false), r), defaultAdminTimeouts)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/tiering/recover", nil)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || lines.Text() != `{"done":1}` {
		t.Fatalf("first line %q, %v", lines.Text(), lines.Err())
	}
	close(proceed)
	if !lines.Scan() || lines.Text() != `{"finished":true}` {
		t.Fatalf("last line %q, %v", lines.Text(), lines.Err())
	}
}

// TestAdminServerClosesStalledConnections: an idle keep-alive connection,
// one that trickles its headers and one that trickles its body
// (slowloris) are all closed by the server.
func TestAdminServerClosesStalledConnections(t *testing.T) {
	routes := &recordingRoutes{leader: true}
	timeouts := adminTimeouts{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond, idle: 200 * time.Millisecond}
	addr := startAdminServer(t, newAdminMux(testAccess("", true, false), routes.routes()), timeouts)
	tests := []struct {
		name string
		send string
	}{
		{"idle keep-alive", "GET /healthz HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n"},
		{"slow headers", "GET /healthz HTTP/1.1\r\nHost: " + testHost + "\r\n"},
		{"slow body", "POST /v1/voters HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, test.send); err != nil {
				t.Fatal(err)
			}
			// The server answers what it can, then closes: reading reaches
			// EOF (or a reset) well before this generous bound.
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			received, err := io.ReadAll(conn)
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatalf("the connection is still open (received %q)", received)
			}
		})
	}
	if calls := routes.calls(); len(calls) != 0 {
		t.Errorf("the slow body reached the add-voter handler: %q", calls)
	}
}

// TestAdminScrubIsAnOperation: a scrub reads every object of the bucket,
// so starting one is an operation (POST, guarded like the others), not a
// read: a GET, which anyone reaching the port (or any web page the
// operator has open, with the browser's cached Basic credentials) can
// send, must not start one.
func TestAdminScrubIsAnOperation(t *testing.T) {
	tokenFile := writeTokenFile(t, testToken)
	scrub := adminRequest{method: http.MethodPost, path: "/v1/tiering/scrub"}
	tests := []struct {
		name         string
		tokenFile    string
		loopbackOnly bool
		req          adminRequest
		want         int
	}{
		{"GET, no token file, any address", "", false, adminRequest{method: http.MethodGet, path: "/v1/tiering/scrub"}, http.StatusMethodNotAllowed},
		{"GET, no token file, loopback", "", true, adminRequest{method: http.MethodGet, path: "/v1/tiering/scrub"}, http.StatusMethodNotAllowed},
		{"GET, token file, token", tokenFile, false, adminRequest{method: http.MethodGet, path: "/v1/tiering/scrub", token: testToken}, http.StatusMethodNotAllowed},
		{"POST, no token file, any address", "", false, scrub, http.StatusForbidden},
		{"POST, token file, no token", tokenFile, false, scrub, http.StatusUnauthorized},
		{"POST, token file, token, foreign origin", tokenFile, false, with(scrub, func(r *adminRequest) { r.token, r.origin = testToken, "http://evil.example" }), http.StatusForbidden},
		{"POST, token file, token, text/plain", tokenFile, false, with(scrub, func(r *adminRequest) { r.token, r.contentType = testToken, "text/plain" }), http.StatusUnsupportedMediaType},
		{"POST, token file, token", tokenFile, false, with(scrub, func(r *adminRequest) { r.token = testToken }), http.StatusOK},
		{"POST, no token file, loopback", "", true, scrub, http.StatusOK},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			routes := &recordingRoutes{leader: true}
			handler := newAdminMux(testAccess(test.tokenFile, test.loopbackOnly, false), routes.routes())
			w := serve(handler, test.req)
			if w.Code != test.want {
				t.Errorf("%s %s: %d %q, want %d", test.req.method, test.req.path, w.Code, w.Body, test.want)
			}
			if called := routes.calls(); (test.want == http.StatusOK) != (len(called) == 1) {
				t.Errorf("status %d, handler calls %q", w.Code, called)
			}
		})
	}
}
