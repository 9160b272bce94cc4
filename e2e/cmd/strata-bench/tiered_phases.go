package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The many-partition phase compares a cold replay of --tiered-partitions-wide
// partitions with one of --partitions (3), both with these segments and
// this much data per partition: four segments each, of which all but the
// local window (about one segment and the active one) are remote. Small
// segments keep the run short; they also put a floor of one GET per
// segment (0.5 per MiB) under both, so the two are compared with each
// other, not with the main topic's (--tiered-segment-mib).
const (
	wideSegmentBytes      = 2 << 20
	wideBytesPerPartition = 8 << 20
)

// isolationWarmUp is left out of the isolation phase's latencies: the
// producer's first requests connect and load metadata.
const isolationWarmUp = 500 * time.Millisecond

// isolation measures a producer's latency without and during a cold
// replay: with the broker's remote fetch quota at each of
// opts.isolationQuotasMiB (the replay throttled, as issue 18 allows; the
// goal is checked on the first, the others are printed next to it), then
// without a quota. Each part restarts
// the broker (an empty chunk cache; the last restart also drops the
// quota flag, so the phases after this one see the broker as configured),
// starts a producer process at a fixed rate (acks=all, linger 0) to an
// untiered topic of its own and runs a cold replay of the main topic,
// stopped after opts.isolationFor (or at its end). The producer's p99
// during the replay is compared with its p99 over as long without one:
// the half of that length just before the replay and the half just after
// it (isolationPart), so both p99s come from as many samples and a change
// in the machine's other load shows on both sides of the ratio. After
// the throttled part, its peer: the same windows with a plain relay of
// the bytes at the throttled replay's rate instead of the replay
// (tiered_relay.go), what moving them costs the producer on this host
// before any broker work; printed next to the goal, not counted.
func (b *tieredBench) isolation(ctx context.Context, opts tieredOptions, sum *summary) error {
	topic := newTieredTopic(fmt.Sprintf("bench-latency-%d", time.Now().UnixNano()), 1, 0, int64(opts.segmentMiB)<<20, 0)
	if err := topic.create(b.brokers); err != nil {
		return err
	}
	type part struct {
		name  string
		quota int  // MiB/s, 0: none
		peer  bool // the relay at the throttled replay's rate, not a replay
	}
	var parts []part
	for i, quota := range opts.isolationQuotasMiB {
		parts = append(parts, part{name: fmt.Sprintf("fetch quota %d MiB/s", quota), quota: quota})
		if i == 0 {
			parts = append(parts, part{name: "peer: plain relay", peer: true})
		}
	}
	parts = append(parts, part{name: "no quota"})
	fmt.Printf("\nisolation: a producer process at %d records/s of %d B (acks=all, linger 0, one partition, its own topic) on the same broker;\n", opts.isolationRate, b.recordSize)
	fmt.Printf("per part: a restart (empty chunk cache), a cold replay of the tiered topic (checked record by record) stopped after %s or at its end;\n", opts.isolationFor)
	fmt.Printf("p99 during the whole replay against p99 without one over as long (the half just before it and the half just after, together);\n")
	fmt.Printf("spread: p99 of each second; broker: Produce requests it took ≥ %.1f ms to handle\n", isolationSlowProduce*1000)
	fmt.Printf("%-22s %-8s %10s %8s %7s %10s %8s %8s %8s %15s %9s\n", "part", "window", "replay", "seconds", "samples", "records/s", "p50 ms", "p99 ms", "max ms", "p99/s min–max", "slow Produce")
	var throttledMBs, throttledRatio float64 // of the goal's throttled part, for its peer
	for i, p := range parts {
		saved := b.flags
		if p.quota > 0 {
			b.flags = append(slices.Clone(saved), "--remote-log-manager-fetch-max-bytes-per-second", fmt.Sprint(int64(p.quota)<<20))
		}
		load := func(ctx context.Context) (isolationLoad, error) {
			return b.coldReplayFor(ctx, b.main, opts.isolationFor)
		}
		if p.peer {
			load = func(ctx context.Context) (isolationLoad, error) {
				moved, err := relayFor(ctx, filepath.Dir(b.dataDir), throttledMBs*1e6, opts.isolationFor)
				return isolationLoad{bytes: float64(moved)}, err
			}
		}
		w, err := b.isolationPart(ctx, opts, topic.name, load)
		b.flags = saved
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		base := w.without.latencies()
		during := w.during.latencies()
		note := fmt.Sprintf("   p99 %.2f× without; goal ≤ %.1f×", during.p99/base.p99, goalIsolationP99)
		if p.peer {
			note = fmt.Sprintf("   p99 %.2f× without (the throttled replay: %.2f×; not a goal)", during.p99/base.p99, throttledRatio)
		}
		for _, row := range []struct {
			window string
			w      isolationWindow
			note   string
		}{
			{"without", w.without, " (before and after)"},
			{"during", w.during, note},
		} {
			replay := "-"
			if row.window == "during" {
				replay = fmt.Sprintf("%.1f MB/s", w.replayMBs)
			}
			r := row.w.latencies()
			fmt.Printf("%-22s %-8s %10s %8.2f %7d %10.0f %8.2f %8.2f %8.2f %7.2f–%-7.2f %9.0f%s\n", p.name, row.window, replay, row.w.length.Seconds(), len(row.w.took),
				float64(len(row.w.took))/row.w.length.Seconds(), r.p50, r.p99, r.max, r.p99Min, r.p99Max, row.w.slowProduce(), row.note)
		}
		if p.peer {
			fmt.Printf("%-22s the same bytes per second from a file through a process that writes them to files, to one that drops them\n", "")
			fmt.Printf("%-22s (two loopback connections, %d KiB at a time; no broker work); machine without %.2f cores busy, during %.2f\n", "",
				relayUnit>>10, w.without.machine, w.during.machine)
			sum.derived("producer p99 during a plain relay (peer) / without", fmt.Sprintf("%.2f×", during.p99/base.p99),
				fmt.Sprintf("replay %.2f×", throttledRatio))
			continue
		}
		if i == 0 && p.quota > 0 {
			throttledMBs, throttledRatio = w.replayMBs, during.p99/base.p99
		}
		fmt.Printf("%-22s broker without: %s; during: %s\n", "", w.without.brokerLoad(), w.during.brokerLoad())
		fmt.Printf("%-22s broker's goroutines waiting runnable for a P ≥ 0.9 / 10 ms: without %s, during %s\n", "",
			w.without.schedWaits(), w.during.schedWaits())
		fmt.Printf("%-22s broker's Produce requests over 0.4 / 1.6 ms: without %.0f / %.0f of %.0f, during %.0f / %.0f of %.0f\n", "",
			w.without.produceOver(0.0004), w.without.produceOver(0.0016), w.without.produceOver(0),
			w.during.produceOver(0.0004), w.during.produceOver(0.0016), w.during.produceOver(0))
		fmt.Printf("%-22s replay: %.1f MiB of remote records returned, %.1f MiB read from the store (%.1f MiB/s) in %.2f s, %.2f GETs/MiB, fetch quota throttled %.2f s\n", "",
			w.served/(1<<20), w.storeBytes/(1<<20), w.storeBytes/(1<<20)/w.during.length.Seconds(), w.during.length.Seconds(), w.getsPerMiB, w.throttled)
		switch {
		case i == 0 && p.quota > 0:
			sum.atMost(fmt.Sprintf("producer p99 during a replay at %d MiB/s / without", p.quota), during.p99/base.p99, goalIsolationP99, "×")
		case p.quota > 0:
			sum.derived(fmt.Sprintf("producer p99 during a replay at %d MiB/s / without", p.quota), fmt.Sprintf("%.2f×", during.p99/base.p99),
				fmt.Sprintf("replay %.1f MB/s", w.replayMBs))
		case len(parts) == 1:
			sum.atMost("producer p99 during a cold replay / without", during.p99/base.p99, goalIsolationP99, "×")
		}
	}
	return nil
}

