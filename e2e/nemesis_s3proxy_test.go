//go:build e2e

package e2e

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// s3FaultProxy is an HTTP proxy in front of the S3 server that the brokers
// use as their object store endpoint. It forwards requests unchanged (the
// Host header too, so SigV4 signatures still verify) and, while a fault is
// set, answers a share of them with 503 SlowDown, holds a share for a while
// and then drops the connection (a timeout), or delays PUTs (so a deposed
// leader is still uploading while its successor is elected).
type s3FaultProxy struct {
	ln    net.Listener
	proxy *httputil.ReverseProxy

	mu       sync.Mutex
	rng      *rand.Rand
	failRate float64       // share of requests answered 503
	hangRate float64       // share of requests held for hang, then dropped
	hang     time.Duration //
	putDelay time.Duration // every PUT waits this long before it is forwarded

	requests, failed, hung, delayed atomic.Int64
}

func startS3FaultProxy(t *testing.T, target string, seed uint64) *s3FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln := listenLoopback(t)
	p := &s3FaultProxy{ln: ln, rng: rand.New(rand.NewPCG(seed, 3))}
	p.proxy = &httputil.ReverseProxy{Director: func(r *http.Request) {
		r.URL.Scheme, r.URL.Host = u.Scheme, u.Host // r.Host stays: it is signed
	}}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// endpoint is the proxy's http:// address.
func (p *s3FaultProxy) endpoint() string { return "http://" + p.ln.Addr().String() }

// set replaces the current faults; the zero values switch them off.
func (p *s3FaultProxy) set(failRate, hangRate float64, hang, putDelay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failRate, p.hangRate, p.hang, p.putDelay = failRate, hangRate, hang, putDelay
}

func (p *s3FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	roll := p.rng.Float64()
	fail := roll < p.failRate
	hang := !fail && roll < p.failRate+p.hangRate
	hangFor, putDelay := p.hang, p.putDelay
	p.mu.Unlock()
	switch {
	case fail:
		p.failed.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>nemesis</Message></Error>`)
		return
	case hang:
		p.hung.Add(1)
		select {
		case <-time.After(hangFor):
		case <-r.Context().Done():
		}
		panic(http.ErrAbortHandler) // drops the connection without an answer
	}
	if r.Method == http.MethodPut && putDelay > 0 {
		p.delayed.Add(1)
		select {
		case <-time.After(putDelay):
		case <-r.Context().Done():
			return
		}
	}
	p.proxy.ServeHTTP(w, r)
}
