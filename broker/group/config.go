package group

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults, the same as Kafka's broker defaults.
const (
	DefaultMinSessionTimeout     = 6 * time.Second  // group.min.session.timeout.ms
	DefaultMaxSessionTimeout     = 30 * time.Minute // group.max.session.timeout.ms
	DefaultInitialRebalanceDelay = 3 * time.Second  // group.initial.rebalance.delay.ms
	// DefaultNewMemberJoinTimeout bounds how long a member that has never
	// completed a join may wait in a rebalance (Kafka's fixed
	// NewMemberJoinTimeoutMs): such a member has no member id to heartbeat
	// with, and its client may have given up and retried.
	DefaultNewMemberJoinTimeout = 5 * time.Minute
	// DefaultMaxSize is Kafka's group.max.size default, Int.MaxValue: no
	// limit in practice.
	DefaultMaxSize = math.MaxInt32
)

// ErrInvalidConfig is returned by Config.Validate and New.
var ErrInvalidConfig = errors.New("group: invalid config")

// Config configures a Coordinator. The zero value of every field means its
// default, so Config{} is a valid configuration.
type Config struct {
	// MinSessionTimeout and MaxSessionTimeout bound the session timeout a
	// member may ask for (group.min.session.timeout.ms,
	// group.max.session.timeout.ms); a JoinGroup outside them fails with
	// INVALID_SESSION_TIMEOUT. Defaults DefaultMinSessionTimeout and
	// DefaultMaxSessionTimeout.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long the first rebalance of an empty
	// group waits for more members (group.initial.rebalance.delay.ms); every
	// member that joins meanwhile extends the wait by this much again, up to
	// the group's rebalance timeout. Negative means no delay (Kafka's 0,
	// which tests and single-consumer setups use). Default
	// DefaultInitialRebalanceDelay.
	InitialRebalanceDelay time.Duration
	// NewMemberJoinTimeout removes a member whose first JoinGroup is still
	// waiting after this long. Default DefaultNewMemberJoinTimeout.
	NewMemberJoinTimeout time.Duration
	// MaxSize is group.max.size: the most members a group takes. A member
	// joining a group that has MaxSize members (counting those still to
	// rejoin a rebalance) is refused with GROUP_MAX_SIZE_REACHED; members
	// already in the group are not, nor a static member replacing its
	// instance's previous member, which does not grow the group. A group
	// restored with more members (MaxSize was lowered) rebalances at
	// once, and the members that rejoin after the first MaxSize are
	// removed with GROUP_MAX_SIZE_REACHED. Default DefaultMaxSize.
	MaxSize int
	// Clock schedules every timeout. Default the real clock; tests inject a
	// fake one so that no test sleeps.
	Clock Clock
	// Store persists group metadata (the leader's assignment, a group that
	// became empty, a replaced static member) before the coordinator answers
	// as if it were durable. Nil keeps everything in memory: each store
	// succeeds at once.
	Store Store
	// Logger receives membership events (members expired or removed,
	// rebalances and their reasons). Default slog.Default().
	Logger *slog.Logger
	// NewMemberID makes the member id handed to a joining member from a
	// prefix: the group instance id of a static member, else the client
	// id. Default: the prefix, "-" and a random UUID, as Kafka does.
	NewMemberID func(prefix string) string
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.MinSessionTimeout < 0:
		return fmt.Errorf("%w: MinSessionTimeout %v is negative", ErrInvalidConfig, c.MinSessionTimeout)
	case c.MaxSessionTimeout < 0:
		return fmt.Errorf("%w: MaxSessionTimeout %v is negative", ErrInvalidConfig, c.MaxSessionTimeout)
	case c.NewMemberJoinTimeout < 0:
		return fmt.Errorf("%w: NewMemberJoinTimeout %v is negative", ErrInvalidConfig, c.NewMemberJoinTimeout)
	case c.MaxSize < 0:
		return fmt.Errorf("%w: MaxSize %d is negative", ErrInvalidConfig, c.MaxSize)
	}
	d := c.withDefaults()
	if d.MinSessionTimeout > d.MaxSessionTimeout {
		return fmt.Errorf("%w: MinSessionTimeout %v is above MaxSessionTimeout %v", ErrInvalidConfig, d.MinSessionTimeout, d.MaxSessionTimeout)
	}
	return nil
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	switch {
	case c.InitialRebalanceDelay == 0:
		c.InitialRebalanceDelay = DefaultInitialRebalanceDelay
	case c.InitialRebalanceDelay < 0:
		c.InitialRebalanceDelay = 0
	}
	if c.NewMemberJoinTimeout == 0 {
		c.NewMemberJoinTimeout = DefaultNewMemberJoinTimeout
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Store == nil {
		c.Store = memoryStore{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.NewMemberID == nil {
		c.NewMemberID = randomMemberID
	}
	return c
}

// Clock is the time source and timer factory of a Coordinator.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless the
	// returned Timer is stopped first (like time.AfterFunc).
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled call made by Clock.AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not started; it does not wait for
	// a call already running. The coordinator ignores a call that lost
	// this race, so Stop's result does not matter to it.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

var _ Clock = realClock{}

// Store persists group metadata: a Shard writes Kafka's GroupMetadata
// records to the group's __consumer_offsets partition.
type Store interface {
	// StoreGroup persists rec and calls done exactly once, from any
	// goroutine, when it is durable (nil) or has failed. The coordinator
	// calls StoreGroup without holding any lock, and done may be called
	// before StoreGroup returns. A failure should be the Kafka error the
	// members are to see (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, ...);
	// any other error is reported to them as COORDINATOR_NOT_AVAILABLE.
	// A group's records are passed in the order the group changed, one
	// call at a time, and must be persisted in that order (the last one
	// is what Coordinator.Restore loads); a call may come from within
	// the done of an earlier one.
	StoreGroup(rec Record, done func(error))
	// DeleteGroupData deletes what is stored of a group (its metadata and
	// its committed offsets) when the coordinator deletes it
	// (Coordinator.Delete): nil once that is durable, else the Kafka error
	// the client is to see, and the group is kept. It is called with the
	// group's lock held, so it must not call the coordinator.
	DeleteGroupData(groupID string) error
}

type memoryStore struct{}

func (memoryStore) StoreGroup(_ Record, done func(error)) { done(nil) }

func (memoryStore) DeleteGroupData(string) error { return nil }

var _ Store = memoryStore{}
