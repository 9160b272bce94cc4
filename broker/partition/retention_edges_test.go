package partition

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestRetentionLimitsAtTheEdges: retention.ms and retention.bytes mean
// what they mean in Kafka at 0 and at Long.MAX_VALUE: 0 deletes every
// record (the active segment rolled first), Long.MAX_VALUE keeps everything (the local.retention.*
// of a tiered topic take their place in the same segment config).
func TestRetentionLimitsAtTheEdges(t *testing.T) {
	for _, c := range []struct {
		configs map[string]string
		// timestamp of the records: years old (t0) or fresh
		timestamp time.Time
		keep      bool
	}{
		{map[string]string{"retention.ms": fmt.Sprint(int64(math.MaxInt64))}, t0, true},
		{map[string]string{"retention.ms": "9223372036854"}, t0, true}, // 292 years
		{map[string]string{"retention.ms": "0"}, time.Now().Add(-time.Minute), false},
		{map[string]string{"retention.ms": "-1", "retention.bytes": "0"}, t0, false},
	} {
		t.Run(fmt.Sprint(c.configs), func(t *testing.T) {
			c.configs["segment.bytes"] = "1024"
			p := replica(t, t.TempDir(), 1, c.configs)
			p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
			for i := range 8 {
				b, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{
					Timestamp: c.timestamp.UnixMilli(), Value: bytes.Repeat([]byte{'a' + byte(i)}, 400)}})
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := p.Append(b, 9, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if sealed := len(p.Segments()) - 1; sealed < 2 {
				t.Fatalf("%d sealed segments", sealed)
			}
			p.EnforceRetention()
			switch start := p.LogStartOffset(); {
			case c.keep && start != 0:
				t.Fatalf("%v: retention deleted the records below %d, want everything kept", c.configs, start)
			case !c.keep && start != 8:
				t.Fatalf("%v: log start %d, want 8 (every record deleted)", c.configs, start)
			case !c.keep && len(p.Segments()) > 1:
				t.Fatalf("%v: %d sealed segments left (log start %d), want none", c.configs, len(p.Segments())-1, start)
			}
		})
	}
}
