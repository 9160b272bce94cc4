package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchLatencies records the consumer's Fetch requests (franz-go's
// HookBrokerE2E): each one's round trip from the first byte written to
// the last byte of its response read, the part of it spent waiting for
// the response to start (the broker handling the request, the network's
// share aside) and when it ended. franz-go keeps one Fetch in flight per
// broker and sends the next once the application has taken the last
// one's records, so a replay's pace is one round trip plus the client's
// decoding per Fetch.
type fetchLatencies struct {
	mu      sync.Mutex
	samples []fetchSample
}

type fetchSample struct {
	ended           time.Time
	e2e, readWait   time.Duration
	bytes           int
	timeToReadWhole time.Duration
}

var _ kgo.HookBrokerE2E = (*fetchLatencies)(nil)

func (f *fetchLatencies) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key != 1 || e2e.Err() != nil { // Fetch
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.samples = append(f.samples, fetchSample{ended: time.Now(), e2e: e2e.DurationE2E(), readWait: e2e.ReadWait,
		bytes: e2e.BytesRead, timeToReadWhole: e2e.TimeToRead})
}

// fetchSummary is what the Fetches that ended in [from, to] show.
type fetchSummary struct {
	count                  int
	p50, p99, mean         time.Duration // round trip
	meanReadWait, meanRead time.Duration // its parts: until the response started, reading it
	meanCycle              time.Duration // (to - from) / count: round trip plus the client's time between Fetches
	meanBytes              float64
	// slowest are the longest round trips, longest first, each with when
	// it started (since from): a stall at the start is the first GETs,
	// later ones are waits the read-ahead did not hide.
	slowest []slowFetch
	// overP50 is the time all round trips spent beyond the median's: what
	// the tail costs the pass.
	overP50 time.Duration
	// firstEnded is when the first Fetch ended (since from: the client's
	// start-up and that Fetch), first its round trip.
	firstEnded, first time.Duration
}

type slowFetch struct{ at, e2e time.Duration }

func (f *fetchLatencies) summary(from, to time.Time) fetchSummary {
	f.mu.Lock()
	defer f.mu.Unlock()
	var e2e []time.Duration
	var s fetchSummary
	var all []slowFetch
	var sum, wait, read time.Duration
	bytes := 0
	for _, sample := range f.samples {
		if sample.ended.Before(from) || sample.ended.After(to) {
			continue
		}
		if len(e2e) == 0 {
			s.firstEnded, s.first = sample.ended.Sub(from), sample.e2e
		}
		e2e = append(e2e, sample.e2e)
		all = append(all, slowFetch{at: sample.ended.Sub(from) - sample.e2e, e2e: sample.e2e})
		sum += sample.e2e
		wait += sample.readWait
		read += sample.timeToReadWhole
		bytes += sample.bytes
	}
	s.count = len(e2e)
	if s.count == 0 {
		return s
	}
	slices.Sort(e2e)
	n := time.Duration(s.count)
	s.p50, s.p99 = e2e[percentileIndex(len(e2e), 0.50)], e2e[percentileIndex(len(e2e), 0.99)]
	s.mean, s.meanReadWait, s.meanRead = sum/n, wait/n, read/n
	s.meanCycle = to.Sub(from) / n
	s.meanBytes = float64(bytes) / float64(s.count)
	for _, d := range e2e {
		s.overP50 += max(0, d-s.p50)
	}
	slices.SortFunc(all, func(a, b slowFetch) int { return int(b.e2e - a.e2e) })
	s.slowest = all[:min(len(all), 5)]
	return s
}

// percentileIndex is the index of the q-quantile in n sorted samples
// (nearest rank).
func percentileIndex(n int, q float64) int {
	return min(n-1, max(0, int(math.Ceil(q*float64(n)))-1))
}

// replayWaits is what a replay's broker reported about its waits
// (increases of its histograms over the pass).
type replayWaits struct {
	fetches, fetchSeconds         float64 // strata_request_duration_seconds{api="Fetch"}
	remoteReads, remoteSeconds    float64 // strata_tiering_remote_read_seconds
	storeWaits, storeWaitSeconds  float64 // strata_tiering_store_wait_seconds
	readerGETWaits, diskReadsPath float64
	buffersAllocated              float64 // strata_tiering_chunk_buffers_allocated_total
	filesWritten, writeSeconds    float64 // the disk cache's writer
}

