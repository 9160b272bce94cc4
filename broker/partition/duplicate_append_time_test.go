package partition

import (
	"testing"
	"time"
)

// TestDuplicateAnswersTheOriginalAppendTime: under LogAppendTime a retried
// batch is answered with the offsets and the log-append time of the batch
// already stored (Kafka sets the response's append time from the cached
// batch), not the retry's arrival time, which no stored record carries.
func TestDuplicateAnswersTheOriginalAppendTime(t *testing.T) {
	p := replica(t, t.TempDir(), 1, map[string]string{"message.timestamp.type": "LogAppendTime"})
	p.ApplyAssignment(assignment(1, 0, []int32{1}, []int32{1}), t0)
	base, appended, err := p.Append(batch(t, idempotent(42, 0, 0), "a", 2), 9, t0)
	if err != nil || appended != t0.UnixMilli() {
		t.Fatalf("append: time %d, %v", appended, err)
	}
	retryBase, retryTime, err := p.Append(batch(t, idempotent(42, 0, 0), "a", 2), 9, t0.Add(time.Minute))
	if err != nil || retryBase != base || p.LogEndOffset() != 2 {
		t.Fatalf("retry: base %d (%v), log end %d; want a duplicate of %d", retryBase, err, p.LogEndOffset(), base)
	}
	if retryTime != appended {
		t.Fatalf("retry answered log-append time %d, the stored batch has %d", retryTime, appended)
	}
}