// isolationSlowProduce is the bucket bound of strata_request_duration_seconds
// above which the isolation phase counts the broker's slow Produce requests.
const isolationSlowProduce = 0.0064

// isolationWindow is the fixed-rate producer's latencies of the records
// sent within one window of an isolation part (in the order sent), the
// window's length and the broker's metric increases over it.
type isolationWindow struct {
	took   []time.Duration
	sent   []time.Time   // of each took
	length time.Duration // from the first sample's window edge to the last's
	// metrics are the broker's increases over metricsLength (the window
	// without a replay: the whole time before the replay and after it),
	// and machine the busy cores of the whole machine (/proc/stat) over
	// it, -1 when unknown.
	metricsLength time.Duration
	metrics       metricSamples
	machine       float64
}

// isolationLatencies are a window's latency percentiles, in milliseconds:
// over the whole window, and the least and greatest p99 of its seconds
// (each second's samples by the time they were sent; a part shorter than
// half a second, at the window's end or before the replay, is left out of
// those).
type isolationLatencies struct {
	p50, p99, max  float64
	p99Min, p99Max float64
}

func (w isolationWindow) latencies() isolationLatencies {
	all := percentiles(slices.Clone(w.took))
	l := isolationLatencies{p50: all.p50, p99: all.p99, max: ms(slices.Max(w.took)), p99Min: math.Inf(1)}
	for from := 0; from < len(w.took); {
		to := from
		for to < len(w.took) && w.sent[to].Sub(w.sent[from]) < time.Second {
			to++
		}
		if w.sent[to-1].Sub(w.sent[from]) >= time.Second/2 {
			p99 := percentiles(slices.Clone(w.took[from:to])).p99
			l.p99Min, l.p99Max = min(l.p99Min, p99), max(l.p99Max, p99)
		}
		from = to
	}
	if math.IsInf(l.p99Min, 1) {
		l.p99Min, l.p99Max = all.p99, all.p99
	}
	return l
}

