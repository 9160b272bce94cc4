package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// The tiered topic's segments are --tiered-segment-mib (tieredOptions) and
// its local window two of them, so most of the data is only in the object
// store.
const (
	tieredBucket = "strata-bench"
	tieredPrefix = "bench"
)

// Issue 18's goals, as printed next to each figure and in the summary.
const (
	goalColdVsRanges    = 0.9  // cold replay / 1 MiB ranged GETs, at least
	goalColdVsWhole     = 0.5  // cold replay / whole-object reads, at least
	goalWarmVsLocal     = 1.0  // warm replay / local-tier consume, at least
	goalGETsPerMiB      = 0.25 // at most
	goalGETBytesPerByte = 1.05 // bytes fetched from the store per byte served, at most
	goalTieredProduce   = 0.85 // tiered produce / untiered, at least
	goalIsolationP99    = 1.5  // producer p99 during a cold replay / without, at most
	goalRestartSeconds  = 2.0  // readiness to the first remote record, at most
	goalRestartFetches  = 20.0 // Fetch requests per second meanwhile, at most
	goalWideVsNarrow    = 1.1  // many-partition GETs/MiB / 3-partition, at most ("the same")
)

type tieredOptions struct {
	mib, recordSize, partitions int
	widePartitions              int           // 0 skips the many-partition phase
	isolationRate               int           // records/s of the fixed-rate producer
	isolationFor                time.Duration // the longest a replay of the isolation phase runs (and its baseline: as long)
	isolationQuotasMiB          []int         // the fetch quotas of the throttled replays, MiB/s (the goal's first)
	isolationOnly               bool          // after the produce phase, only the isolation phase
	segmentMiB                  int           // the tiered topics' segment.bytes, MiB (local retention: two segments)
	storeConnMiBps              int           // when above 0, each connection from the S3 server at most this many MiB/s (connRateProxy)
}

