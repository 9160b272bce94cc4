package metadata

import (
	"fmt"
	"math"

	"github.com/google/uuid"
)

// MaxProducerIDBlock is the largest block AllocateProducerIDs hands out at
// once.
const MaxProducerIDBlock = 1 << 20

// formatTopicID renders a topic id in the usual UUID form.
func formatTopicID(id [16]byte) string { return uuid.UUID(id).String() }

// initClusterCommand records the cluster id. The first leader proposes it
// right after bootstrap; it is a no-op when the same id is already set and a
// rejection when another is.
type initClusterCommand struct {
	clusterID string
}

func (c *initClusterCommand) commandType() commandType { return commandInitCluster }
func (c *initClusterCommand) encode(e *encoder)        { e.string(c.clusterID) }

func decodeInitCluster(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &initClusterCommand{clusterID: d.string()}, true
}

func (c *initClusterCommand) apply(b *stateBuilder) (any, error) {
	switch {
	case c.clusterID == "":
		return nil, fmt.Errorf("%w: empty", ErrInvalidClusterID)
	case b.clusterID == "":
		b.clusterID = c.clusterID
	case b.clusterID != c.clusterID:
		return nil, fmt.Errorf("state has cluster id %q, command has %q: %w", b.clusterID, c.clusterID, ErrClusterIDMismatch)
	}
	return nil, nil
}

// allocateProducerIDsCommand hands a broker the block of count producer ids
// starting at the state's next producer id.
type allocateProducerIDsCommand struct {
	brokerID int32
	count    int64
}

func (c *allocateProducerIDsCommand) commandType() commandType { return commandAllocateProducerIDs }
func (c *allocateProducerIDsCommand) encode(e *encoder) {
	e.int32(c.brokerID)
	e.int64(c.count)
}

func decodeAllocateProducerIDs(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &allocateProducerIDsCommand{brokerID: d.int32(), count: d.int64()}, true
}

func (c *allocateProducerIDsCommand) apply(b *stateBuilder) (any, error) {
	if c.brokerID < 0 {
		return nil, fmt.Errorf("%w: negative broker id %d", ErrInvalidProducerIDs, c.brokerID)
	}
	if c.count < 1 || c.count > MaxProducerIDBlock {
		return nil, fmt.Errorf("%w: block size %d is outside 1..%d", ErrInvalidProducerIDs, c.count, MaxProducerIDBlock)
	}
	first := b.nextProducerID
	if first > math.MaxInt64-c.count {
		return nil, fmt.Errorf("%w: producer ids are exhausted", ErrInvalidProducerIDs)
	}
	b.nextProducerID = first + c.count
	return first, nil
}

// reserveProducerIDsCommand takes the producer ids below below out of
// allocation: the state's next producer id becomes at least below, so
// AllocateProducerIDs never hands one of them out afterwards. A recovery
// from the object store reserves the ids of the producers its data holds.
type reserveProducerIDsCommand struct {
	below int64
}

func (c *reserveProducerIDsCommand) commandType() commandType { return commandReserveProducerIDs }
func (c *reserveProducerIDsCommand) encode(e *encoder)        { e.int64(c.below) }

func decodeReserveProducerIDs(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &reserveProducerIDsCommand{below: d.int64()}, true
}

func (c *reserveProducerIDsCommand) apply(b *stateBuilder) (any, error) {
	if c.below < 0 {
		return nil, fmt.Errorf("%w: reserving below %d", ErrInvalidProducerIDs, c.below)
	}
	b.nextProducerID = max(b.nextProducerID, c.below)
	return nil, nil
}