// add appends the samples of [from, to) (sorted by sent time).
func (w *isolationWindow) add(samples []latencySample, from, to time.Time) {
	for _, s := range samples {
		if !s.sent.Before(from) && s.sent.Before(to) {
			w.sent, w.took = append(w.sent, s.sent), append(w.took, s.took)
		}
	}
}

// slowProduce is the Produce requests the broker took at least
// isolationSlowProduce to handle within the window.
func (w isolationWindow) slowProduce() float64 { return w.produceOver(isolationSlowProduce) }

// produceOver is the Produce requests the broker took longer than le
// seconds (a bucket bound of strata_request_duration_seconds; 0: all) to
// handle within the window.
func (w isolationWindow) produceOver(le float64) float64 {
	count := w.metrics[fmt.Sprintf("strata_request_duration_seconds_count{api=%q}", "Produce")]
	if le == 0 {
		return count
	}
	return count - w.metrics[fmt.Sprintf("strata_request_duration_seconds_bucket{api=%q,le=%q}", "Produce", strconv.FormatFloat(le, 'g', -1, 64))]
}

// machineTicks reads the whole machine's busy and total CPU time from the
// first line of /proc/stat (clock ticks; busy is all but idle and
// iowait); 0, 0 where there is none.
func machineTicks() (busy, total float64) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	for i, field := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(field, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// busyCores is the machine's busy cores between two machineTicks.
func busyCores(busy0, total0, busy1, total1 float64) float64 {
	if total1 <= total0 {
		return -1
	}
	return (busy1 - busy0) / (total1 - total0) * float64(runtime.NumCPU())
}

// brokerLoad describes what the broker did during a window: its CPU
// (process_cpu_seconds_total) in cores, its garbage collections per
// second and the MB/s it allocated (the Go collector's series).
func (w isolationWindow) brokerLoad() string {
	seconds := w.metricsLength.Seconds()
	return fmt.Sprintf("%5.2f cores %5.1f GC/s %7.1f MB/s allocated (machine %4.2f cores busy)", w.metrics["process_cpu_seconds_total"]/seconds,
		w.metrics["go_gc_duration_seconds_count"]/seconds, w.metrics["go_memstats_alloc_bytes_total"]/seconds/1e6, w.machine)
}

// schedWaits describes the broker's scheduling latencies over a window
// (go_sched_latencies_seconds: a goroutine made runnable waiting for a P,
// which no handler's timer sees): the waits of at least 0.9 and 10 ms
// (the runtime histogram's bucket bounds nearest them) per second, and
// the mean wait.
func (w isolationWindow) schedWaits() string {
	const name = "go_sched_latencies_seconds"
	count := w.metrics[name+"_count"]
	if count == 0 {
		return "unknown"
	}
	over := func(at float64) float64 {
		le, below := math.Inf(1), count
		for series, v := range w.metrics {
			bound, ok := strings.CutPrefix(series, name+`_bucket{le="`)
			if !ok {
				continue
			}
			b, err := strconv.ParseFloat(strings.TrimSuffix(bound, `"}`), 64)
			if err == nil && b >= at && b < le {
				le, below = b, v
			}
		}
		return count - below
	}
	seconds := w.metricsLength.Seconds()
	return fmt.Sprintf("%.1f / %.1f per s of %.0f per s (mean %.1f µs)", over(0.0009)/seconds, over(0.01)/seconds, count/seconds,
		w.metrics[name+"_sum"]/count*1e6)
}

// isolationLoad is what an isolation part's load did: the bytes it
// moved (a replay: the remote records returned to the consumer), and a
// replay's bytes read from the store (GET bodies: what the fetch quota
// paces, with chunk files loaded from the disk cache, none after a
// restart), GETs and the seconds the fetch quota throttled it.
type isolationLoad struct {
	bytes, storeBytes, gets, throttled float64
}

// isolationResult is one part of the isolation phase: the replay's window,
// the window without a replay as long, and the replay's rate (remote
// bytes returned to the consumer over the replay's time).
type isolationResult struct {
	without, during       isolationWindow
	replayMBs, served     float64
	storeBytes            float64
	getsPerMiB, throttled float64
}

// isolationPart restarts the broker (with b.flags), starts the fixed-rate
// producer and measures it for opts.isolationFor/2 without a replay,
// during load (a cold replay of the main topic that stops after
// opts.isolationFor or at its end; the peer: the relay for as long), and
// for opts.isolationFor/2 after it. The window without is the replay's length L too: the last L/2
// before the replay and the first L/2 after it (a replay that ended early
// leaves the rest of the window before out), so that both p99s are over
// as many samples: a p99 over fewer has fewer stalls to average over and
// moves more with one of them.
func (b *tieredBench) isolationPart(ctx context.Context, opts tieredOptions, topic string, load func(context.Context) (isolationLoad, error)) (isolationResult, error) {
	if err := b.restart(); err != nil {
		return isolationResult{}, err
	}
	// The producer runs in a process of its own, as a producing
	// application would: in this one it would share the Go runtime (and
	// the garbage collector) with the replaying consumer's decoding.
	child, err := startFixedRateChild(b.brokers, topic, opts.isolationRate, b.recordSize)
	if err != nil {
		return isolationResult{}, err
	}
	// The broker's metrics and the machine's CPU at each window's edges
	// (errors show as missing series; the replay's own scrapes fail it),
	// so that what the replay's other processes (the consumer, the S3
	// server) take shows next to the broker's.
	type edge struct {
		at          time.Time
		metrics     metricSamples
		busy, total float64
	}
	scrape := func() edge {
		e := edge{at: time.Now()}
		e.busy, e.total = machineTicks()
		e.metrics, _ = scrapeMetrics(b.admin)
		return e
	}
	half := opts.isolationFor / 2
	time.Sleep(isolationWarmUp)
	before := scrape()
	time.Sleep(half)
	replayStart := scrape()
	moved, replayErr := load(ctx)
	replayEnd := scrape()
	length := replayEnd.at.Sub(replayStart.at)
	time.Sleep(length / 2)
	after := scrape()
	samples, childErr := child.stop()
	if replayErr != nil {
		return isolationResult{}, fmt.Errorf("cold replay: %w", replayErr)
	}
	if childErr != nil {
		return isolationResult{}, fmt.Errorf("fixed-rate producer: %w", childErr)
	}
	// Without: the metrics and the machine over both windows, the one
	// before the replay from its start.
	withoutMetrics := replayStart.metrics.since(before.metrics)
	for series, v := range after.metrics.since(replayEnd.metrics) {
		withoutMetrics[series] += v
	}
	sampled := min(length/2, half) + after.at.Sub(replayEnd.at) // the samples' span without a replay
	w := isolationResult{
		without: isolationWindow{length: sampled, metricsLength: half + after.at.Sub(replayEnd.at), metrics: withoutMetrics,
			machine: busyCores(0, 0, replayStart.busy-before.busy+after.busy-replayEnd.busy, replayStart.total-before.total+after.total-replayEnd.total)},
		during: isolationWindow{length: length, metricsLength: length, metrics: replayEnd.metrics.since(replayStart.metrics),
			machine: busyCores(replayStart.busy, replayStart.total, replayEnd.busy, replayEnd.total)},
		served: moved.bytes, storeBytes: moved.storeBytes, replayMBs: moved.bytes / length.Seconds() / 1e6,
		getsPerMiB: moved.gets / (moved.bytes / (1 << 20)), throttled: moved.throttled,
	}
	slices.SortFunc(samples, func(a, b latencySample) int { return a.sent.Compare(b.sent) })
	w.without.add(samples, replayStart.at.Add(-min(length/2, half)), replayStart.at)
	w.during.add(samples, replayStart.at, replayEnd.at)
	w.without.add(samples, replayEnd.at, after.at)
	if len(w.without.took) == 0 || len(w.during.took) == 0 {
		return isolationResult{}, fmt.Errorf("no latency samples: %d without a replay, %d during it", len(w.without.took), len(w.during.took))
	}
	return w, nil
}

// coldReplayFor replays t from offset 0 with franz-go's default fetch
// settings, checking every record, until every record has come back or
// limit has passed (0: no limit; stopped early, each partition's records
// must still have come contiguously from 0 with the acknowledged values).
// It returns the bytes of remote records the broker returned meanwhile,
// the bytes of its GETs' bodies, its GETs and the seconds its fetch quota
// throttled.
func (b *tieredBench) coldReplayFor(ctx context.Context, t *tieredTopic, limit time.Duration) (isolationLoad, error) {
	before, err := scrapeMetrics(b.admin)
	if err != nil {
		return isolationLoad{}, err
	}
	check := t.acked.replay(t.localStart)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers), kgo.ConsumeTopics(t.name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return isolationLoad{}, err
	}
	defer cl.Close()
	if limit <= 0 {
		limit = 10 * time.Minute
	}
	pollCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for n := 0; n < t.records; {
		fs := cl.PollFetches(pollCtx)
		if pollCtx.Err() != nil {
			if ctx.Err() != nil || limit == 10*time.Minute {
				return isolationLoad{}, fmt.Errorf("replayed %d of %d records", n, t.records)
			}
			break // stopped after limit
		}
		for _, e := range fs.Errors() {
			if !kerr.IsRetriable(e.Err) {
				return isolationLoad{}, e.Err
			}
		}
		var checkErr error
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if checkErr == nil {
				checkErr = check.record(r)
			}
		})
		if checkErr != nil {
			return isolationLoad{}, checkErr
		}
		if n == t.records {
			if err := check.complete(); err != nil {
				return isolationLoad{}, err
			}
		}
	}
	after, err := scrapeMetrics(b.admin)
	if err != nil {
		return isolationLoad{}, err
	}
	d := after.since(before)
	return isolationLoad{bytes: d[fmt.Sprintf("strata_tiering_remote_fetch_bytes_total{topic=%q}", t.name)],
		storeBytes: d["strata_tiering_bucket_get_bytes_total"], gets: d["strata_tiering_bucket_gets_total"],
		throttled: d["strata_tiering_fetch_throttled_seconds_total"]}, nil
}