// runTiered produces opts.mib MiB with acks=all to a tiered topic on one
// broker that tiers to versitygw, waits until the bucket holds everything
// but the local window, then measures in the same run (docs/performance.md,
// "How --tiered measures"): produce next to an untiered topic; reading the
// remote range's .log objects directly with minio-go (whole objects, and
// 1 MiB ranges: the limit); replaying the topic from offset 0 through the
// broker with franz-go's default fetch sizes, after a restart (cold chunk
// cache) and again (warm), next to consuming the untiered topic (local
// tier); a fixed-rate producer's latency without and during a cold replay;
// a broker killed and restarted while a consumer replays; and a cold
// replay of many partitions next to 3 with the same segment size. Every
// replay is checked record by record against what was acknowledged, and a
// summary prints each of issue 18's goals as met or not.
func runTiered(bin, dir string, opts tieredOptions) error {
	if bin == "" {
		return errors.New("set --bin or $STRATA_BIN")
	}
	if err := os.MkdirAll(filepath.Join(dir, "s3"), 0o755); err != nil {
		return err
	}
	s3, err := tieringtest.StartS3Server(filepath.Join(dir, "s3"))
	if err != nil {
		return err
	}
	defer s3.Close()
	tieringtest.SetCredentialsEnv() // for the broker, through the AWS chain
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := tiering.CreateBucket(ctx, s3.URL(tieredBucket)); err != nil {
		return err
	}
	// The broker and the direct reads reach the server at endpoint: the
	// server itself, or a proxy pacing each connection.
	endpoint := s3.Endpoint
	if opts.storeConnMiBps > 0 {
		proxy, err := startConnRateProxy(strings.TrimPrefix(s3.Endpoint, "http://"), int64(opts.storeConnMiBps)<<20)
		if err != nil {
			return err
		}
		defer proxy.Close()
		endpoint = "http://" + proxy.Addr()
		fmt.Printf("every connection from the S3 server paced to %d MiB/s (a proxy in this process)\n", opts.storeConnMiBps)
	}
	mc, err := minio.New(strings.TrimPrefix(endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(tieringtest.S3AccessKey, tieringtest.S3SecretKey, ""), Region: tieringtest.S3Region})
	if err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	total := int64(opts.mib) << 20
	records := int(total / int64(opts.recordSize))
	stamp := time.Now().UnixNano()
	segmentBytes := int64(opts.segmentMiB) << 20
	b := &tieredBench{
		s3: s3, bin: bin, dataDir: filepath.Join(dir, "data"), ports: ports, admin: ports[1], mc: mc, recordSize: opts.recordSize,
		flags: []string{"--object-store", strings.Replace(s3.URL(tieredBucket), s3.Endpoint, endpoint, 1), "--object-store-prefix", tieredPrefix,
			"--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300",
			"--remote-log-cache-bytes", fmt.Sprint(2 * total)}, // the warm pass finds every chunk
		main: newTieredTopic(fmt.Sprintf("bench-tiered-%d", stamp), opts.partitions, records, segmentBytes, 2*segmentBytes),
		// Not tiered: the produce and the local-tier consume reference.
		local: newTieredTopic(fmt.Sprintf("bench-local-%d", stamp), opts.partitions, records, segmentBytes, 0),
	}
	// STRATA_BENCH_COLD_PROFILE=file writes the broker's CPU profile of
	// the first seconds of the cold replay (go tool pprof -top file).
	coldProfile := os.Getenv("STRATA_BENCH_COLD_PROFILE")
	b.s3Pid, b.produceProfile = s3.Pid(), os.Getenv("STRATA_BENCH_PRODUCE_PROFILE")
	// STRATA_BENCH_WARM_PROFILE=file writes the broker's CPU profile of
	// the warm replay to file and of the local-tier consume to file.local
	// (each over its first 3 s: the whole pass at --tiered-mib 256).
	warmProfile := os.Getenv("STRATA_BENCH_WARM_PROFILE")
	if b.produceProfile != "" || coldProfile != "" || warmProfile != "" {
		b.flags = append(b.flags, "--admin-pprof")
	}
	// STRATA_BENCH_BROKER_FLAGS adds broker flags (space-separated), e.g.
	// "--remote-log-cache-direct-io=false" to compare cache modes.
	if extra := strings.Fields(os.Getenv("STRATA_BENCH_BROKER_FLAGS")); len(extra) > 0 {
		b.flags = append(b.flags, extra...)
		fmt.Printf("extra broker flags: %s\n", strings.Join(extra, " "))
	}
	if err := b.start(); err != nil {
		return err
	}
	defer func() { b.stop() }()

	fmt.Printf("strata-bench --tiered: %d MiB in %d records of %d B (incompressible, uncompressed batches, acks=all), %d partitions,\n", opts.mib, records, opts.recordSize, opts.partitions)
	fmt.Printf("%d MiB segments, local.retention.bytes %d MiB; versitygw (posix) on loopback, broker and client on the same cores\n",
		segmentBytes>>20, 2*segmentBytes>>20)
	fmt.Printf("replay and local consume: franz-go's default fetch sizes (50 MiB per Fetch, 1 MiB per partition), from offset 0, timed over the remote range;\n")
	fmt.Printf("direct: minio-go, one stream per partition; every replay checked record by record\n\n")
	fmt.Printf("%-28s %10s %12s %10s %10s %9s %9s\n", "run", "MB/s", "records/s", "GETs/MiB", "GET B/B", "vs direct", "vs ranges")
	var sum summary
	began := time.Now()
	upload, err := b.produce(ctx, &sum)
	if err != nil {
		return err
	}
	// STRATA_BENCH_PRODUCE_ONLY=1 stops after the produce phase (A/B runs
	// of the produce figures).
	if os.Getenv("STRATA_BENCH_PRODUCE_ONLY") != "" {
		sum.print()
		return nil
	}

	if opts.isolationOnly {
		if err := b.main.remoteRange(ctx, b.brokers, mc); err != nil {
			return err
		}
		if err := b.isolation(ctx, opts, &sum); err != nil {
			return fmt.Errorf("isolation: %w", err)
		}
		sum.print()
		return nil
	}

	// A restart empties the chunk cache: the first replay is cold.
	if err := b.restart(); err != nil {
		return err
	}
	if err := b.main.remoteRange(ctx, b.brokers, mc); err != nil {
		return err
	}
	remoteMiB := float64(b.main.remoteBytes) / (1 << 20)

	// MB/s of the whole-object read (the limit) and of the broker's cold
	// request pattern (one ranged GET per chunk) with the same client.
	var direct, ranges float64
	var directCPU []cpuUse // whole objects, ranges: versitygw and the reading client (this process)
	for _, chunk := range []int64{0, tiering.DefaultChunkBytes} {
		cpuBefore, err := sampleCPU(b.process.Pid, s3.Pid())
		if err != nil {
			return err
		}
		elapsed, gets, err := directRead(ctx, mc, b.main.objects, chunk)
		if err != nil {
			return err
		}
		cpuAfter, err := sampleCPU(b.process.Pid, s3.Pid())
		if err != nil {
			return err
		}
		directCPU = append(directCPU, cpuAfter.since(cpuBefore))
		mbs := float64(b.main.remoteBytes) / elapsed.Seconds() / 1e6
		name, versusRanges := "direct S3, whole objects", "-"
		if chunk > 0 {
			ranges, name, versusRanges = mbs, fmt.Sprintf("direct S3, %d MiB ranges", chunk>>20), "1.00"
		}
		direct = cmp.Or(direct, mbs)
		fmt.Printf("%-28s %10.1f %12s %10.2f %10.2f %9.2f %9s\n", name, mbs, "-", float64(gets)/remoteMiB, 1.0, mbs/direct, versusRanges)
	}
	var notes []string
	var waits []func() // the passes' waits and CPU, printed after the table
	var warmRPS, warmCPU, coldVsWhole float64
	var warmFetches replayResult
	var localBefore localPass
	for _, pass := range []string{"cold", "warm"} {
		if pass == "warm" {
			// The cold pass leaves chunks in the cache's write-behind
			// queue; the warm pass starts once every chunk of the remote
			// range has its file and the broker is idle, so that it
			// neither competes with nor is charged the cold pass's writes.
			began := time.Now()
			files, err := b.waitCacheFiles(ctx)
			if err != nil {
				return err
			}
			if _, err := waitIdle(ctx, b.process.Pid); err != nil {
				return err
			}
			notes = append(notes, fmt.Sprintf("warm: started once the cold pass's cache writes were done (%d chunk files) and the broker idle, %.1f s after it", files, time.Since(began).Seconds()))
			// The local-tier consume runs just before the warm pass and
			// again after it (A-B-A), so that a drift of the machine
			// between the two passes counts on both sides of the ratio.
			if localBefore, err = b.consumeLocal(ctx); err != nil {
				return fmt.Errorf("local-tier consume before the warm pass: %w", err)
			}
			if _, err := waitIdle(ctx, b.process.Pid); err != nil {
				return err
			}
		}
		if pass == "cold" {
			probe, err := probePageCache(filepath.Dir(b.dataDir))
			if err != nil {
				return err
			}
			notes = append(notes, "machine, before the cold pass: "+probe.String())
			if _, err := waitIdle(ctx, b.process.Pid); err != nil {
				return err
			}
		}
		profiled := make(chan error, 1)
		switch {
		case pass == "cold" && coldProfile != "":
			go func() { profiled <- cpuProfile(b.admin, coldProfile, 3) }()
		case pass == "warm" && warmProfile != "":
			go func() { profiled <- cpuProfile(b.admin, warmProfile, 3) }()
		default:
			profiled <- nil
		}
		cpuBefore, err := processCPU(b.process.Pid)
		if err != nil {
			return err
		}
		r, err := b.replay(ctx, b.main, nil)
		if err != nil {
			return fmt.Errorf("replay (%s cache): %w", pass, err)
		}
		cpuAfter, err := processCPU(b.process.Pid)
		if err != nil {
			return err
		}
		if err := <-profiled; err != nil {
			return fmt.Errorf("CPU profile of the %s replay: %w", pass, err)
		}
		if pass == "warm" {
			warmCPU, warmFetches = (cpuAfter - cpuBefore).Seconds(), r
		}
		mbs := float64(b.main.remoteBytes) / r.elapsed.Seconds() / 1e6
		getsPerMiB, getBytes := r.getsPerMiB, r.getBytesPerByte
		goals := ""
		if pass == "cold" {
			goals = fmt.Sprintf("   goals: ≥ %.1f× ranges, ≥ %.1f× direct, ≤ %.2f GETs/MiB, ≤ %.2f GET B/B", goalColdVsRanges, goalColdVsWhole, goalGETsPerMiB, goalGETBytesPerByte)
			sum.atLeast("cold replay / 1 MiB ranged GETs", mbs/ranges, goalColdVsRanges, "×")
			sum.atLeast("cold replay / whole objects", mbs/direct, goalColdVsWhole, "×")
			sum.atMost("cold replay GETs per MiB", getsPerMiB, goalGETsPerMiB, "")
			sum.atMost("cold replay GET bytes / bytes replayed", getBytes, goalGETBytesPerByte, "")
			b.coldGETsPerMiB, b.coldGETBytes, coldVsWhole = getsPerMiB, getBytes, mbs/direct
		} else {
			warmRPS = float64(b.main.remoteRecords) / r.elapsed.Seconds()
		}
		fmt.Printf("%-28s %10.1f %12.0f %10.2f %10.2f %9.2f %9.2f%s\n", "broker replay, "+pass+" cache", mbs, float64(b.main.remoteRecords)/r.elapsed.Seconds(),
			getsPerMiB, getBytes, mbs/direct, mbs/ranges, goals)
		notes = append(notes, fmt.Sprintf("%s: whole topic (with the local window) %.1f MB/s; chunk cache %.0f hits, %.0f misses, %.0f files read on a reader's path, %.0f loaded ahead; served from the store / object bytes %.2f; batch CRCs checked ahead %.1f MiB, on the Fetch's path %.1f MiB",
			pass, r.whole.mbs, r.cacheHits, r.cacheMisses, r.diskReads, r.diskReadsAhead, r.served/float64(b.main.remoteBytes), r.crcAhead/(1<<20), r.crcOnRead/(1<<20)))
		if r.failures > 0 {
			notes = append(notes, fmt.Sprintf("%s: %.0f failed bucket requests or remote fetches", pass, r.failures))
		}
		waits = append(waits, func() { printReplayWaits(pass, r.fetches, r.waits, r.cpu, remoteMiB, r.elapsed) })
	}
	// The local tier: the untiered topic, same size, broker and client
	// settings, timed as the replays are (consumeLocal).
	if _, err := waitIdle(ctx, b.process.Pid); err != nil { // as the warm pass
		return err
	}
	profiled := make(chan error, 1)
	if warmProfile != "" {
		go func() { profiled <- cpuProfile(b.admin, warmProfile+".local", 3) }()
	} else {
		profiled <- nil
	}
	cpuBefore, err := processCPU(b.process.Pid)
	if err != nil {
		return err
	}
	local, err := b.consumeLocal(ctx)
	if err != nil {
		return fmt.Errorf("local-tier consume: %w", err)
	}
	cpuAfter, err := processCPU(b.process.Pid)
	if err != nil {
		return err
	}
	if err := <-profiled; err != nil {
		return fmt.Errorf("CPU profile of the local-tier consume: %w", err)
	}
	localCPU := (cpuAfter - cpuBefore).Seconds()
	// Both local passes together: the same records twice over their
	// summed time.
	localRPS := float64(local.records+localBefore.records) / (local.elapsed + localBefore.elapsed).Seconds()
	notes = append(notes, fmt.Sprintf("local-tier consume: %.0f records/s before the warm pass, %.0f after it",
		float64(localBefore.records)/localBefore.elapsed.Seconds(), float64(local.records)/local.elapsed.Seconds()))
	localMBs := localRPS * float64(b.main.remoteBytes) / float64(b.main.remoteRecords) / 1e6 // the same batches
	fmt.Printf("%-28s %10.1f %12.0f %10s %10s %9.2f %9.2f   warm replay %.2f× of it (goal ≥ %.1f×)\n", "consume, local tier",
		localMBs, localRPS, "-", "-", localMBs/direct, localMBs/ranges, warmRPS/localRPS, goalWarmVsLocal)
	sum.atLeast("warm replay / local-tier consume", warmRPS/localRPS, goalWarmVsLocal, "×")
	// The peer of the cold / whole-objects goal: a consumer of the local
	// tier, with no object store, against the same whole-object reads.
	// A cold replay does all a local-tier consume does and its GETs and
	// cache writes on the same cores, so this is about its ceiling.
	sum.derived("local-tier consume / whole objects (peer)", fmt.Sprintf("%.2f×", localMBs/direct), fmt.Sprintf("cold %.2f×", coldVsWhole))
	// Both passes read their whole topic (the same records; the warm one
	// its local window too): the broker's CPU over each per MiB read.
	topicMiB := float64(b.main.records*b.recordSize) / (1 << 20)
	notes = append(notes, fmt.Sprintf("broker CPU per MiB read (whole pass, /proc utime+stime): warm replay %.2f ms, local-tier consume %.2f ms (%.2f×)",
		1000*warmCPU/topicMiB, 1000*localCPU/topicMiB, warmCPU/localCPU))
	localFetches := local.metrics[fetchCountSeries]
	notes = append(notes, fmt.Sprintf("Fetch requests (whole pass): warm replay %.0f, %.2f ms each in the broker; local-tier consume %.0f, %.2f ms each",
		warmFetches.passFetches, 1000*warmFetches.passFetchSeconds/max(warmFetches.passFetches, 1), localFetches, 1000*local.metrics[fetchSecondsSeries]/max(localFetches, 1)))
	waits = append(waits, func() { printWarmVsLocal(warmFetches, localBefore, local, remoteMiB) })

	uploaded := upload["strata_tiering_bucket_put_bytes_total"]
	fmt.Printf("\nremote range: %d records, %.1f MiB in %d .log objects (%.0f%% of the topic); every replay checked record by record\n",
		b.main.remoteRecords, remoteMiB, len(b.main.objects), 100*float64(b.main.remoteRecords)/float64(b.main.records))
	fmt.Printf("tiering: %.0f segments committed, %.1f MiB uploaded, all but the local window %.1f s after the last ack; %.2f PUTs/MiB uploaded\n",
		upload[fmt.Sprintf("strata_tiering_segments_committed_total{topic=%q}", b.main.name)], uploaded/(1<<20),
		b.tieredAfter.Seconds(), upload["strata_tiering_bucket_puts_total"]/(uploaded/(1<<20)))
	for _, note := range notes {
		fmt.Println(note)
	}
	for i, name := range []string{"whole objects", "1 MiB ranges"} {
		fmt.Printf("direct S3, %s: CPU per MiB read: versitygw %.2f ms, client (minio-go into io.Discard) %.2f ms\n", name,
			float64(directCPU[i].s3.Microseconds())/1000/remoteMiB, float64(directCPU[i].client.Microseconds())/1000/remoteMiB)
	}
	for _, print := range waits {
		print()
	}
	// STRATA_BENCH_REPLAYS_ONLY=1 stops after the replays and the
	// local-tier consume (A/B runs of the replay figures).
	if os.Getenv("STRATA_BENCH_REPLAYS_ONLY") != "" {
		sum.print()
		return nil
	}

	phases := []string{fmt.Sprintf("produce, direct reads and replays %.0f s", time.Since(began).Seconds())}
	phase := time.Now()
	if err := b.isolation(ctx, opts, &sum); err != nil {
		return fmt.Errorf("isolation: %w", err)
	}
	phases = append(phases, fmt.Sprintf("isolation %.0f s", time.Since(phase).Seconds()))
	phase = time.Now()
	if err := b.restartDuringReplay(ctx, &sum); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	phases = append(phases, fmt.Sprintf("restart %.0f s", time.Since(phase).Seconds()))
	if opts.widePartitions > 0 {
		phase = time.Now()
		if err := b.wide(ctx, opts, &sum); err != nil {
			return fmt.Errorf("many partitions: %w", err)
		}
		phases = append(phases, fmt.Sprintf("many partitions %.0f s", time.Since(phase).Seconds()))
	}
	sum.print()
	fmt.Printf("wall time %.0f s: %s\n", time.Since(began).Seconds(), strings.Join(phases, ", "))
	return nil
}

