package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestLastStableOffsetNotBelowLogStart: DeleteRecords (or retention) may
// move the log start past the first offset of a transaction still open;
// Kafka then answers the log start as the last stable offset
// (UnifiedLog.maybeIncrementFirstUnstableOffset clamps the first unstable
// offset to it), never an offset below the log: ListOffsets latest
// READ_COMMITTED is the offset a read_committed consumer with
// auto.offset.reset=latest seeks to, and one below the log start is
// OFFSET_OUT_OF_RANGE, reset to it again, for as long as the transaction
// stays open.
func TestLastStableOffsetNotBelowLogStart(t *testing.T) {
	_, _, created, p, broker := startLeadingT(t)

	appendTransactional(t, p, 100, 0, "open-1", "open-2") // 0-1, open
	plain, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte("plain")}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // 2, 3, 4
		if _, _, err := p.Append(plain, 9, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	del := kmsg.NewPtrDeleteRecordsRequest()
	del.TimeoutMillis = 5000
	dt := kmsg.NewDeleteRecordsRequestTopic()
	dt.Topic = "t"
	dp := kmsg.NewDeleteRecordsRequestTopicPartition()
	dp.Partition, dp.Offset = 0, 3
	dt.Partitions = append(dt.Partitions, dp)
	del.Topics = append(del.Topics, dt)
	deleted := request[*kmsg.DeleteRecordsResponse](t, broker, del).Topics[0].Partitions[0]
	if deleted.ErrorCode != 0 || deleted.LowWatermark != 3 {
		t.Fatalf("DeleteRecords: %v, low watermark %d", kerr.ErrorForCode(deleted.ErrorCode), deleted.LowWatermark)
	}

	if committed := listOffset(t, broker, 1); committed != 3 {
		t.Fatalf("ListOffsets latest READ_COMMITTED with the transaction from 0 open and the log start at 3: %d, want 3", committed)
	}
	got := fetchCommitted(t, broker, created.ID, 3, 0)
	if got.ErrorCode != 0 || got.LogStartOffset != 3 || got.LastStableOffset != 3 || len(got.RecordBatches) != 0 {
		t.Fatalf("read_committed Fetch at the log start: %v, log start %d, LSO %d, %d bytes", kerr.ErrorForCode(got.ErrorCode), got.LogStartOffset, got.LastStableOffset, len(got.RecordBatches))
	}

	// The transaction's abort makes the rest readable.
	if code := writeMarker(t, broker, "t", 100, false); code != 0 { // 5
		t.Fatalf("abort marker: %v", kerr.ErrorForCode(code))
	}
	if committed := listOffset(t, broker, 1); committed != 6 {
		t.Fatalf("ListOffsets latest READ_COMMITTED after the abort: %d, want 6", committed)
	}
}
