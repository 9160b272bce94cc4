package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// The admin listener (--admin-listen, HTTPS with --admin-ssl) serves four
// kinds of route:
//
//   - health: /healthz and /readyz, always open (container health checks,
//     load balancers);
//   - reads (GET): /metrics, /v1/cluster, /v1/partitions and the status
//     page;
//   - operations (POST, DELETE): /v1/voters, /v1/tiering/recover and
//     /v1/clock/confirm, which change the cluster or what it deletes, and
//     /v1/tiering/scrub, which reads every object of the bucket (costly:
//     not for whoever reaches the port, nor for a web page's GET);
//   - diagnostics: /debug/pprof, only with --admin-pprof (heap contents,
//     the command line).
//
// A caller authenticates with the admin token of --admin-token-file (as
// Authorization: Bearer TOKEN, or HTTP Basic with the token as password so
// that a browser can open the status page) or, on an HTTPS listener with
// --admin-ssl-client-auth requested or required, with a client certificate
// signed by --ssl-ca-file. When either is configured, every route but
// health needs it. Without either, reads are open to whoever reaches the
// port, and operations and diagnostics are refused unless the listener
// accepts only loopback connections, where they stay open (make run, the
// e2e harness).
// Whatever the token, a browser must not be able to send them on the
// operator's behalf: the Host header must name this node (an IP address,
// localhost or this host's name; a DNS-rebinding page names its own
// domain), an Origin header must be this listener's own, and operations
// take application/json only, which a cross-origin page cannot send
// without a CORS preflight that this listener never answers.

// Limits and deadlines of the admin listener.
const (
	adminReadHeaderTimeout = 10 * time.Second
	// adminReadTimeout bounds reading a whole request, body included.
	adminReadTimeout = 30 * time.Second
	// adminIdleTimeout closes keep-alive connections idle this long.
	adminIdleTimeout   = 60 * time.Second
	adminMaxHeaderSize = 64 << 10
	// adminMaxBodySize caps request bodies (the JSON of an operation).
	adminMaxBodySize = 64 << 10

	// Per-route deadlines: past them the client gets 503 and the handler's
	// context ends.
	readRouteTimeout  = 30 * time.Second
	voterRouteTimeout = 60 * time.Second
	// scrubRouteTimeout matches strata tiering's default --timeout.
	scrubRouteTimeout = 30 * time.Minute
	// recoverRouteTimeout bounds one run of the streaming recovery from
	// the bucket (it resumes when run again); each progress line has
	// streamWriteTimeout to leave.
	recoverRouteTimeout = 6 * time.Hour
	streamWriteTimeout  = time.Minute
	// pprofMaxSeconds caps pprof's ?seconds= (CPU profile, trace, deltas).
	pprofMaxSeconds   = 60
	pprofRouteTimeout = pprofMaxSeconds*time.Second + 30*time.Second
	// deadlineSlack lets a route's own 503 leave before the connection's
	// deadline cuts it.
	deadlineSlack = 5 * time.Second

	// minAdminTokenLength refuses tokens short enough to guess.
	minAdminTokenLength = 16
)

// adminTimeouts are the HTTP server's connection timeouts; tests shorten
// them.
type adminTimeouts struct {
	readHeader, read, idle time.Duration
}

var defaultAdminTimeouts = adminTimeouts{readHeader: adminReadHeaderTimeout, read: adminReadTimeout, idle: adminIdleTimeout}