// tieredTopic is one topic of the run, what was acknowledged to it and,
// once tiered, its remote range.
type tieredTopic struct {
	name                     string
	partitions, records      int
	segmentBytes, localBytes int64 // localBytes 0: not tiered
	acked                    *ledger

	localStart    []int64 // per partition, the earliest local offset: the end of the remote range
	objects       []remoteObject
	remoteBytes   int64 // of the remote range's .log objects
	remoteRecords int64
}

func newTieredTopic(name string, partitions, records int, segmentBytes, localBytes int64) *tieredTopic {
	return &tieredTopic{name: name, partitions: partitions, records: records, segmentBytes: segmentBytes, localBytes: localBytes,
		acked: &ledger{values: map[int32][]uint64{}}}
}

func (t *tieredTopic) create(brokers string) error {
	configs := map[string]*string{"segment.bytes": kmsg.StringPtr(fmt.Sprint(t.segmentBytes))}
	if t.localBytes > 0 {
		configs["remote.storage.enable"] = kmsg.StringPtr("true")
		configs["local.retention.bytes"] = kmsg.StringPtr(fmt.Sprint(t.localBytes))
	}
	return createReplicatedTopic(brokers, t.name, t.partitions, 1, configs)
}

// remoteRange finds what the broker serves from the bucket: per
// partition, the offsets below the earliest local one, and the .log
// objects that hold them.
func (t *tieredTopic) remoteRange(ctx context.Context, brokers string, mc *minio.Client) error {
	var err error
	if t.localStart, err = listOffsets(ctx, brokers, t.name, t.partitions, -4); err != nil {
		return err
	}
	if t.objects, err = remoteLogObjects(ctx, mc, t.name, t.localStart); err != nil {
		return err
	}
	t.remoteBytes, t.remoteRecords = 0, 0
	for _, o := range t.objects {
		t.remoteBytes += o.size
	}
	for _, start := range t.localStart {
		t.remoteRecords += start
	}
	return nil
}