// fixedRateChild is the isolation phase's producer process: this binary
// with --fixed-rate-producer. It produces until its stdin closes, then
// writes one line per acknowledged record: the send time and the time to
// the acknowledgement, in Unix nanoseconds and nanoseconds.
type fixedRateChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	stderr bytes.Buffer
}

func startFixedRateChild(brokers, topic string, rate, recordSize int) (*fixedRateChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &fixedRateChild{cmd: exec.Command(self, "--fixed-rate-producer", fmt.Sprintf("%s,%s,%d,%d", brokers, topic, rate, recordSize))}
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	return c, nil
}

// stop ends the production and returns the samples.
func (c *fixedRateChild) stop() ([]latencySample, error) {
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(c.stderr.String()))
	}
	var samples []latencySample
	for line := range strings.SplitSeq(strings.TrimSpace(c.stdout.String()), "\n") {
		var sent, took int64
		if _, err := fmt.Sscan(line, &sent, &took); err != nil {
			return nil, fmt.Errorf("fixed-rate producer output %q: %w", line, err)
		}
		samples = append(samples, latencySample{time.Unix(0, sent), time.Duration(took)})
	}
	return samples, nil
}

// runFixedRateChild is the --fixed-rate-producer process.
func runFixedRateChild(spec string) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 4 {
		return fmt.Errorf("want brokers,topic,rate,size, got %q", spec)
	}
	rate, err := strconv.Atoi(parts[2])
	if err != nil {
		return err
	}
	size, err := strconv.Atoi(parts[3])
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin) // until the parent closes it
		close(stop)
	}()
	samples, err := fixedRate(context.Background(), parts[0], parts[1], rate, size, stop)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	for _, s := range samples {
		fmt.Fprintf(out, "%d %d\n", s.sent.UnixNano(), int64(s.took))
	}
	return out.Flush()
}

