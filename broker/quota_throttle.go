package broker

import (
	"time"

	"github.com/strata-log/strata/broker/quota"
)

// Client quota enforcement on a connection (broker/quota): Produce counts
// the request's bytes, a consumer's Fetch the record bytes of its
// response; over the quota, the response carries throttle_time_ms and
// the connection is muted for that long (KIP-219: the response is sent at
// once, then no further request is read until the throttle time has
// passed, so clients that ignore throttle_time_ms are held back too).

// quotaClient is who this connection's request counts against: the
// authenticated principal's name (ANONYMOUS without authentication) and
// the request's client id.
func (c *clientConn) quotaClient(h requestHeader) quota.Client {
	return quota.Client{User: c.principal().Name, ClientID: h.clientID}
}

// throttle mutes the connection for d once the response in hand is
// queued: the one way a connection is throttled, for client quotas and
// for local disk pressure (diskPressure). Reader goroutine only (handlers).
func (c *clientConn) throttle(d time.Duration) {
	c.mute = max(c.mute, d)
}

// waitUnmuted waits out a mute set by throttle; false when the connection
// stops meanwhile.
func (c *clientConn) waitUnmuted() bool {
	if c.mute <= 0 {
		return true
	}
	d := c.mute
	c.mute = 0
	c.log.Debug("connection muted: throttled (client quota or local disk pressure)", "throttle", d)
	select {
	case <-c.server.quotas.Clock().After(d):
		return true
	case <-c.ctx.Done():
		return false
	}
}