// tieredBench is one --tiered run: its broker and topics.
type tieredBench struct {
	bin, dataDir, admin string
	ports, flags        []string
	s3                  *tieringtest.S3Server
	mc                  *minio.Client
	recordSize          int
	brokers             string // the running broker's client address
	process             *os.Process
	stop                func()
	main, local         *tieredTopic
	tieredAfter         time.Duration // from the last ack until only the local window stayed local

	coldGETsPerMiB, coldGETBytes float64 // of main's cold replay, for the many-partition phase

	s3Pid          int    // versitygw's, for its CPU time
	produceProfile string // STRATA_BENCH_PRODUCE_PROFILE
}

// start starts the broker (again) on the same data and ports.
func (b *tieredBench) start() error {
	var err error
	b.brokers, b.process, b.stop, err = startBrokerProcess(b.bin, b.dataDir, b.ports, b.flags...)
	if err != nil {
		b.stop = func() {}
	}
	return err
}

// restart stops the broker (SIGINT, a clean shutdown) and starts it again.
func (b *tieredBench) restart() error {
	b.stop()
	return b.start()
}

// produce creates the topics, produces to the untiered one and then to
// the tiered one with acks=all, prints the rows and waits until the
// tiered one is tiered; it returns the broker's metric increases over the
// tiered produce and its tiering. It also prints where the CPU went in
// each produce, per MiB: the broker's, versitygw's, the producing
// client's (this process), the rest of the machine's, and the upload
// tail's (from the last ack until everything is tiered), with the tiered
// ratio derived as if versitygw ran on another host.
func (b *tieredBench) produce(ctx context.Context, sum *summary) (metricSamples, error) {
	// The reference: the same records to a topic that is not tiered, on
	// the same broker, just before (issue 18: tiered ≥ 0.85× of it).
	if err := b.local.create(b.brokers); err != nil {
		return nil, err
	}
	cpu0, err := sampleCPU(b.process.Pid, b.s3Pid)
	if err != nil {
		return nil, err
	}
	untiered, err := produce(b.brokers, b.local.name, kgo.AllISRAcks(), b.local.records, b.recordSize, b.local.acked.add)
	if err != nil {
		return nil, err
	}
	cpu1, err := sampleCPU(b.process.Pid, b.s3Pid)
	if err != nil {
		return nil, err
	}
	fmt.Printf("%-28s %10.1f %12.0f %10s %10s %9s %9s\n", "produce acks=all, untiered", untiered.mbs, untiered.rps, "-", "-", "-", "-")
	if err := b.main.create(b.brokers); err != nil {
		return nil, err
	}
	before, err := scrapeMetrics(b.admin)
	if err != nil {
		return nil, err
	}
	// STRATA_BENCH_PRODUCE_PROFILE=file writes the broker's CPU profile
	// of the tiered produce and its upload tail (go tool pprof -top file):
	// a window of three times the untiered produce's time and 2 s more,
	// which the bench waits out; a profile counts CPU, not the idle end.
	profiled := make(chan error, 1)
	if b.produceProfile != "" {
		seconds := int(3*float64(b.local.records*b.recordSize)/1e6/untiered.mbs) + 2
		go func() { profiled <- cpuProfile(b.admin, b.produceProfile, seconds) }()
	} else {
		profiled <- nil
	}
	cpu2, err := sampleCPU(b.process.Pid, b.s3Pid)
	if err != nil {
		return nil, err
	}
	produced, err := produce(b.brokers, b.main.name, kgo.AllISRAcks(), b.main.records, b.recordSize, b.main.acked.add)
	if err != nil {
		return nil, err
	}
	cpu3, err := sampleCPU(b.process.Pid, b.s3Pid)
	if err != nil {
		return nil, err
	}
	for _, t := range []*tieredTopic{b.local, b.main} {
		if t.acked.records != t.records {
			return nil, fmt.Errorf("produce to %s: %d records acknowledged of %d", t.name, t.acked.records, t.records)
		}
	}
	lastAck := time.Now()
	if err := waitTiered(ctx, b.brokers, b.dataDir, b.main, 5*time.Minute); err != nil {
		return nil, err
	}
	b.tieredAfter = time.Since(lastAck)
	cpu4, err := sampleCPU(b.process.Pid, b.s3Pid)
	if err != nil {
		return nil, err
	}
	if err := <-profiled; err != nil {
		return nil, fmt.Errorf("CPU profile of the tiered produce: %w", err)
	}
	after, err := scrapeMetrics(b.admin)
	if err != nil {
		return nil, err
	}
	ratio := produced.mbs / untiered.mbs
	fmt.Printf("%-28s %10.1f %12.0f %10s %10s %9s %9s   %.2f× untiered (goal ≥ %.2f×)\n", "produce acks=all, tiered", produced.mbs, produced.rps, "-", "-", "-", "-",
		ratio, goalTieredProduce)
	sum.atLeast("tiered produce / untiered", ratio, goalTieredProduce, "×")

	// Where the CPU went, per MiB produced.
	mib := func(t *tieredTopic) float64 { return float64(t.records*b.recordSize) / (1 << 20) }
	untieredUse, tieredUse, tailUse := cpu1.since(cpu0), cpu3.since(cpu2), cpu4.since(cpu3)
	whole := tieredUse.plus(tailUse)
	fmt.Printf("\n%-28s %8s %10s %8s %8s %8s   (CPU ms per MiB produced; client: this process; others: the rest of the machine)\n",
		"CPU per MiB", "broker", "versitygw", "client", "others", "machine")
	cpuRow("produce, untiered", untieredUse, mib(b.local))
	cpuRow("produce, tiered", tieredUse, mib(b.main))
	cpuRow("upload tail (until tiered)", tailUse, mib(b.main))
	cpuRow("tiered, produce + tail", whole, mib(b.main))
	perMiB := func(d time.Duration, t *tieredTopic) float64 { return d.Seconds() / mib(t) }
	fmt.Printf("tiered over untiered, per MiB: broker %+.2f ms, versitygw %+.2f ms, client %+.2f ms\n",
		1000*(perMiB(whole.broker, b.main)-perMiB(untieredUse.broker, b.local)),
		1000*(perMiB(whole.s3, b.main)-perMiB(untieredUse.s3, b.local)),
		1000*(perMiB(whole.client, b.main)-perMiB(untieredUse.client, b.local)))
	// Derived, not measured: the tiered produce with versitygw's CPU on
	// another host. (a) its MB/s scaled by the machine's CPU over the
	// CPU versitygw left it, capacity / (capacity − versitygw); (b) the
	// ratio of the CPU per MiB of the processes that stay on the host
	// (broker and client; tiered: produce and upload tail), which holds
	// when produce is CPU-bound and does not move with others' load.
	var scaled, perCPU float64
	if free := tieredUse.capacity - tieredUse.s3; free > 0 {
		scaled = ratio * float64(tieredUse.capacity) / float64(free)
	}
	if host := perMiB(whole.broker+whole.client, b.main); host > 0 {
		perCPU = perMiB(untieredUse.broker+untieredUse.client, b.local) / host
	}
	fmt.Printf("tiered produce / untiered: %.2f× measured; derived with versitygw on another host: %.2f× (MB/s × capacity / (capacity − versitygw)), %.2f× (broker + client CPU per MiB)\n\n",
		ratio, scaled, perCPU)
	sum.derived("tiered produce / untiered if S3 were elsewhere", fmt.Sprintf("%.2f×", scaled), fmt.Sprintf("≥ %.2f×", goalTieredProduce))
	return after.since(before), nil
}