// newAdminServer is the admin listener's HTTP server: headers, bodies and
// idle keep-alive connections are all bounded in time, so a client that
// trickles bytes or keeps connections open holds nothing for long.
func newAdminServer(handler http.Handler, timeouts adminTimeouts, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: timeouts.readHeader,
		ReadTimeout:       timeouts.read,
		IdleTimeout:       timeouts.idle,
		MaxHeaderBytes:    adminMaxHeaderSize,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// adminRoutes are the handlers behind the admin listener's routes
// (node.go and status.go implement them).
type adminRoutes struct {
	metrics, status, cluster, partitions, scrub http.Handler
	addVoter, removeVoter, recover              http.Handler
	confirmClock                                http.Handler
	// ready returns why the node is not ready, or nil.
	ready func() error
}

// adminAccess decides who may call the operations and diagnostics.
type adminAccess struct {
	// tokenFile holds the accepted bearer tokens ("" = none configured). It
	// is read on every guarded request, so a rotated file takes effect
	// without a restart.
	tokenFile string
	// loopbackOnly: the listener accepts loopback connections only.
	loopbackOnly bool
	// clientCerts: the listener is HTTPS and asks for client certificates,
	// and a verified one authenticates its caller.
	clientCerts bool
	// hostnames are the names (lower case) besides IP addresses and
	// localhost that a guarded request's Host may carry.
	hostnames map[string]bool
	// pprof serves /debug/pprof (--admin-pprof).
	pprof bool
	log   *slog.Logger
}

// newAdminMux routes the admin listener. Every route has a deadline; the
// guarded ones go through access.
func newAdminMux(access *adminAccess, routes adminRoutes) http.Handler {
	mux := http.NewServeMux()
	read := func(pattern string, timeout time.Duration, h http.Handler) {
		mux.Handle(pattern, withDeadline(timeout, h))
	}
	health := read
	read = func(pattern string, timeout time.Duration, h http.Handler) {
		mux.Handle(pattern, access.read(withDeadline(timeout, h)))
	}
	read("GET /metrics", readRouteTimeout, routes.metrics)
	health("GET /healthz", readRouteTimeout, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	health("GET /readyz", readRouteTimeout, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := routes.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
	read("GET /v1/cluster", readRouteTimeout, routes.cluster)
	read("GET /v1/partitions", readRouteTimeout, routes.partitions)
	read("GET /{$}", readRouteTimeout, routes.status)

	mux.Handle("POST /v1/voters", access.operation(withDeadline(voterRouteTimeout, routes.addVoter)))
	mux.Handle("DELETE /v1/voters/{id}", access.operation(withDeadline(voterRouteTimeout, routes.removeVoter)))
	mux.Handle("POST /v1/clock/confirm", access.operation(withDeadline(readRouteTimeout, routes.confirmClock)))
	mux.Handle("POST /v1/tiering/scrub", access.operation(withDeadline(scrubRouteTimeout, routes.scrub)))
	mux.Handle("POST /v1/tiering/recover", access.operation(withStreamingDeadline(recoverRouteTimeout, routes.recover)))

	if !access.pprof {
		mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "pprof is off: start strata serve with --admin-pprof (it then needs the admin token like the other operator routes)", http.StatusNotFound)
		})
	} else {
		diagnostic := func(pattern string, h http.HandlerFunc) {
			mux.Handle(pattern, access.diagnostic(capProfileSeconds(withDeadline(pprofRouteTimeout, h))))
		}
		diagnostic("/debug/pprof/", pprof.Index)
		diagnostic("/debug/pprof/cmdline", pprof.Cmdline)
		diagnostic("/debug/pprof/profile", pprof.Profile)
		diagnostic("/debug/pprof/symbol", pprof.Symbol)
		diagnostic("/debug/pprof/trace", pprof.Trace)
	}
	return readBody(mux)
}

// readBody reads every request body (at most adminMaxBodySize) before the
// route runs, while the server's ReadTimeout still bounds the reading: a
// route's deadline then moves the connection's deadlines, and a slow body
// must not profit from that.
func readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, adminMaxBodySize))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					http.Error(w, fmt.Sprintf("request body over %d bytes", adminMaxBodySize), http.StatusRequestEntityTooLarge)
					return
				}
				http.Error(w, "reading the request body: "+err.Error(), http.StatusRequestTimeout)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// withDeadline gives a route its deadline: the handler's context ends
// after timeout and the client gets 503 (http.TimeoutHandler, which
// buffers the answer), and the connection's read and write deadlines move
// past it, so that neither the server's ReadTimeout (which would cancel
// the context of a longer route) nor a stale deadline of an earlier
// request on the same connection cuts it short.
func withDeadline(timeout time.Duration, h http.Handler) http.Handler {
	timed := http.TimeoutHandler(h, timeout, fmt.Sprintf("the request did not finish within %v", timeout))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		controller := http.NewResponseController(w)
		end := time.Now().Add(timeout + deadlineSlack)
		controller.SetReadDeadline(end)
		controller.SetWriteDeadline(end)
		timed.ServeHTTP(w, r)
	})
}