type latencySample struct {
	sent time.Time
	took time.Duration // until acknowledged
}

// fixedRate produces rate records/s of recordSize bytes to topic until
// stop is closed: record i is handed to the client at start + i/rate (or
// at once when the loop is late), with linger 0, so records that come
// while a Produce request is in flight go in the next one (franz-go keeps
// one in flight per broker with idempotence). Each sample is one record's
// time from being handed to the client until acknowledged.
func fixedRate(ctx context.Context, brokers, topic string, rate, recordSize int, stop <-chan struct{}) ([]latencySample, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	value := randomBytes(recordSize)
	var (
		mu       sync.Mutex
		samples  []latencySample
		firstErr error
	)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
produce:
	for i := 0; ; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case <-stop:
			break produce
		default:
		}
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			took := time.Since(sent)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = cmp.Or(firstErr, err)
				return
			}
			samples = append(samples, latencySample{sent, took})
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return samples, firstErr
}

func percentiles(d []time.Duration) result {
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
	return result{p50: ms(d[len(d)/2]), p99: ms(d[len(d)*99/100])}
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// restartDuringReplay replays the main topic from offset 0 and, once a
// third of its remote range has arrived, kills the broker (SIGKILL) and
// starts it again on the same data and ports; it measures from readiness
// (/readyz answering 200, polled every 10 ms) until the consumer receives
// its first record, which must come from the remote range, and counts the
// Fetch requests the restarted broker handled meanwhile. The replay then
// runs to its end and is checked record by record.
func (b *tieredBench) restartDuringReplay(ctx context.Context, sum *summary) error {
	t := b.main
	check := t.acked.replay(t.localStart)
	var (
		mu          sync.Mutex // guards the fields below
		delivered   int64
		readyAt     time.Time
		firstAt     time.Time
		firstRemote bool
		firstRecord string
	)
	killNow, first := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	trace := &clientTrace{}
	go func() {
		_, err := consumeWith(b.brokers, t.name, t.records, func(r *kgo.Record) error {
			if err := check.record(r); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if delivered++; delivered == t.remoteRecords/3 {
				close(killNow)
			}
			if !readyAt.IsZero() && firstAt.IsZero() {
				firstAt = time.Now()
				firstRemote = r.Offset < t.localStart[r.Partition]
				firstRecord = fmt.Sprintf("partition %d offset %d (local log start %d)", r.Partition, r.Offset, t.localStart[r.Partition])
				close(first)
			}
			return nil
		}, kgo.WithHooks(trace))
		if err == nil {
			err = check.complete()
		}
		done <- err
	}()
	select {
	case <-killNow:
	case err := <-done:
		return fmt.Errorf("the replay ended before the restart: %v", err)
	}
	if err := b.process.Kill(); err != nil {
		return err
	}
	b.stop() // reaps it
	killed := time.Now()
	trace.since(killed)
	if err := b.start(); err != nil {
		return err
	}
	ready := time.Now()
	mu.Lock()
	readyAt = ready
	mu.Unlock()
	before, err := scrapeMetrics(b.admin)
	if err != nil {
		return err
	}
	select {
	case <-first:
	case err := <-done:
		return fmt.Errorf("the replay ended without a record after the restart: %v", err)
	}
	after, err := scrapeMetrics(b.admin)
	if err != nil {
		return err
	}
	if err := <-done; err != nil {
		return fmt.Errorf("replay across the restart: %w", err)
	}
	fetchSeries := fmt.Sprintf("strata_request_duration_seconds_count{api=%q}", "Fetch")
	fetches := after[fetchSeries] - before[fetchSeries]
	mu.Lock()
	waited := firstAt.Sub(readyAt)
	mu.Unlock()
	perSecond := fetches / max(waited.Seconds(), 1)
	fmt.Printf("\nrestart: kill -9 of the broker once a third of the remote range was replayed (cold chunk cache after it), started again at once;\n")
	fmt.Printf("ready %.2f s after the kill; first record after readiness: %s; replay then checked to its end\n", ready.Sub(killed).Seconds(), firstRecord)
	fmt.Printf("%-40s %8.2f s   (goal ≤ %.0f s)\n", "readiness to first remote record", waited.Seconds(), goalRestartSeconds)
	fmt.Printf("%-40s %8.1f /s  (%.0f Fetch requests over max(interval, 1 s); goal ≤ %.0f/s)\n", "Fetch requests meanwhile", perSecond, fetches, goalRestartFetches)
	// The broker's part: how long the client waited for the broker's
	// answers from readiness to the first remote record; the rest is the
	// client's own waits (reconnect and retry backoff).
	mu.Lock()
	served := trace.answerWaits(ready, firstAt)
	mu.Unlock()
	fmt.Printf("%-40s %8.2f s   (the broker's part: the client's waits for answers after readiness; the rest is its own backoff)\n", "waits for the broker's answers", served.Seconds())
	fmt.Printf("client (franz-go hooks): %s\n", trace.between(killed, ready, firstAt))
	if !firstRemote {
		sum.add("restart: readiness to first remote record", "not measured: "+firstRecord+" is local", fmt.Sprintf("≤ %.0f s", goalRestartSeconds), false)
	} else {
		sum.atMost("restart: readiness to first remote record", waited.Seconds(), goalRestartSeconds, " s")
		sum.derived("restart: the broker's part (waits for answers)", fmt.Sprintf("%.2f s", served.Seconds()), fmt.Sprintf("≤ %.2f s", goalRestartSeconds))
	}
	sum.atMost("restart: Fetch requests per second meanwhile", perSecond, goalRestartFetches, "/s")
	return nil
}

// clientTrace records, from a point on, when the consumer connected and
// sent and received Fetch requests, so that the restart phase tells the
// client's waits (retry backoff) from the broker's.
type clientTrace struct {
	mu     sync.Mutex
	from   time.Time // zero: not recording yet
	events []clientEvent
}

type clientEvent struct {
	at   time.Time
	what string // "connect", "fetch sent", "fetch answered", "<Request> sent", …
	err  error
	wait time.Duration // answered: from the request written to its answer read
}

func (c *clientTrace) since(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.from = t
}

func (c *clientTrace) add(what string, err error, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.from.IsZero() {
		c.events = append(c.events, clientEvent{time.Now(), what, err, wait})
	}
}

func (c *clientTrace) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	c.add("connect", err, 0)
}