type replayResult struct {
	whole                  result        // the whole topic, local window included
	elapsed                time.Duration // until every partition passed its remote range
	served                 float64       // bytes the broker served from the object store
	gets, getBytes         float64
	cacheHits, cacheMisses float64
	// Chunks read from cache files on a reader's path (the Fetch waits for
	// the read) and loaded ahead of the readers.
	diskReads, diskReadsAhead float64
	// Batch bytes whose CRC-32C read-ahead checked before their chunk
	// reached a read, and those a read checked on the Fetch's path (0 and
	// 0 from a broker without these counters).
	crcAhead, crcOnRead float64
	// Fetch requests answered during the whole pass and the broker's time
	// handling them (strata_request_duration_seconds{api="Fetch"}).
	passFetches, passFetchSeconds float64
	failures                      float64 // failed bucket requests and remote fetches
	// Per MiB and per byte replayed from the remote range (its objects'
	// bytes, each delivered once: the checks make sure).
	getsPerMiB, getBytesPerByte float64
	// Over the remote range: the consumer's Fetches, the broker's waits,
	// the CPU time of the broker, versitygw and the consumer.
	fetches fetchSummary
	waits   replayWaits
	cpu     cpuUse
}

// replay consumes t from offset 0 with franz-go's default fetch sizes,
// checks every record, and returns the increases of the broker's tiering
// metrics; each, when not nil, sees every record after the check.
func (b *tieredBench) replay(ctx context.Context, t *tieredTopic, each func(*kgo.Record) error) (replayResult, error) {
	before, err := scrapeMetrics(b.admin)
	if err != nil {
		return replayResult{}, err
	}
	check := t.acked.replay(t.localStart)
	// CPU times at the start and once the remote range is replayed.
	var cpuBefore, cpuAfter cpuSample
	var atRemoteEnd metricSamples
	latencies := &fetchLatencies{}
	began := time.Now()
	if cpuBefore, err = sampleCPU(b.process.Pid, b.s3.Pid()); err != nil {
		return replayResult{}, err
	}
	whole, err := consumeWith(b.brokers, t.name, t.records, func(r *kgo.Record) error {
		if err := check.record(r); err != nil {
			return err
		}
		if atRemoteEnd == nil && !check.remoteDone.IsZero() {
			if cpuAfter, err = sampleCPU(b.process.Pid, b.s3.Pid()); err != nil {
				return err
			}
			if atRemoteEnd, err = scrapeMetrics(b.admin); err != nil {
				return err
			}
		}
		if each == nil {
			return nil
		}
		return each(r)
	}, kgo.WithHooks(latencies))
	if err != nil {
		return replayResult{}, err
	}
	if err := check.complete(); err != nil {
		return replayResult{}, err
	}
	after, err := scrapeMetrics(b.admin)
	if err != nil {
		return replayResult{}, err
	}
	d := after.since(before)
	r := replayResult{
		whole: whole, elapsed: check.remoteDone.Sub(began),
		served: d[fmt.Sprintf("strata_tiering_remote_fetch_bytes_total{topic=%q}", t.name)],
		gets:   d["strata_tiering_bucket_gets_total"], getBytes: d["strata_tiering_bucket_get_bytes_total"],
		cacheHits: d["strata_tiering_cache_hits_total"], cacheMisses: d["strata_tiering_cache_misses_total"],
		diskReads: d["strata_tiering_cache_disk_reads_total"], diskReadsAhead: d["strata_tiering_cache_disk_reads_ahead_total"],
		crcAhead: d["strata_tiering_batch_bytes_verified_ahead_total"], crcOnRead: d["strata_tiering_batch_bytes_crc_on_read_total"],
		passFetches: d[fetchCountSeries], passFetchSeconds: d[fetchSecondsSeries],
		failures: d["strata_tiering_bucket_failures_total"] + d[fmt.Sprintf("strata_tiering_remote_fetch_errors_total{topic=%q}", t.name)],
	}
	r.getsPerMiB, r.getBytesPerByte = r.gets/(float64(t.remoteBytes)/(1<<20)), r.getBytes/float64(t.remoteBytes)
	r.fetches = latencies.summary(began, check.remoteDone)
	r.waits = replayWaitsOf(atRemoteEnd.since(before))
	r.cpu = cpuAfter.since(cpuBefore)
	if r.served < float64(t.remoteBytes) {
		return replayResult{}, fmt.Errorf("the broker served %.0f bytes of %s from the object store, the remote range is %d", r.served, t.name, t.remoteBytes)
	}
	return r, nil
}

