package txn

import (
	"errors"
	"time"
)

// Defaults, as Kafka's.
const (
	DefaultMaxTimeout            = 15 * time.Minute   // transaction.max.timeout.ms
	DefaultIDExpiration          = 7 * 24 * time.Hour // transactional.id.expiration.ms
	DefaultAbortTimedOutInterval = 10 * time.Second   // transaction.abort.timed.out.transaction.cleanup.interval.ms
	DefaultRemoveExpiredInterval = time.Hour          // transaction.remove.expired.transaction.cleanup.interval.ms
	DefaultMarkerRetryBackoff    = 100 * time.Millisecond
)

// ErrInvalidConfig is a configuration the coordinator cannot run with.
var ErrInvalidConfig = errors.New("txn: invalid config")

// Config holds the coordinator's settings. Zero values mean the defaults.
type Config struct {
	// MaxTimeout is transaction.max.timeout.ms: InitProducerId with a
	// longer transaction timeout gets INVALID_TRANSACTION_TIMEOUT.
	MaxTimeout time.Duration
	// IDExpiration is transactional.id.expiration.ms: a transactional id
	// with no open transaction, unused this long, is removed.
	IDExpiration time.Duration
	// AbortTimedOutInterval is how often transactions past their timeout
	// are looked for and aborted.
	AbortTimedOutInterval time.Duration
	// RemoveExpiredInterval is how often expired transactional ids are
	// looked for.
	RemoveExpiredInterval time.Duration
	// MarkerRetryBackoff is the pause before markers that could not be
	// written (no leader, leader moved) are sent again.
	MarkerRetryBackoff time.Duration
	// Now is the clock; default time.Now. Tests move it by hand.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.MaxTimeout == 0 {
		c.MaxTimeout = DefaultMaxTimeout
	}
	if c.IDExpiration == 0 {
		c.IDExpiration = DefaultIDExpiration
	}
	if c.AbortTimedOutInterval == 0 {
		c.AbortTimedOutInterval = DefaultAbortTimedOutInterval
	}
	if c.RemoveExpiredInterval == 0 {
		c.RemoveExpiredInterval = DefaultRemoveExpiredInterval
	}
	if c.MarkerRetryBackoff == 0 {
		c.MarkerRetryBackoff = DefaultMarkerRetryBackoff
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a setting the coordinator cannot run with.
func (c Config) Validate() error {
	if c.MaxTimeout < 0 || c.IDExpiration < 0 || c.AbortTimedOutInterval < 0 || c.RemoveExpiredInterval < 0 || c.MarkerRetryBackoff < 0 {
		return errors.Join(ErrInvalidConfig, errors.New("transaction timeouts, expiration and intervals must not be negative"))
	}
	return nil
}
