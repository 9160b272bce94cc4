// Package coordinator is what the group coordinator (broker/group) and the
// transaction coordinator (broker/txn) share: each keeps its state in the
// partitions of an internal topic (__consumer_offsets,
// __transaction_state), one shard per partition, and serves the shards of
// the partitions this broker leads. Partition maps a key (group id,
// transactional id) to its partition as Kafka does; a Set holds the
// shards this broker leads and finds a key's; a Lifecycle is one shard's
// life (loading, serving, closed).
package coordinator

import (
	"log/slog"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Partition returns the internal-topic partition of a key (a group id, a
// transactional id), as Kafka computes it (Utils.abs(key.hashCode()) %
// partitions, with Java's String.hashCode over UTF-16 code units), so a
// key lands on the same partition as in Kafka. partitions must be
// positive; otherwise 0.
func Partition(key string, partitions int32) int32 {
	if partitions <= 0 {
		return 0
	}
	var h int32
	for _, r := range key {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// Topic is the internal topic as a Set needs it.
type Topic interface {
	// Leaders returns the leader broker of each of the topic's partitions
	// (-1 for none), creating the topic on first use.
	Leaders() ([]int32, error)
}

// Shard is a coordinator shard as a Set needs it.
type Shard interface {
	// Load replays the shard's partition; it runs once, in a goroutine
	// of the Set's, and Loaded is closed when it returns.
	Load()
	Loaded() <-chan struct{}
	// Serving reports whether the shard is loaded, open and its
	// partition still led here.
	Serving() bool
	// Close stops the shard for good.
	Close()
}

// Set holds the shards of the internal-topic partitions this broker leads,
// each with the log (of type L) of the leadership term it runs over: Lead
// installs one and loads it in the background, Resign stops it, For finds
// a key's. It owns the loading goroutines (Close waits for them). Every
// method may be called from any goroutine.
type Set[S Shard, L comparable] struct {
	topic     Topic
	topicName string
	logger    *slog.Logger

	loaders sync.WaitGroup // shards loading in the background

	mu     sync.RWMutex // guards shards
	shards map[int32]entry[S, L]
}

type entry[S Shard, L comparable] struct {
	shard S
	log   L
}

// NewSet makes a Set over topic, named topicName in its logs; a nil
// logger is slog.Default().
func NewSet[S Shard, L comparable](topic Topic, topicName string, logger *slog.Logger) *Set[S, L] {
	if logger == nil {
		logger = slog.Default()
	}
	return &Set[S, L]{topic: topic, topicName: topicName, logger: logger, shards: map[int32]entry[S, L]{}}
}

// Lead makes shard, running over log, partition's shard and loads it in
// the background, replacing (and closing) any shard the partition had:
// called when this broker starts a leadership term of the partition.
func (s *Set[S, L]) Lead(partition int32, log L, shard S) {
	s.mu.Lock()
	old, had := s.shards[partition]
	s.shards[partition] = entry[S, L]{shard: shard, log: log}
	s.loaders.Add(1)
	s.mu.Unlock()
	if had {
		old.shard.Close()
	}
	go func() {
		defer s.loaders.Done()
		shard.Load()
	}()
}

// Resign closes the shard of partition if it runs over log: called when
// this broker stops leading the partition or closes it.
func (s *Set[S, L]) Resign(partition int32, log L) {
	s.mu.Lock()
	e, ok := s.shards[partition]
	if ok && e.log == log {
		delete(s.shards, partition)
	} else {
		ok = false
	}
	s.mu.Unlock()
	if ok {
		e.shard.Close()
	}
}

// Close closes every shard and waits for those still loading.
func (s *Set[S, L]) Close() {
	s.mu.Lock()
	shards := s.shards
	s.shards = map[int32]entry[S, L]{}
	s.mu.Unlock()
	for _, e := range shards {
		e.shard.Close()
	}
	s.loaders.Wait()
}

// For returns the loaded shard of key's partition, or the error a client
// acts on: COORDINATOR_NOT_AVAILABLE (no topic), NOT_COORDINATOR (not led
// here, or no longer serving), COORDINATOR_LOAD_IN_PROGRESS.
func (s *Set[S, L]) For(key string) (S, *kerr.Error) {
	var none S
	leaders, err := s.topic.Leaders()
	if err != nil {
		s.logger.Warn("coordinator topic unavailable", "topic", s.topicName, "err", err)
		return none, kerr.CoordinatorNotAvailable
	}
	s.mu.RLock()
	e, ok := s.shards[Partition(key, int32(len(leaders)))]
	s.mu.RUnlock()
	if !ok {
		return none, kerr.NotCoordinator
	}
	select {
	case <-e.shard.Loaded():
	default:
		return none, kerr.CoordinatorLoadInProgress
	}
	if !e.shard.Serving() {
		return none, kerr.NotCoordinator
	}
	return e.shard, nil
}

// Of returns partition's shard, loaded or not, if this broker leads the
// partition.
func (s *Set[S, L]) Of(partition int32) (S, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.shards[partition]
	return e.shard, ok
}

// CoordinatorOf returns the broker leading key's partition
// (FindCoordinator), or COORDINATOR_NOT_AVAILABLE.
func (s *Set[S, L]) CoordinatorOf(key string) (int32, *kerr.Error) {
	leaders, err := s.topic.Leaders()
	if err != nil {
		s.logger.Warn("coordinator topic unavailable", "topic", s.topicName, "err", err)
		return -1, kerr.CoordinatorNotAvailable
	}
	if len(leaders) == 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	leader := leaders[Partition(key, int32(len(leaders)))]
	if leader < 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	return leader, nil
}

// All returns every shard, loaded or still loading.
func (s *Set[S, L]) All() []S {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]S, 0, len(s.shards))
	for _, e := range s.shards {
		out = append(out, e.shard)
	}
	return out
}

// Loaded returns the loaded shards in partition order, and whether every
// shard is loaded.
func (s *Set[S, L]) Loaded() ([]S, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	partitions := make([]int32, 0, len(s.shards))
	allLoaded := true
	for p, e := range s.shards {
		select {
		case <-e.shard.Loaded():
			partitions = append(partitions, p)
		default:
			allLoaded = false
		}
	}
	sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
	out := make([]S, len(partitions))
	for i, p := range partitions {
		out[i] = s.shards[p].shard
	}
	return out, allLoaded
}
