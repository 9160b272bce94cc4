package broker

import (
	"context"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
)

// What the package's external tests (package broker_test, which start
// brokers with brokertest) may look at inside a Server.

// Groups is the server's group coordinator manager.
func (s *Server) Groups() *group.Manager { return s.groups }

// OpenPartition is an open partition replica of this broker, or nil.
func (s *Server) OpenPartition(topic string, index int32) *partition.Partition {
	return s.partitions.getByName(topic, index)
}

// CleanPartition runs one log-cleaner pass over p now.
func (s *Server) CleanPartition(p *partition.Partition) { s.partitions.cleanPartition(p) }

// OffsetsRetention is the server's offsets.retention.minutes.
func (s *Server) OffsetsRetention() int64 { return int64(s.cfg.OffsetsRetention) }

// HoldRegistration makes the server wait for release before each attempt
// to register with its controller (call it before Serve).
func (s *Server) HoldRegistration(release <-chan struct{}) {
	s.membership.beforeRegister = func() { <-release }
}

// HoldReconcile keeps the partitions from following metadata changes
// until the returned release is called.
func (s *Server) HoldReconcile() (release func()) {
	s.partitions.reconcileMu.Lock()
	return s.partitions.reconcileMu.Unlock
}

// ReconciledIndex is the applied index of the metadata state the last
// finished reconcile pass followed (its partitions opened and removed,
// the deleted topics reported to the group coordinators).
func (s *Server) ReconciledIndex() uint64 { return s.partitions.reconciledIndex() }

// Registration is what the server registers (or would register next) with
// its controller.
func (s *Server) Registration() metadata.BrokerRegistration { return s.membership.registration() }

// ConnectionPrincipals are the principals of the open client connections.
func (s *Server) ConnectionPrincipals() []authn.Principal {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []authn.Principal
	for c := range s.conns {
		ps = append(ps, c.principal())
	}
	return ps
}

// BeforeConfigsStored makes the server call hook, with the resource's
// name, before it proposes a topic's or broker's new configs
// (AlterConfigs, IncrementalAlterConfigs).
func (s *Server) BeforeConfigsStored(hook func(resource string)) { s.beforeConfigsStored = hook }

// BeforeElectionProposed makes ElectLeaders call hook, with the
// partition, after it decided on a new leader and before it proposes it.
func (s *Server) BeforeElectionProposed(hook func(topic string, partition int32)) {
	s.beforeElectionProposed = hook
}

// BeforeOffsetDelete makes the server call hook, with the group's id,
// when an OffsetDelete has checked its partitions (authorization,
// existence) and is about to delete the group's offsets.
func (s *Server) BeforeOffsetDelete(hook func(groupID string)) { s.beforeOffsetDelete = hook }

// BeforeOffsetCommit makes the server call hook, with the group's id,
// when an OffsetCommit has been checked (its sender, its partitions) and
// is about to write its commits.
func (s *Server) BeforeOffsetCommit(hook func(groupID string)) { s.beforeOffsetCommit = hook }

// MaxRequestElements and RequestElementBytes are the request-element
// limit and charge (request_elements.go).
const (
	MaxRequestElements  = maxRequestElements
	RequestElementBytes = requestElementBytes
)

// RequestElements counts a request's elements as the broker does.
func RequestElements(req kmsg.Request) int { return requestElements(req) }

// RequestCharge is what a request of frameSize bytes is charged in
// request memory while it is handled.
func RequestCharge(req kmsg.Request, frameSize int) int64 {
	n, stringBytes := requestElementsAndStrings(req)
	return requestCharge(frameSize, n, stringBytes)
}

// HoldRequestMemory takes n bytes of the server's request memory
// (queued.max.request.bytes) until release is called.
func (s *Server) HoldRequestMemory(n int64) (release func()) {
	release, err := s.requestMemory.acquire(context.Background(), n)
	if err != nil {
		panic(err)
	}
	return release
}

// RequestMemoryWaits counts the times a connection waited for request
// memory.
func (s *Server) RequestMemoryWaits() float64 {
	return testutil.ToFloat64(s.metrics.requestMemoryWaits)
}

// AfterRequestState makes Fetch and ListOffsets call hook, with the API
// key, right after they read the metadata state (before they look at any
// partition).
func (s *Server) AfterRequestState(hook func(key int16)) { s.afterRequestState = hook }

// AfterLogStarts makes Fetch call hook, with the API key, once it has
// planned its partitions (read their log starts, decided on local or
// remote reads) and before it reads them, and ListOffsets once it has read
// a partition's log starts and before it looks the offset up.
func (s *Server) AfterLogStarts(hook func(key int16)) { s.afterLogStarts = hook }

// SkipTaggedFields is skipTaggedFields: the fuzz tests skip a flexible
// response header's tagged fields with the decoder the broker uses.
var SkipTaggedFields = skipTaggedFields