func replayWaitsOf(d metricSamples) replayWaits {
	return replayWaits{
		fetches: d[`strata_request_duration_seconds_count{api="Fetch"}`], fetchSeconds: d[`strata_request_duration_seconds_sum{api="Fetch"}`],
		remoteReads: d["strata_tiering_remote_read_seconds_count"], remoteSeconds: d["strata_tiering_remote_read_seconds_sum"],
		storeWaits: d["strata_tiering_store_wait_seconds_count"], storeWaitSeconds: d["strata_tiering_store_wait_seconds_sum"],
		readerGETWaits: d["strata_tiering_reader_get_waits_total"], diskReadsPath: d["strata_tiering_cache_disk_reads_total"],
		buffersAllocated: d["strata_tiering_chunk_buffers_allocated_total"],
		filesWritten:     d["strata_tiering_cache_files_written_total"], writeSeconds: d["strata_tiering_cache_write_seconds_total"],
	}
}

// printReplayWaits prints where a replay pass's time and CPU went: the
// consumer's Fetch round trips, the broker's handling of them, its remote
// reads and their waits for the store, and the CPU per MiB replayed of
// the broker, versitygw and the consumer (this process).
func printReplayWaits(pass string, f fetchSummary, w replayWaits, cpu cpuUse, mib float64, elapsed time.Duration) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	mean := func(sum, count float64) float64 {
		if count == 0 {
			return 0
		}
		return 1000 * sum / count
	}
	fmt.Printf("%s: %d Fetches (%.2f MiB each): round trip p50 %.2f ms, p99 %.2f ms, mean %.2f ms (response starts after %.2f, read in %.2f), one every %.2f ms;\n",
		pass, f.count, f.meanBytes/(1<<20), ms(f.p50), ms(f.p99), ms(f.mean), ms(f.meanReadWait), ms(f.meanRead), ms(f.meanCycle))
	var slowest []string
	for _, f := range f.slowest {
		slowest = append(slowest, fmt.Sprintf("%.1f ms at +%.2f s", ms(f.e2e), f.at.Seconds()))
	}
	fmt.Printf("%s: round trips past the median add %.0f ms (%.0f%% of the pass); slowest: %s\n", pass, ms(f.overP50),
		100*f.overP50.Seconds()/elapsed.Seconds(), strings.Join(slowest, ", "))
	fmt.Printf("%s: broker Fetch handling mean %.2f ms; %.0f remote reads, mean %.2f ms; %.0f waited for a chunk from the store (%.1f%%, mean wait %.2f ms), %.0f waited for the cache writer, %.0f read a cache file on their path\n",
		pass, mean(w.fetchSeconds, w.fetches), w.remoteReads, mean(w.remoteSeconds, w.remoteReads), w.storeWaits,
		100*w.storeWaits/max(w.remoteReads, 1), mean(w.storeWaitSeconds, w.storeWaits), w.readerGETWaits, w.diskReadsPath)
	fmt.Printf("%s: %.0f chunk buffers allocated; disk cache writer wrote %.0f files, busy %.0f%% of the pass (%.2f ms per file)\n",
		pass, w.buffersAllocated, w.filesWritten, 100*w.writeSeconds/elapsed.Seconds(), mean(w.writeSeconds, w.filesWritten))
	perMiB := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / mib }
	fmt.Printf("%s: CPU per MiB replayed: broker %.2f ms, versitygw %.2f ms, consumer %.2f ms (cores busy over the pass: %.2f, %.2f, %.2f)\n",
		pass, perMiB(cpu.broker), perMiB(cpu.s3), perMiB(cpu.client),
		cpu.broker.Seconds()/elapsed.Seconds(), cpu.s3.Seconds()/elapsed.Seconds(), cpu.client.Seconds()/elapsed.Seconds())
	fmt.Printf("%s: broker system calls per MiB replayed (/proc/PID/io): %.0f reads (sockets, files), %.0f writes; %.0f minor page faults per MiB (first touches of its memory)\n",
		pass, float64(cpu.brokerReads)/mib, float64(cpu.brokerWrites)/mib, float64(cpu.brokerFaults)/mib)
}
