package partition

import (
	"testing"
	"time"

	"github.com/strata-log/strata/broker/topicconfig"
)

// TestCompactedSegmentRollsWithinMaxCompactionLag: on a compacted topic the
// active segment rolls at max.compaction.lag.ms when that is below
// segment.ms (Kafka's LogConfig.maxSegmentMs, KIP-354): the cleaner never
// touches the active segment, so records of a slow topic would otherwise
// stay uncompacted for segment.ms (7 days by default).
func TestCompactedSegmentRollsWithinMaxCompactionLag(t *testing.T) {
	for _, c := range []struct {
		configs map[string]string
		want    time.Duration
	}{
		{map[string]string{"cleanup.policy": "compact", "max.compaction.lag.ms": "60000"}, time.Minute},
		{map[string]string{"cleanup.policy": "compact,delete", "max.compaction.lag.ms": "60000", "segment.ms": "1000"}, time.Second},
		{map[string]string{"cleanup.policy": "delete", "max.compaction.lag.ms": "60000"}, 7 * 24 * time.Hour},
		{map[string]string{"cleanup.policy": "compact"}, 7 * 24 * time.Hour},
	} {
		if got := segmentConfig(topicconfig.Typed(nil, c.configs), nil).SegmentAge; got != c.want {
			t.Errorf("%v: segment age %v, want %v", c.configs, got, c.want)
		}
	}
}
