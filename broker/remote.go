package broker

import (
	"context"

	"github.com/strata-log/strata/metadata"
)

// RemoteReader reads the tiered segments of partitions from the object
// store: what Fetch below the local log start, ListOffsets by timestamp
// and a follower starting after the remote data need. A segment is named
// by its partition and its Raft manifest entry. tiering.Tier implements it
// and cmd/internal/node plugs it in; the broker never imports tiering.
// Methods are safe for concurrent use; none returns data with an error.
type RemoteReader interface {
	// Read returns whole record batches of segment, starting with the one
	// holding offset, byte for byte as the local segment held them: the
	// first batch whole even past maxBytes (KIP-74), later ones while the
	// total stays within maxBytes.
	Read(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int) ([]byte, error)
	// TimestampStart returns the offset in segment where a search for the
	// first batch with a max timestamp at or above timestamp starts.
	TimestampStart(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, timestamp int64) (int64, error)
	// ReadProducerSnapshot returns the producer-state snapshot uploaded
	// with segment: the state at its end (empty when there was none).
	ReadProducerSnapshot(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) ([]byte, error)
}

// remoteReadConcurrency bounds the partitions one Fetch reads from the
// object store at once.
const remoteReadConcurrency = 8