// consumeLocal consumes the untiered topic as replay does the tiered one
// and returns the time until every partition had passed the offset where
// the tiered topic's remote range ends in the same partition (the replay's
// criterion: the same records per partition, the slowest partition's
// time), how many records that is, the broker's metric increases
// meanwhile, and, over the timed range as for a replay, the consumer's
// Fetches and the CPU of the broker and the consumer.
func (b *tieredBench) consumeLocal(ctx context.Context) (localPass, error) {
	before, err := scrapeMetrics(b.admin)
	if err != nil {
		return localPass{}, err
	}
	ends := make([]int64, b.local.partitions)
	pass := localPass{}
	for p := range ends {
		if p < len(b.main.localStart) {
			ends[p] = min(b.main.localStart[p], int64(len(b.local.acked.values[int32(p)])))
		}
		pass.records += ends[p]
	}
	check := b.local.acked.replay(ends)
	latencies := &fetchLatencies{}
	var cpuBefore, cpuAfter cpuSample
	began := time.Now()
	if cpuBefore, err = sampleCPU(b.process.Pid, b.s3.Pid()); err != nil {
		return localPass{}, err
	}
	if _, err := consumeWith(b.brokers, b.local.name, b.local.records, func(r *kgo.Record) error {
		if err := check.record(r); err != nil {
			return err
		}
		if cpuAfter.at.IsZero() && !check.remoteDone.IsZero() {
			cpuAfter, err = sampleCPU(b.process.Pid, b.s3.Pid())
		}
		return err
	}, kgo.WithHooks(latencies)); err != nil {
		return localPass{}, err
	}
	if err := check.complete(); err != nil {
		return localPass{}, err
	}
	after, err := scrapeMetrics(b.admin)
	if err != nil {
		return localPass{}, err
	}
	pass.elapsed, pass.metrics = check.remoteDone.Sub(began), after.since(before)
	pass.fetches, pass.cpu = latencies.summary(began, check.remoteDone), cpuAfter.since(cpuBefore)
	return pass, nil
}

