package metadata

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Metadata propagation: every broker reports the Raft index of the state it
// has applied and acted on (opened its new partitions, closed deleted ones)
// as soon as it has, and again with every heartbeat. The controller keeps
// the reports in memory, as it keeps sessions, and answers the cluster's
// applied floor: the lowest position among the live (unfenced) brokers. An
// admin request that changed the topics (CreateTopics, CreatePartitions,
// DeleteTopics) answers once the floor has passed its entry, so whichever
// broker a client asks next already agrees with the answer.

// appliedPosition is one broker's report.
type appliedPosition struct {
	brokerEpoch int64
	index       uint64
}

// reportApplied records that broker id (registration brokerEpoch) has
// applied the metadata state up to index. Only on the leader.
func (c *controller) reportApplied(id int32, brokerEpoch int64, index uint64) error {
	b, ok := c.s.State().Broker(id)
	if !ok {
		return fmt.Errorf("broker %d is not registered: %w", id, ErrUnknownBroker)
	}
	if b.Epoch != brokerEpoch {
		return fmt.Errorf("broker %d: epoch %d, registered as %d: %w", id, brokerEpoch, b.Epoch, ErrStaleBrokerEpoch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop == nil {
		return c.s.notLeaderError()
	}
	if current := c.applied[id]; current.brokerEpoch == brokerEpoch && current.index >= index {
		return nil
	}
	c.applied[id] = appliedPosition{brokerEpoch: brokerEpoch, index: index}
	close(c.appliedChanged)
	c.appliedChanged = make(chan struct{})
	return nil
}

// appliedFloor returns the lowest position reported by the live brokers of
// the current state (0 when one has not reported under its current
// registration), the brokers at that position, and a channel closed when a
// report arrives. Only on the leader.
func (c *controller) appliedFloor() (floor uint64, lagging []int32, changed <-chan struct{}, err error) {
	state := c.s.State()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop == nil {
		return 0, nil, nil, c.s.notLeaderError()
	}
	floor = ^uint64(0)
	for _, b := range state.Brokers() {
		if b.Fenced {
			continue
		}
		position := c.applied[b.ID]
		index := position.index
		if position.brokerEpoch != b.Epoch {
			index = 0
		}
		switch {
		case index < floor:
			floor, lagging = index, []int32{b.ID}
		case index == floor:
			lagging = append(lagging, b.ID)
		}
	}
	if floor == ^uint64(0) {
		// No live broker: nothing to wait for.
		floor = state.AppliedIndex()
	}
	return floor, lagging, c.appliedChanged, nil
}

// ReportApplied tells the controller that broker id (registration
// brokerEpoch) has applied and acted on the metadata state up to index.
func (s *Store) ReportApplied(ctx context.Context, id int32, brokerEpoch int64, index uint64) error {
	if s.IsLeader() {
		return s.controller.reportApplied(id, brokerEpoch, index)
	}
	e := encoder{}
	e.uint8(rpcReportApplied)
	e.int32(id)
	e.int64(brokerEpoch)
	e.uint64(index)
	_, err := s.forward(ctx, e.buffer)
	return err
}

// propagationPoll is how often a node that does not lead asks the leader
// for the applied floor while it waits.
const propagationPoll = 10 * time.Millisecond

// WaitPropagated waits until every live broker has applied the metadata
// state up to index (a change this node committed), so Metadata answers the
// same on all of them. It fails when ctx ends first, naming the brokers
// that had not caught up.
func (s *Store) WaitPropagated(ctx context.Context, index uint64) error {
	for {
		floor, lagging, changed, err := s.appliedFloor(ctx)
		switch {
		case err == nil && floor >= index:
			return nil
		case err == nil:
			err = fmt.Errorf("metadata: brokers %s have not applied index %d yet (at %d)", formatIDs(lagging), index, floor)
		}
		if changed == nil {
			timer := time.NewTimer(propagationPoll)
			select {
			case <-timer.C:
				continue
			case <-ctx.Done():
				timer.Stop()
			case <-s.closing:
				timer.Stop()
				return ErrClosed
			}
		} else {
			select {
			case <-changed:
				continue
			case <-time.After(propagationPoll): // leadership or fencing changed meanwhile
				continue
			case <-ctx.Done():
			case <-s.closing:
				return ErrClosed
			}
		}
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
}

// appliedFloor asks the leader (itself, or over the RPC channel) for the
// cluster's applied floor. changed is set only on the leader.
func (s *Store) appliedFloor(ctx context.Context) (uint64, []int32, <-chan struct{}, error) {
	if s.IsLeader() {
		return s.controller.appliedFloor()
	}
	response, err := s.forward(ctx, []byte{rpcAppliedFloor})
	if err != nil {
		return 0, nil, nil, err
	}
	var lagging []int32
	for _, field := range strings.Fields(response.message) {
		var id int32
		if _, err := fmt.Sscanf(field, "%d", &id); err == nil {
			lagging = append(lagging, id)
		}
	}
	return response.index, lagging, nil, nil
}

func formatIDs(ids []int32) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
