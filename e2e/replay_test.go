//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestReplayDefaultFetchSizes: a tiered topic replayed from the bucket by
// a franz-go consumer with its default fetch sizes (1 MiB per partition),
// after a restart (empty chunk cache). The counts do not depend on timing:
// the read-ahead fires (the consumer is known sequential by its offsets,
// not by its fetch size), the replay makes at most 0.25 GETs per MiB
// (1 MiB chunks fetched in runs of at least 4) and fetches each byte about
// once, and every record comes back at its offset. Before that, with
// retention passes an hour apart, local disk is back within local
// retention plus two segments once the uploads are done: uploaded
// segments past local retention leave at once.
func TestReplayDefaultFetchSizes(t *testing.T) {
	const (
		segmentBytes = 8 << 20
		localBytes   = 8 << 20
		recordSize   = 4 << 10
		records      = 12 * 1024 // 48 MiB
	)
	b := startBroker(t, "--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "3600000")
	g := produceTiered(t, b, segmentBytes, localBytes, recordSize, records)
	topic := g.topic

	eventually(t, 30*time.Second, "local disk within local retention plus two segments, without a retention pass", func() error {
		if local := localLogBytes(t, b.dataDir, topic, 0); local > localBytes+2*segmentBytes {
			return fmt.Errorf("local log holds %d bytes (lag %v)", local, metricOrZero(t, b, fmt.Sprintf(`strata_tiering_upload_lag_bytes{topic=%q}`, topic)))
		}
		if lag := metricOrZero(t, b, fmt.Sprintf(`strata_tiering_upload_lag_bytes{topic=%q}`, topic)); lag != 0 {
			return fmt.Errorf("upload lag %v bytes", lag)
		}
		return nil
	})

	b.restart(t) // an empty chunk cache
	gets := metricValue(t, b, "strata_tiering_bucket_gets_total")
	getBytes := metricValue(t, b, "strata_tiering_bucket_get_bytes_total")
	prefetches := metricValue(t, b, "strata_tiering_prefetches_total")
	g.replayWith(t, []string{b.addr}, 0, records)
	replayed := metricValue(t, b, fmt.Sprintf(`strata_tiering_remote_fetch_bytes_total{topic=%q}`, topic))
	gets = metricValue(t, b, "strata_tiering_bucket_gets_total") - gets
	getBytes = metricValue(t, b, "strata_tiering_bucket_get_bytes_total") - getBytes
	prefetches = metricValue(t, b, "strata_tiering_prefetches_total") - prefetches
	mib := replayed / (1 << 20)
	t.Logf("replayed %.1f MiB from the bucket: %v GETs (%.3f per MiB), %v bytes fetched (%.3f per byte replayed), %v chunks read ahead",
		mib, gets, gets/mib, getBytes, getBytes/replayed, prefetches)
	if mib < 24 {
		t.Fatalf("only %.1f MiB replayed from the bucket, want most of the 48 MiB produced", mib)
	}
	if prefetches == 0 {
		t.Errorf("read-ahead never fired for a consumer with default fetch sizes")
	}
	if gets/mib > 0.25 {
		t.Errorf("%.3f GETs per MiB replayed, want at most 0.25", gets/mib)
	}
	if getBytes > 1.05*replayed+(1<<20) {
		t.Errorf("%v bytes fetched from the bucket for %v replayed, want at most 1.05x", getBytes, replayed)
	}
}
