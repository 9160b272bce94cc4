package main

import (
	"io"
	"net"
	"time"
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
	rate     float64 // bytes per second, per connection
}

// startConnRateProxy listens on a loopback port and forwards each
// connection to target, paced at rate bytes per second from the server.
func startConnRateProxy(target string, rate int64) (*connRateProxy, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &connRateProxy{listener: listener, target: target, rate: float64(rate)}
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

// paced copies from to to at the proxy's rate: 64 KiB at a time, each
// sent once the bytes before it are paid for at the rate.
func (p *connRateProxy) paced(to io.Writer, from io.Reader) {
	buf := make([]byte, 64<<10)
	began, sent := time.Now(), 0.0
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if due := began.Add(time.Duration(sent / p.rate * float64(time.Second))); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			} else if idle := -time.Until(due); idle > 100*time.Millisecond {
				// Idle since (a keep-alive connection between requests):
				// the budget does not build up.
				began, sent = time.Now(), 0
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
			sent += float64(n)
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