// The broker's Fetch requests answered and the seconds spent on them.
var (
	fetchCountSeries   = fmt.Sprintf("strata_request_duration_seconds_count{api=%q}", "Fetch")
	fetchSecondsSeries = fmt.Sprintf("strata_request_duration_seconds_sum{api=%q}", "Fetch")
)

// ledger keeps what was acknowledged: per partition, the first 8 bytes of
// each offset's value, so a replay can be checked record by record. Values
// are slices of a 4 MiB random pool at positions that repeat only after
// about 4 million records, so the prefixes tell records apart. Its methods
// are called one at a time (produce's acked contract).
type ledger struct {
	values  map[int32][]uint64 // partition → value prefix by offset
	records int
}

func (l *ledger) add(r *kgo.Record) {
	offsets := l.values[r.Partition]
	for int64(len(offsets)) <= r.Offset {
		offsets = append(offsets, 0)
	}
	offsets[r.Offset] = valuePrefix(r.Value)
	l.values[r.Partition] = offsets
	l.records++
}

func valuePrefix(value []byte) uint64 {
	var prefix [8]byte
	copy(prefix[:], value)
	return binary.LittleEndian.Uint64(prefix[:])
}

// replayCheck follows one replay: every partition's offsets must come
// contiguously from 0 with the values acknowledged at them. remoteDone is
// when the last partition passed the end of its remote range.
type replayCheck struct {
	ledger     *ledger
	remoteEnd  []int64 // per partition, the local log start
	next       map[int32]int64
	remaining  int // partitions still in their remote range
	remoteDone time.Time
}

func (l *ledger) replay(remoteEnd []int64) *replayCheck {
	c := &replayCheck{ledger: l, remoteEnd: remoteEnd, next: map[int32]int64{}}
	for _, end := range remoteEnd {
		if end > 0 {
			c.remaining++
		}
	}
	if c.remaining == 0 {
		c.remoteDone = time.Now()
	}
	return c
}

func (c *replayCheck) record(r *kgo.Record) error {
	want := c.ledger.values[r.Partition]
	if next := c.next[r.Partition]; r.Offset != next {
		return fmt.Errorf("partition %d: got offset %d, want %d", r.Partition, r.Offset, next)
	}
	if r.Offset >= int64(len(want)) || valuePrefix(r.Value) != want[r.Offset] {
		return fmt.Errorf("partition %d offset %d: not the value acknowledged there", r.Partition, r.Offset)
	}
	c.next[r.Partition] = r.Offset + 1
	if r.Offset+1 == c.remoteEnd[r.Partition] {
		if c.remaining--; c.remaining == 0 {
			c.remoteDone = time.Now()
		}
	}
	return nil
}

// complete checks that every acknowledged record came back.
func (c *replayCheck) complete() error {
	for partition, want := range c.ledger.values {
		if got := c.next[partition]; got != int64(len(want)) {
			return fmt.Errorf("partition %d: replayed %d records, %d acknowledged", partition, got, len(want))
		}
	}
	if c.remaining > 0 {
		return fmt.Errorf("%d partitions did not reach their local log start", c.remaining)
	}
	return nil
}

// waitTiered waits until every sealed segment is in the object store and
// local retention has left only the local window: per partition, the
// latest tiered offset (ListOffsets -5) ends where the active segment
// starts, and the local log is no longer larger than local.retention.bytes
// by its oldest segment (the retention.bytes rule).
func waitTiered(ctx context.Context, brokers, dataDir string, t *tieredTopic, timeout time.Duration) error {
	topic, partitions := t.name, t.partitions
	deadline := time.Now().Add(timeout)
	for {
		tieredEnd, err := listOffsets(ctx, brokers, topic, partitions, -5)
		if err != nil {
			return err
		}
		waiting := ""
		for p := range partitions {
			names, _ := filepath.Glob(filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, p), "*.log"))
			// Zero-padded base offsets: the glob's order is the log's.
			var sizes []int64
			localBytes := int64(0)
			for _, name := range names {
				info, err := os.Stat(name)
				if err != nil {
					continue // deleted by retention meanwhile
				}
				sizes = append(sizes, info.Size())
				localBytes += info.Size()
			}
			if len(names) == 0 {
				return fmt.Errorf("partition %d: no local segments in %s", p, dataDir)
			}
			activeBase, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(names[len(names)-1]), ".log"), 10, 64)
			if err != nil {
				return fmt.Errorf("partition %d: segment name %s: %w", p, names[len(names)-1], err)
			}
			switch {
			case tieredEnd[p]+1 != activeBase:
				waiting = fmt.Sprintf("partition %d: tiered up to offset %d, active segment at %d", p, tieredEnd[p], activeBase)
			case len(sizes) > 1 && localBytes-sizes[0] >= t.localBytes:
				waiting = fmt.Sprintf("partition %d: %d local bytes in %d segments", p, localBytes, len(sizes))
			}
			if waiting != "" {
				break
			}
		}
		if waiting == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not tiered after %s: %s", timeout, waiting)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listOffsets answers ListOffsets for every partition of topic at one