func (c *clientTrace) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	c.add(requestName(key)+" sent", err, 0)
}

func (c *clientTrace) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, readWait, timeToRead time.Duration, err error) {
	c.add(requestName(key)+" answered", err, readWait+timeToRead)
}

// answerWaits sums how long the client waited for answers it read
// (successfully) from from until to.
func (c *clientTrace) answerWaits(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum time.Duration
	for _, e := range c.events {
		if e.err == nil && e.wait > 0 && !e.at.Before(from) && e.at.Before(to) {
			sum += e.wait
		}
	}
	return sum
}

// requestName is "fetch" for Fetch (counted below), else kmsg's name.
func requestName(key int16) string {
	if key == int16(kmsg.Fetch) {
		return "fetch"
	}
	return kmsg.NameForKey(key)
}

// between describes the client's connects and Fetches from the kill to
// the first record after readiness, in seconds after readiness.
func (c *clientTrace) between(killed, ready, first time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	failedWhileDown, failedAfter := 0, 0
	var timeline []string
	counts := map[string]int{}
	firsts := map[string]time.Time{}
	for _, e := range c.events {
		switch {
		case e.at.Before(ready):
			if e.what == "connect" && e.err != nil {
				failedWhileDown++
			}
		case e.at.Before(first):
			if len(timeline) < 20 {
				event := fmt.Sprintf("+%.3f %s", e.at.Sub(ready).Seconds(), e.what)
				if e.err != nil {
					event += " (failed)"
				}
				timeline = append(timeline, event)
			}
			if e.err != nil {
				failedAfter++
				continue
			}
			counts[e.what]++
			if firsts[e.what].IsZero() {
				firsts[e.what] = e.at
			}
		}
	}
	after := func(what string) string {
		if firsts[what].IsZero() {
			return "none"
		}
		return fmt.Sprintf("+%.2f s", firsts[what].Sub(ready).Seconds())
	}
	// A request failing after readiness is the client reusing a
	// connection to the killed process (closed under it: EOF), then
	// backing off before it asks again.
	return fmt.Sprintf("%d failed connects while down; after readiness %d connects (first %s), %d Fetches sent (first %s), %d answered (first %s), %d requests failed (connections to the killed process) before the first record\nclient requests after readiness (s): %s",
		failedWhileDown, counts["connect"], after("connect"), counts["fetch sent"], after("fetch sent"), counts["fetch answered"], after("fetch answered"), failedAfter, strings.Join(timeline, ", "))
}

