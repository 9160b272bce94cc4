package recordbatch

import (
	"errors"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestTimestampWindow(t *testing.T) {
	for _, tc := range []struct {
		now, before, after int64
		earliest, latest   int64
	}{
		{now: 10_000, before: 1_000, after: 500, earliest: 9_000, latest: 10_500},
		// Kafka's default before is Long.MAX_VALUE: no lower bound.
		{now: 10_000, before: math.MaxInt64, after: 3_600_000, earliest: math.MinInt64, latest: 3_610_000},
		{now: 10_000, before: 0, after: math.MaxInt64, earliest: 10_000, latest: math.MaxInt64},
		{now: -5, before: math.MaxInt64, after: math.MaxInt64, earliest: math.MinInt64, latest: math.MaxInt64},
	} {
		earliest, latest := TimestampWindow(tc.now, tc.before, tc.after)
		if earliest != tc.earliest || latest != tc.latest {
			t.Errorf("TimestampWindow(%d, %d, %d) = %d, %d; want %d, %d", tc.now, tc.before, tc.after, earliest, latest, tc.earliest, tc.latest)
		}
	}
}

// TestValidateTimestamps: with CheckTimestamps every record's timestamp
// (not only the batch's first and max) must lie in the window, compressed
// or not; -1 (no timestamp) passes; a client batch saying LogAppendTime
// is refused. Errors map to INVALID_TIMESTAMP.
func TestValidateTimestamps(t *testing.T) {
	const now = 1_700_000_000_000
	earliest, latest := TimestampWindow(now, 60_000, 3_600_000)
	limits := Limits{CheckTimestamps: true, EarliestTimestamp: earliest, LatestTimestamp: latest}
	at := func(timestamps ...int64) []Record {
		records := make([]Record, len(timestamps))
		for i, ts := range timestamps {
			records[i] = Record{Timestamp: ts, Value: []byte("v")}
		}
		return records
	}
	for _, codec := range []Codec{None, Gzip, Zstd} {
		for _, tc := range []struct {
			name    string
			records []Record
			opts    BuildOptions
			ok      bool
		}{
			{name: "inside", records: at(now-60_000, now, now+3_600_000), ok: true},
			{name: "no timestamp", records: at(-1, -1), ok: true},
			{name: "a middle record too far ahead", records: at(now, now+3_600_001, now), ok: false},
			{name: "first record too old", records: at(now-60_001, now), ok: false},
			{name: "two hours ahead", records: at(now + 7_200_000), ok: false},
			{name: "producer says LogAppendTime", records: at(now), opts: BuildOptions{LogAppendTime: true}, ok: false},
		} {
			t.Run(codec.String()+"/"+tc.name, func(t *testing.T) {
				opts := tc.opts
				opts.Codec = codec
				batch := mustBuild(t, opts, tc.records)
				_, err := Validate(batch, limits)
				if tc.ok {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				if !errors.Is(err, ErrInvalidTimestamp) || ErrorCode(err) != kerr.InvalidTimestamp.Code {
					t.Fatalf("err %v (code %d), want INVALID_TIMESTAMP", err, ErrorCode(err))
				}
				// Without the check the same batch is fine.
				if _, err := Validate(batch, Limits{}); err != nil && !tc.opts.LogAppendTime {
					t.Fatalf("without CheckTimestamps: %v", err)
				}
			})
		}
	}
}