// special timestamp (-4 earliest local, -5 latest tiered: KIP-405/1005).
func listOffsets(ctx context.Context, brokers, topic string, partitions int, timestamp int64) ([]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = int32(p)
		rp.Timestamp = timestamp
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	deadline := time.Now().Add(30 * time.Second) // right after a restart, leadership may still be settling
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, err
		}
		offsets := make([]int64, partitions)
		var failed error
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					failed = fmt.Errorf("list offsets %d of partition %d: error %d", timestamp, p.Partition, p.ErrorCode)
				}
				offsets[p.Partition] = p.Offset
			}
		}
		if failed == nil {
			return offsets, nil
		}
		if time.Now().After(deadline) {
			return nil, failed
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// remoteObject is one segment's .log object in the bucket.
type remoteObject struct {
	key        string
	partition  int32
	baseOffset int64
	size       int64
}

// remoteLogObjects lists the .log objects of topic's remote range: per
// partition, those below localStart, which the broker serves from the
// bucket. Keys are <prefix>/<topic>-<topic id>/<partition>/<base offset>-<segment id>.log.
func remoteLogObjects(ctx context.Context, mc *minio.Client, topic string, localStart []int64) ([]remoteObject, error) {
	var objects []remoteObject
	bases := map[int32]map[int64]bool{}
	for info := range mc.ListObjects(ctx, tieredBucket, minio.ListObjectsOptions{Prefix: tieredPrefix + "/" + topic + "-", Recursive: true}) {
		if info.Err != nil {
			return nil, info.Err
		}
		if !strings.HasSuffix(info.Key, ".log") {
			continue
		}
		parts := strings.Split(info.Key, "/")
		partition, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", info.Key, err)
		}
		base, err := strconv.ParseInt(strings.SplitN(path.Base(info.Key), "-", 2)[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", info.Key, err)
		}
		if partition >= len(localStart) || base >= localStart[partition] {
			continue
		}
		if bases[int32(partition)] == nil {
			bases[int32(partition)] = map[int64]bool{}
		}
		if bases[int32(partition)][base] {
			return nil, fmt.Errorf("partition %d: two .log objects at base offset %d", partition, base)
		}
		bases[int32(partition)][base] = true
		objects = append(objects, remoteObject{key: info.Key, partition: int32(partition), baseOffset: base, size: info.Size})
	}
	for p, start := range localStart {
		if start > 0 && !bases[int32(p)][0] {
			return nil, fmt.Errorf("partition %d: no .log object at offset 0 below the local log start %d", p, start)
		}
	}
	if len(objects) == 0 {
		return nil, errors.New("nothing in the object store below the local log starts")
	}
	return objects, nil
}

// directRead reads objects with minio-go, one goroutine per partition
// front to back (a replaying consumer's order), whole objects when chunk
// is 0, else in chunk-sized ranged GETs, into io.Discard.
func directRead(ctx context.Context, mc *minio.Client, objects []remoteObject, chunk int64) (time.Duration, int, error) {
	byPartition := map[int32][]remoteObject{}
	for _, o := range objects {
		byPartition[o.partition] = append(byPartition[o.partition], o)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards gets and firstErr
		gets     int
		firstErr error
	)
	start := time.Now()
	for _, list := range byPartition {
		wg.Go(func() {
			// Listed in key order: zero-padded base offsets, front to back.
			for _, o := range list {
				ranges := [][2]int64{{0, o.size}}
				if chunk > 0 {
					ranges = ranges[:0]
					for offset := int64(0); offset < o.size; offset += chunk {
						ranges = append(ranges, [2]int64{offset, min(offset+chunk, o.size)})
					}
				}
				for _, r := range ranges {
					options := minio.GetObjectOptions{}
					if chunk > 0 {
						options.SetRange(r[0], r[1]-1)
					}
					n, err := getObject(ctx, mc, o.key, options)
					if err == nil && n != r[1]-r[0] {
						err = fmt.Errorf("read %s at %d: %d bytes, want %d", o.key, r[0], n, r[1]-r[0])
					}
					mu.Lock()
					gets++
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), gets, firstErr
}

func getObject(ctx context.Context, mc *minio.Client, key string, options minio.GetObjectOptions) (int64, error) {
	object, err := mc.GetObject(ctx, tieredBucket, key, options)
	if err != nil {
		return 0, err
	}
	defer object.Close()
	return io.Copy(io.Discard, object)
}

// metricSamples are a /metrics scrape: value by series as printed
// (name{label="value",...}).
type metricSamples map[string]float64

func scrapeMetrics(admin string) (metricSamples, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	samples := metricSamples{}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		space := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || space < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[space+1:], 64); err == nil {
			samples[line[:space]] = v
		}
	}
	return samples, scanner.Err()
}

// since returns every series' increase since before (counters; a series
// missing from before counts from 0).
func (m metricSamples) since(before metricSamples) metricSamples {
	increase := metricSamples{}
	for series, value := range m {
		increase[series] = value - before[series]
	}
	return increase
}

// waitCacheFiles waits (up to 60 s) until the broker's chunk cache
// directory holds the main topic's remote range (its files, each one or
// more chunks, as many bytes as the range's .log objects) and no file
// being written, and returns the number of files.
func (b *tieredBench) waitCacheFiles(ctx context.Context) (int, error) {
	dir := filepath.Join(b.dataDir, "remote-cache")
	for deadline := time.Now().Add(60 * time.Second); ; {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return 0, err
		}
		files, bytes, writing := 0, int64(0), false
		for _, e := range entries {
			switch name := e.Name(); {
			case strings.Contains(name, ".chunk.tmp"):
				writing = true
			case strings.HasSuffix(name, ".chunk"):
				files++
				if info, err := e.Info(); err == nil {
					bytes += info.Size()
				}
			}
		}
		if (bytes >= b.main.remoteBytes && !writing) || time.Now().After(deadline) {
			return files, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitIdle waits until process pid is idle (at most one clock tick of CPU
// in each of two consecutive 250 ms intervals, up to 30 s) and returns how
// long that took.
func waitIdle(ctx context.Context, pid int) (time.Duration, error) {
	began := time.Now()
	last, err := processCPU(pid)
	if err != nil {
		return 0, err
	}
	for quiet := 0; quiet < 2 && time.Since(began) < 30*time.Second; {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		now, err := processCPU(pid)
		if err != nil {
			return 0, err
		}
		if now-last <= 10*time.Millisecond {
			quiet++
		} else {
			quiet = 0
		}
		last = now
	}
	return time.Since(began), nil
}

// cpuProfile writes the broker's CPU profile over the next seconds to file.
func cpuProfile(admin, file string, seconds int) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/profile: %s", resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}