// wide produces the same data per partition to a topic of
// opts.partitions and one of opts.widePartitions partitions (2 MiB
// segments both), waits until both are tiered, restarts the broker and
// replays each cold, one after the other, checked record by record.
func (b *tieredBench) wide(ctx context.Context, opts tieredOptions, sum *summary) error {
	perPartition := wideBytesPerPartition / b.recordSize
	stamp := time.Now().UnixNano()
	narrow := newTieredTopic(fmt.Sprintf("bench-narrow-%d", stamp), opts.partitions, perPartition*opts.partitions, wideSegmentBytes, wideSegmentBytes)
	wide := newTieredTopic(fmt.Sprintf("bench-wide-%d", stamp), opts.widePartitions, perPartition*opts.widePartitions, wideSegmentBytes, wideSegmentBytes)
	topics := []*tieredTopic{narrow, wide}
	for _, t := range topics {
		if err := t.create(b.brokers); err != nil {
			return err
		}
		// Round robin: every partition gets the same records.
		if _, err := produce(b.brokers, t.name, kgo.AllISRAcks(), t.records, b.recordSize, t.acked.add,
			kgo.RecordPartitioner(kgo.RoundRobinPartitioner())); err != nil {
			return err
		}
		if t.acked.records != t.records {
			return fmt.Errorf("produce to %s: %d records acknowledged of %d", t.name, t.acked.records, t.records)
		}
	}
	for _, t := range topics {
		if err := waitTiered(ctx, b.brokers, b.dataDir, t, 5*time.Minute); err != nil {
			return err
		}
	}
	if err := b.restart(); err != nil {
		return err
	}
	fmt.Printf("\nmany partitions: %d MiB per partition, %d MiB segments, local.retention.bytes %d MiB, each topic replayed cold\n",
		wideBytesPerPartition>>20, wideSegmentBytes>>20, wideSegmentBytes>>20)
	fmt.Printf("(after one restart, one after the other); compared with each other: with 2 MiB segments one GET per segment is 0.5/MiB\n")
	fmt.Printf("%-28s %10s %10s %10s %10s %10s %10s\n", "replay, cold", "remote MiB", "objects", "MB/s", "GETs/MiB", "GET B/B", "vs 3")
	var narrowGETs float64
	for _, t := range topics {
		if err := t.remoteRange(ctx, b.brokers, b.mc); err != nil {
			return err
		}
		r, err := b.replay(ctx, t, nil)
		if err != nil {
			return fmt.Errorf("replay of %s: %w", t.name, err)
		}
		gets, getBytes := r.getsPerMiB, r.getBytesPerByte
		versus := "1.00"
		if t == narrow {
			narrowGETs = gets
		} else {
			versus = fmt.Sprintf("%.2f", gets/narrowGETs)
		}
		fmt.Printf("%-28s %10.1f %10d %10.1f %10.2f %10.2f %10s   served / object bytes %.2f\n", fmt.Sprintf("%d partitions", t.partitions), float64(t.remoteBytes)/(1<<20),
			len(t.objects), float64(t.remoteBytes)/r.elapsed.Seconds()/1e6, gets, getBytes, versus, r.served/float64(t.remoteBytes))
		if t == wide {
			fmt.Printf("goal: the same per-byte efficiency as %d partitions (GETs/MiB ≤ %.1f× of theirs, GET B/B ≤ %.2f); main topic, %d partitions of %d MiB segments: %.2f GETs/MiB, %.2f GET B/B\n",
				opts.partitions, goalWideVsNarrow, goalGETBytesPerByte, b.main.partitions, opts.segmentMiB, b.coldGETsPerMiB, b.coldGETBytes)
			sum.atMost(fmt.Sprintf("%d-partition GETs/MiB / %d-partition", wide.partitions, narrow.partitions), gets/narrowGETs, goalWideVsNarrow, "×")
			sum.atMost(fmt.Sprintf("%d-partition GET bytes / bytes replayed", wide.partitions), getBytes, goalGETBytesPerByte, "")
		}
	}
	return nil
}

