package quota

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/metadata"
)

// Kind is what a quota limits.
type Kind int8

const (
	// Produce limits the bytes of a client's Produce requests
	// (producer_byte_rate).
	Produce Kind = iota
	// Fetch limits the bytes of a consumer's Fetch responses
	// (consumer_byte_rate); followers' fetches are exempt.
	Fetch
)

// Key is the quota key that limits k.
func (k Kind) Key() string {
	if k == Fetch {
		return metadata.ConsumerByteRate
	}
	return metadata.ProducerByteRate
}

// String is Kafka's quota type name, as its metrics use it.
func (k Kind) String() string {
	if k == Fetch {
		return "Fetch"
	}
	return "Produce"
}

// Client is who a request is counted against.
type Client struct {
	// User is the principal's name (ANONYMOUS without authentication).
	User string
	// ClientID is the request header's client id.
	ClientID string
}

// Source is where quotas are configured: a metadata.State.
type Source interface {
	ClientQuota(metadata.QuotaEntity) (map[string]float64, bool)
	ClientQuotaCount() int
}

var _ Source = (*metadata.State)(nil)

// Clock is the time source of rates and of muted connections.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a Manager. Zero values mean Kafka's defaults.
type Config struct {
	// WindowNum is quota.window.num: the samples a rate is measured over,
	// default 11.
	WindowNum int
	// WindowSize is quota.window.size.seconds: each sample's span,
	// default 1 s.
	WindowSize time.Duration
	// Clock defaults to the real clock; tests inject one.
	Clock Clock
	// Registerer receives the quota metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.WindowNum == 0 {
		c.WindowNum = 11
	}
	if c.WindowSize == 0 {
		c.WindowSize = time.Second
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return c
}

// Validate checks the window settings.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.WindowNum < 2 {
		return fmt.Errorf("quota.window.num is %d; it must be at least 2", c.WindowNum)
	}
	if c.WindowSize < time.Second || c.WindowSize%time.Second != 0 {
		return fmt.Errorf("quota.window.size.seconds is %s; it must be a whole number of seconds, at least 1", c.WindowSize)
	}
	return nil
}

// Manager measures every client's rates and answers throttle times.
type Manager struct {
	cfg      Config
	windowMs int64
	metrics  *metrics

	// mu guards rates and lastSweep.
	mu        sync.Mutex
	rates     map[sensorKey]*rate
	lastSweep int64
}

// sensorKey names one measured rate (Kafka's sensor): a kind and the
// (user, client id) tags resolution chose; "" is a tag not used.
type sensorKey struct {
	kind           Kind
	user, clientID string
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Manager{cfg: cfg, windowMs: cfg.WindowSize.Milliseconds(), rates: map[sensorKey]*rate{}}
	var err error
	if m.metrics, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	return m, nil
}

// Clock is the manager's clock, which muted connections wait on.
func (m *Manager) Clock() Clock { return m.cfg.Clock }

// resolution is the quota that applies to a client for one kind.
type resolution struct {
	sensor sensorKey
	// entity is the configured entity that matched (metrics' labels).
	entity metadata.QuotaEntity
	bound  float64
}

// resolve applies Kafka's resolution order (doc.go) to one kind.
func resolve(src Source, kind Kind, c Client) (resolution, bool) {
	if src.ClientQuotaCount() == 0 {
		return resolution{}, false
	}
	user, clientID := metadata.NamedQuota(c.User), metadata.NamedQuota(c.ClientID)
	absent := metadata.QuotaName{}
	both := sensorKey{kind: kind, user: c.User, clientID: c.ClientID}
	userOnly := sensorKey{kind: kind, user: c.User}
	clientOnly := sensorKey{kind: kind, clientID: c.ClientID}
	levels := [...]struct {
		entity metadata.QuotaEntity
		sensor sensorKey
	}{
		{metadata.QuotaEntity{User: user, ClientID: clientID}, both},
		{metadata.QuotaEntity{User: user, ClientID: metadata.DefaultQuota}, both},
		{metadata.QuotaEntity{User: user, ClientID: absent}, userOnly},
		{metadata.QuotaEntity{User: metadata.DefaultQuota, ClientID: clientID}, both},
		{metadata.QuotaEntity{User: metadata.DefaultQuota, ClientID: metadata.DefaultQuota}, both},
		{metadata.QuotaEntity{User: metadata.DefaultQuota, ClientID: absent}, userOnly},
		{metadata.QuotaEntity{User: absent, ClientID: clientID}, clientOnly},
		{metadata.QuotaEntity{User: absent, ClientID: metadata.DefaultQuota}, clientOnly},
	}
	for _, level := range levels {
		values, ok := src.ClientQuota(level.entity)
		if !ok {
			continue
		}
		if bound, ok := values[kind.Key()]; ok {
			return resolution{sensor: level.sensor, entity: level.entity, bound: bound}, true
		}
	}
	return resolution{}, false
}

// Record counts n bytes of kind against c's quota now and returns how
// long c must be throttled: 0 within the quota.
func (m *Manager) Record(src Source, kind Kind, c Client, n int64) time.Duration {
	return m.record(src, kind, c, n, false)
}

// RecordUnlessThrottled is Record, except that bytes that earn a throttle
// time are not counted: Kafka answers a throttled Fetch empty, so its
// bytes were never sent.
func (m *Manager) RecordUnlessThrottled(src Source, kind Kind, c Client, n int64) time.Duration {
	return m.record(src, kind, c, n, true)
}

func (m *Manager) record(src Source, kind Kind, c Client, n int64, undoIfThrottled bool) time.Duration {
	r, ok := resolve(src, kind, c)
	if !ok {
		return 0
	}
	now := m.cfg.Clock.Now().UnixMilli()
	m.mu.Lock()
	m.sweepLocked(now)
	sensor := m.rates[r.sensor]
	if sensor == nil {
		sensor = newRate(m.cfg.WindowNum, m.windowMs)
		m.rates[r.sensor] = sensor
	}
	sensor.record(float64(n), now)
	value, window := sensor.measure(now)
	throttle := throttleTime(value, r.bound, window)
	if throttle > 0 && undoIfThrottled {
		// Only a throttled fetch is answered empty (a rate a hair over
		// the quota may round to no throttle: its bytes are sent).
		sensor.record(-float64(n), now)
	}
	m.mu.Unlock()
	if throttle == 0 || !undoIfThrottled {
		m.metrics.bytes(kind, r.entity, n)
	}
	m.metrics.throttled(kind, r.entity, throttle)
	return throttle
}

// MaxBytesPerWindow is what c's quota of kind allows in the measured
// window, (num−1) × size seconds of it: Kafka caps a consumer's fetch
// size with it, so that one response never needs more than the window.
func (m *Manager) MaxBytesPerWindow(src Source, kind Kind, c Client) (int64, bool) {
	r, ok := resolve(src, kind, c)
	if !ok {
		return 0, false
	}
	bytes := r.bound * float64(m.cfg.WindowNum-1) * m.cfg.WindowSize.Seconds()
	return int64(min(bytes, math.MaxInt64/2)), true
}

// sweepLocked forgets the rates not recorded in the last num × size:
// every sample of theirs would be dropped, so a new rate measures the
// same.
func (m *Manager) sweepLocked(now int64) {
	expiry := int64(m.cfg.WindowNum) * m.windowMs
	if now-m.lastSweep < expiry {
		return
	}
	m.lastSweep = now
	for key, r := range m.rates {
		if now-r.lastRecord >= expiry {
			delete(m.rates, key)
		}
	}
}

// errRegister wraps a metric registration failure.
var errRegister = errors.New("quota: register metrics")