// withStreamingDeadline is withDeadline for a route that streams its
// answer (http.TimeoutHandler cannot flush): the handler's context ends
// after timeout, and every write or flush has streamWriteTimeout to reach
// the client, so one that stops reading cannot hold the route.
func withStreamingDeadline(timeout time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		controller := http.NewResponseController(w)
		controller.SetReadDeadline(time.Now().Add(timeout + deadlineSlack))
		controller.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, controller: controller}, r.WithContext(ctx))
	})
}

// deadlineWriter moves the connection's write deadline before every write
// and flush.
type deadlineWriter struct {
	http.ResponseWriter
	controller *http.ResponseController
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.controller.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() {
	w.controller.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	w.controller.Flush()
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// capProfileSeconds refuses a pprof ?seconds= above pprofMaxSeconds: a
// profile or trace holds the route (and costs CPU) that long.
func capProfileSeconds(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if value := r.URL.Query().Get("seconds"); value != "" {
			seconds, err := strconv.Atoi(value)
			if err != nil || seconds < 0 || seconds > pprofMaxSeconds {
				http.Error(w, fmt.Sprintf("seconds=%q: want 0 to %d", value, pprofMaxSeconds), http.StatusBadRequest)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// operation guards a route that changes the cluster.
func (a *adminAccess) operation(next http.Handler) http.Handler {
	return a.guard(func(r *http.Request) (int, string) { return a.checkOperation(r, true) }, next)
}

// diagnostic guards a pprof route.
func (a *adminAccess) diagnostic(next http.Handler) http.Handler {
	return a.guard(func(r *http.Request) (int, string) { return a.checkOperation(r, false) }, next)
}

// read guards a read route: open when no token file and no client
// certificates are configured, else for authenticated callers only.
func (a *adminAccess) read(next http.Handler) http.Handler {
	if a.tokenFile == "" && !a.clientCerts {
		return next
	}
	return a.guard(a.authenticate, next)
}

// guard serves next when check(r) returns 0, else refuses r.
func (a *adminAccess) guard(check func(*http.Request) (int, string), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, reason := check(r)
		if status == 0 {
			next.ServeHTTP(w, r)
			return
		}
		a.log.Warn("admin request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "reason", reason)
		if status == http.StatusUnauthorized {
			// Tools send the bearer token; a browser asks for Basic
			// credentials (any user name, the token as password).
			w.Header().Add("WWW-Authenticate", `Bearer realm="strata admin"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="strata admin", charset="UTF-8"`)
		}
		http.Error(w, reason, status)
	})
}

// verifiedClientCertificate reports whether r came over TLS with a client
// certificate that chains to the listener's CA.
func verifiedClientCertificate(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// authenticate returns 0 when r carries the admin token or a verified
// client certificate, else the status and the reason to refuse it with.
func (a *adminAccess) authenticate(r *http.Request) (int, string) {
	if a.clientCerts && verifiedClientCertificate(r) {
		return 0, ""
	}
	if a.tokenFile == "" {
		return http.StatusUnauthorized, "this route needs a client certificate signed by the node's --ssl-ca-file (strata cluster/tiering: --admin-cert-file, --admin-key-file)"
	}
	tokens, err := ReadAdminTokens(a.tokenFile)
	if err != nil {
		a.log.Error("admin token file unreadable: every authenticated request is refused until it is fixed", "err", err)
		return http.StatusServiceUnavailable, "the node cannot read its --admin-token-file; see its log"
	}
	if !tokenPresented(r, tokens) {
		how := "send Authorization: Bearer TOKEN (strata cluster/tiering: --admin-token-file FILE or STRATA_ADMIN_TOKEN_FILE; a browser: any user name and the token as password), a token from the node's --admin-token-file"
		if a.clientCerts {
			how += ", or a client certificate signed by its --ssl-ca-file"
		}
		return http.StatusUnauthorized, "this route needs the admin token: " + how
	}
	return 0, ""
}

// checkOperation checks an operation (wantJSON) or a diagnostic: it returns
// 0, or the status and the reason to refuse r with.
func (a *adminAccess) checkOperation(r *http.Request, wantJSON bool) (int, string) {
	if !a.hostAllowed(r.Host) {
		return http.StatusForbidden, fmt.Sprintf("Host %q does not name this node: call it by IP address, localhost or this machine's host name (other names are refused: DNS rebinding)", r.Host)
	}
	if origin := r.Header.Get("Origin"); origin != "" && !sameOrigin(origin, r.Host) {
		return http.StatusForbidden, fmt.Sprintf("cross-origin request from %q refused", origin)
	}
	switch {
	case a.tokenFile != "" || a.clientCerts:
		if status, reason := a.authenticate(r); status != 0 {
			return status, reason
		}
	case !a.loopbackOnly:
		return http.StatusForbidden, "operator routes are off on an admin listener that is not loopback-only: start strata serve with --admin-token-file FILE (or bind --admin-listen to 127.0.0.1)"
	}
	if wantJSON {
		mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mediaType != "application/json" {
			return http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/json", r.Header.Get("Content-Type"))
		}
	}
	return 0, ""
}

// hostAllowed reports whether a Host header names this node: an IP
// address (a browser sends the page's own host, so an attacker's page
// cannot carry an address of ours), localhost, or one of a.hostnames.
func (a *adminAccess) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	switch {
	case host == "":
		return false
	case net.ParseIP(host) != nil:
		return true
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return true
	}
	return a.hostnames[host]
}

// sameOrigin reports whether an Origin header is the listener's own
// (scheme http or https, host:port as in Host).
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

// tokenPresented reports whether r carries an accepted token, as
// "Authorization: Bearer TOKEN" or as the password of HTTP Basic (any user
// name), which a browser sends.
func tokenPresented(r *http.Request, tokens []string) bool {
	if _, password, ok := r.BasicAuth(); ok {
		return tokenMatches(password, tokens)
	}
	scheme, presented, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return tokenMatches(strings.TrimSpace(presented), tokens)
}

// tokenMatches compares presented with every accepted token in constant
// time (SHA-256 first, so not even the length leaks).
func tokenMatches(presented string, tokens []string) bool {
	presentedSum := sha256.Sum256([]byte(presented))
	match := 0
	for _, token := range tokens {
		sum := sha256.Sum256([]byte(token))
		match |= subtle.ConstantTimeCompare(presentedSum[:], sum[:])
	}
	return match == 1
}

// ReadAdminTokens reads an admin token file: one token per line, at most
// two (the current one and, while it is being rotated, the next or the
// previous one), each at least 16 characters; blank lines and surrounding
// spaces are ignored. The node accepts every token of the file; a client
// sends the first.
func ReadAdminTokens(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin token file: %w", err)
	}
	var tokens []string
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		token := strings.TrimSpace(scanner.Text())
		if token == "" {
			continue
		}
		if len(token) < minAdminTokenLength {
			return nil, fmt.Errorf("admin token file %s: a token has %d characters, want at least %d (e.g. openssl rand -hex 32)", path, len(token), minAdminTokenLength)
		}
		tokens = append(tokens, token)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("admin token file %s: %w", path, err)
	}
	switch {
	case len(tokens) == 0:
		return nil, fmt.Errorf("admin token file %s holds no token", path)
	case len(tokens) > 2:
		return nil, fmt.Errorf("admin token file %s holds %d tokens, want one, or two while rotating", path, len(tokens))
	}
	return tokens, nil
}

// isLoopbackListener reports whether a listener accepts loopback
// connections only (127.0.0.0/8, ::1).
func isLoopbackListener(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// adminHostnames are the names besides IP addresses and localhost that the
// guarded routes accept in Host: the listen address's host when it is a
// name, and this machine's host name.
func adminHostnames(listen string) map[string]bool {
	names := map[string]bool{}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" && net.ParseIP(host) == nil {
		names[strings.ToLower(host)] = true
	}
	if hostname, err := os.Hostname(); err == nil && hostname != "" {
		names[strings.ToLower(hostname)] = true
	}
	return names
}

// leaderSource is what readiness needs of the metadata store.
type leaderSource interface {
	Leader() (nodeID int32, ok bool)
}

// readiness says why a node is not ready, or nil: its broker must be
// registered and serving (started), and the metadata quorum must have a
// leader, without which no topic, leadership or ISR can change.
func readiness(started bool, quorum leaderSource) error {
	if !started {
		return errors.New("starting: waiting to register with the controller, lead the partitions the metadata assigns this broker (at their leader epochs) and serve the listeners")
	}
	if _, ok := quorum.Leader(); !ok {
		return errors.New("the metadata quorum has no leader: fewer than a majority of the voters are reachable (strata cluster status lists them; when a majority is lost for good, see strata cluster recover-quorum)")
	}
	return nil
}