// summary collects each of issue 18's goals with its figure from the run.
type summary []summaryLine

type summaryLine struct {
	goal, figure, target string
	met                  bool
	// derived: an estimate computed from the run's figures (not measured
	// as the goal says), printed for reading, never counted as met.
	derived bool
}

func (s *summary) add(goal, figure, target string, met bool) {
	*s = append(*s, summaryLine{goal: goal, figure: figure, target: target, met: met})
}

func (s *summary) atLeast(goal string, v, target float64, unit string) {
	s.add(goal, fmt.Sprintf("%.2f%s", v, unit), fmt.Sprintf("≥ %.2f%s", target, unit), v >= target)
}

func (s *summary) atMost(goal string, v, target float64, unit string) {
	s.add(goal, fmt.Sprintf("%.2f%s", v, unit), fmt.Sprintf("≤ %.2f%s", target, unit), v <= target)
}

// derived adds a figure computed for reading the goals (an estimate, or a
// part of a goal's figure) next to them, printed but not counted.
func (s *summary) derived(goal, figure, target string) {
	*s = append(*s, summaryLine{goal: goal, figure: figure, target: target, derived: true})
}

func (s summary) print() {
	fmt.Printf("\nsummary (issue 18's goals, this run; one run on a shared machine is not a spread)\n")
	fmt.Printf("%-48s %-14s %-10s %s\n", "goal", "figure", "target", "")
	met, goals := 0, 0
	for _, l := range s {
		verdict := "not met"
		switch {
		case l.derived:
			verdict = "derived, not counted"
		case l.met:
			verdict, met, goals = "met", met+1, goals+1
		default:
			goals++
		}
		fmt.Printf("%-48s %-14s %-10s %s\n", l.goal, l.figure, l.target, verdict)
	}
	fmt.Printf("%s\n%d of %d met\n", strings.Repeat("-", 80), met, goals)
}
