package main

import (
	"context"
	"io"
	"net"

	"github.com/strata-log/strata/broker/quota"
)

// connRateProxy stands between the broker (and the direct reads) and the
// S3 server when --tiered-store-conn-mibps is set: every connection's
// bytes from the server come at most at rate bytes per second, as one
// connection to S3 delivers tens to about a hundred MB/s whatever the
// client does. The bytes to the server are not limited (uploads). It runs
// in the bench's own process, so its CPU is counted as the client's.
type connRateProxy struct {
	listener net.Listener
	target   string
	rate     int64 // bytes per second, per connection
}

// startConnRateProxy listens on a loopback port and forwards each
// connection to target, paced at rate bytes per second from the server.
func startConnRateProxy(target string, rate int64) (*connRateProxy, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &connRateProxy{listener: listener, target: target, rate: rate}
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *connRateProxy) Addr() string { return p.listener.Addr().String() }

func (p *connRateProxy) accept() {
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		go func() {
			io.Copy(server, client)
			server.(*net.TCPConn).CloseWrite()
		}()
		go func() {
			p.paced(client, server)
			client.Close()
			server.Close()
		}()
	}
}

// paced copies from to to at the proxy's rate, 64 KiB at a time, each
// sent once the pacer has paid for it (quota.Pacer, the broker's: a
// bucket of one piece, so an idle spell builds up no burst).
func (p *connRateProxy) paced(to io.Writer, from io.Reader) {
	pacer := quota.NewPacer(quota.PacerConfig{BytesPerSecond: p.rate, Burst: 64 << 10})
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			pacer.Wait(context.Background(), int64(n))
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // the server closed (or the client went away)
		}
	}
}

// Close stops accepting (the connections end with their peers).
func (p *connRateProxy) Close() {
	p.listener.Close()
}
