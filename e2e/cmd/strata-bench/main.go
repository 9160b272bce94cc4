// Command strata-bench measures a Strata broker with a real Kafka client:
// produce throughput and latency (acks=1 and acks=all, 1 KiB records,
// 6 partitions) and consume throughput, next to the raw sequential write
// bandwidth of the same disk (fsync every 16 MiB) measured in the same run,
// so the figures can be compared as ratios on a noisy machine; and durable
// produce (flush.messages=1) as a ratio of page-cache produce, RF=1 here
// and RF=3 with --cluster, median of 3; and transactional produce (small
// transactions of 10 records, large ones of 10,000) as a ratio of
// idempotent produce, in the same run.
//
// It starts its own broker from $STRATA_BIN (or --bin) unless --brokers
// points at a running one. --cluster compares replication settings on
// three nodes; --tls compares an SSL listener with a PLAINTEXT one of the
// same broker (tls.go); --tiered measures replaying a tiered topic through the
// broker against reading the same objects directly from the object store
// (tiered.go).
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/internal/childproc"
)

func main() {
	var (
		bin        = flag.String("bin", os.Getenv("STRATA_BIN"), "strata binary to start (default $STRATA_BIN)")
		brokers    = flag.String("brokers", "", "use this running broker instead of starting one")
		dir        = flag.String("dir", "", "directory for the broker's data and the disk reference (default: a temp dir)")
		records    = flag.Int("records", 200_000, "records per produce run")
		recordSize = flag.Int("record-size", 1024, "value size in bytes")
		partitions = flag.Int("partitions", 0, "partitions of the benchmark topics (default 6, 3 with --tiered)")
		cluster    = flag.Bool("cluster", false, "start 3 nodes and compare RF=3 acks=all with RF=1 acks=1 in the same run")
		tiered     = flag.Bool("tiered", false, "tier a topic to an S3 server (versitygw) and replay it through the broker, cold and warm, next to direct S3 reads")
		tieredMiB  = flag.Int("tiered-mib", 512, "MiB produced to the tiered topic")
		segmentMiB = flag.Int("tiered-segment-mib", 32, "--tiered: segment.bytes of the tiered topics in MiB (local.retention.bytes: two segments); larger than the read-ahead window (8 MiB), so that replays cross segments mid-window")
		widePart   = flag.Int("tiered-partitions-wide", 64, "--tiered: partitions of the many-partition replay (0 skips it)")
		isoRate    = flag.Int("tiered-isolation-rate", 5000, "--tiered: records/s of the fixed-rate producer of the isolation phase")
		isoFor     = flag.Duration("tiered-isolation-duration", 6*time.Second, "--tiered: the longest the isolation phase's cold replays run; the producer's p99 during one is compared with its p99 over as long without one, half before it and half after")
		isoOnly    = flag.Bool("tiered-isolation-only", false, "--tiered: after the produce phase, run only the isolation phase (A/B runs of its figures)")
		connMiBps  = flag.Int("tiered-store-conn-mibps", 0, "--tiered: pace every connection from the S3 server to this many MiB/s (as one S3 connection delivers tens to about a hundred MB/s), through a proxy in this process; 0: not paced")
		isoQuota   = flag.String("tiered-isolation-quota-mib", "20,50", "--tiered: the broker's remote fetch quotas (--remote-log-manager-fetch-max-bytes-per-second, in MiB/s), comma-separated, for the isolation phase's throttled replays, one part each; the goal is checked on the first, the peer relay runs at its rate (empty skips them)")
		tlsOnly    = flag.Bool("tls", false, "produce and consume through an SSL listener next to a PLAINTEXT one of the same broker, in the same run")
		fixedChild = flag.String("fixed-rate-producer", "", "internal: run the isolation phase's fixed-rate producer in this process (brokers,topic,rate,size) until stdin closes")
		relayChild = flag.String("relay", "", "internal: run one process of the isolation phase's plain relay (source,ADDR,RATE,FILE, hop,NEXT,DIR or sink) until stdin closes")
	)
	flag.Parse()
	if *relayChild != "" {
		if err := runRelayChild(*relayChild); err != nil {
			fmt.Fprintln(os.Stderr, "strata-bench relay:", err)
			os.Exit(1)
		}
		return
	}
	if *fixedChild != "" {
		if err := runFixedRateChild(*fixedChild); err != nil {
			fmt.Fprintln(os.Stderr, "strata-bench fixed-rate producer:", err)
			os.Exit(1)
		}
		return
	}
	quotas, err := parseQuotas(*isoQuota)
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(2)
	}
	err = inDir(*dir, func(dir string) error {
		switch {
		case *tiered:
			return runTiered(*bin, dir, tieredOptions{mib: *tieredMiB, recordSize: *recordSize, partitions: cmp.Or(*partitions, 3),
				widePartitions: *widePart, isolationRate: *isoRate, isolationFor: *isoFor, isolationQuotasMiB: quotas, isolationOnly: *isoOnly, segmentMiB: *segmentMiB, storeConnMiBps: *connMiBps})
		case *tlsOnly:
			return runTLS(*bin, dir, *records, *recordSize, cmp.Or(*partitions, 6))
		case *cluster:
			return runCluster(*bin, dir, *records, *recordSize, cmp.Or(*partitions, 6))
		default:
			return run(*bin, *brokers, dir, *records, *recordSize, cmp.Or(*partitions, 6))
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
}

// inDir runs bench in dir, or in a temporary directory that it removes
// afterwards when dir is "".
func inDir(dir string, bench func(dir string) error) error {
	if dir != "" {
		return bench(dir)
	}
	temporary, err := os.MkdirTemp("", "strata-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(temporary)
	return bench(temporary)
}

func run(bin, brokers, dir string, records, recordSize, partitions int) error {
	diskMBs, err := diskBandwidth(dir, 512<<20)
	if err != nil {
		return fmt.Errorf("disk reference: %w", err)
	}
	if brokers == "" {
		if bin == "" {
			return errors.New("set --bin or $STRATA_BIN, or --brokers")
		}
		addr, stop, err := startBroker(bin, filepath.Join(dir, "data"), nil)
		if err != nil {
			return err
		}
		defer stop()
		brokers = addr
	}
	fmt.Printf("strata-bench: %d records of %d B (incompressible, uncompressed batches), %d partitions, broker %s\n", records, recordSize, partitions, brokers)
	fmt.Printf("throughput: one producer, async, linger 2ms; latency: one record at a time (request round trip)\n\n")
	fmt.Printf("%-28s %10s %12s %10s %10s %8s\n", "run", "MB/s", "records/s", "p50 ms", "p99 ms", "vs disk")
	fmt.Printf("%-28s %10.1f %12s %10s %10s %8s\n", "disk write (fsync/16MiB)", diskMBs, "-", "-", "-", "1.00")
	// Warm-up (not reported): the first run on a fresh broker pays for heap
	// growth and file creation that later runs do not.
	warm := fmt.Sprintf("bench-warmup-%d", time.Now().UnixNano())
	if err := createTopic(brokers, warm, partitions); err != nil {
		return err
	}
	if _, err := produce(brokers, warm, kgo.LeaderAck(), records/4, recordSize, nil); err != nil {
		return err
	}
	for _, acks := range []struct {
		name string
		opt  kgo.Acks
	}{{"acks=1", kgo.LeaderAck()}, {"acks=all", kgo.AllISRAcks()}} {
		topic := fmt.Sprintf("bench-%s-%d", acks.name[5:], time.Now().UnixNano())
		if err := createTopic(brokers, topic, partitions); err != nil {
			return err
		}
		res, err := produce(brokers, topic, acks.opt, records, recordSize, nil)
		if err != nil {
			return err
		}
		lat, err := latency(brokers, topic, acks.opt, recordSize, 3*time.Second)
		if err != nil {
			return err
		}
		fmt.Printf("%-28s %10.1f %12.0f %10.2f %10.2f %8.2f\n", "produce "+acks.name, res.mbs, res.rps, lat.p50, lat.p99, res.mbs/diskMBs)
		cres, err := consume(brokers, topic, records, nil)
		if err != nil {
			return err
		}
		fmt.Printf("%-28s %10.1f %12.0f %10s %10s %8.2f\n", "consume ("+acks.name+" topic)", cres.mbs, cres.rps, "-", "-", cres.mbs/diskMBs)
		rres, err := rawFetch(brokers, topic, partitions)
		if err != nil {
			return err
		}
		fmt.Printf("%-28s %10.1f %12s %10s %10s %8.2f\n", "raw fetch (no decoding)", rres.mbs, "-", "-", "-", rres.mbs/diskMBs)
	}
	if err := transactionalRatio(brokers, 1, partitions, records, recordSize); err != nil {
		return err
	}
	return durableRatio(brokers, 1, partitions, records, recordSize)
}

// diskBandwidth writes size bytes sequentially in 1 MiB writes with an fsync
// every 16 MiB and returns MB/s (10^6 bytes).
func diskBandwidth(dir string, size int) (float64, error) {
	f, err := os.CreateTemp(dir, "disk-reference")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for written := 0; written < size; written += len(buf) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if (written+len(buf))%(16<<20) == 0 {
			if err := f.Sync(); err != nil {
				return 0, err
			}
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return float64(size) / time.Since(start).Seconds() / 1e6, nil
}

func freePorts(n int) ([]string, error) {
	ports := make([]string, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = ln.Addr().String()
		ln.Close()
	}
	return ports, nil
}

// startBroker starts one node; ports, when given, are its client, admin
// and controller addresses, and extra flags follow.
func startBroker(bin, dataDir string, ports []string, extra ...string) (string, func(), error) {
	addr, _, stop, err := startBrokerProcess(bin, dataDir, ports, extra...)
	return addr, stop, err
}

// startBrokerProcess is startBroker that also returns the process (whose
// CPU time the TLS bench reads).
func startBrokerProcess(bin, dataDir string, ports []string, extra ...string) (string, *os.Process, func(), error) {
	if ports == nil {
		var err error
		if ports, err = freePorts(3); err != nil {
			return "", nil, nil, err
		}
	}
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", dataDir, "--listen", ports[0], "--admin-listen", ports[1], "--controller-listen", ports[2], "--log-level", "warn"}, extra...)...)
	cmd.Stderr = os.Stderr
	if err := childproc.Start(cmd); err != nil {
		return "", nil, nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + ports[1] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ports[0], cmd.Process, stop, nil
			}
		}
		time.Sleep(10 * time.Millisecond) // --tiered times restarts from readiness
	}
	stop()
	return "", nil, nil, errors.New("broker not ready after 60s")
}

func createTopic(brokers, topic string, partitions int) error {
	return createReplicatedTopic(brokers, topic, partitions, 1, nil)
}

func createReplicatedTopic(brokers, topic string, partitions, replicationFactor int, configs map[string]*string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), int16(replicationFactor), configs, topic)
	if err != nil {
		return err
	}
	return resp.Err
}

type result struct {
	mbs, rps, p50, p99 float64
}

// produce writes records values of recordSize incompressible bytes with one
// async producer; acked, when not nil, sees each acknowledged record
// (partition and offset set), one call at a time; extra options (TLS)
// follow the bench's.
func produce(brokers, topic string, acks kgo.Acks, records, recordSize int, acked func(*kgo.Record), extra ...kgo.Opt) (result, error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(acks),
		kgo.ProducerLinger(2 * time.Millisecond), kgo.MaxBufferedRecords(50_000),
		kgo.ProducerBatchCompression(kgo.NoCompression())}, extra...)
	if acks != kgo.AllISRAcks() {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	pool := randomBytes(4 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for i := 0; i < records; i++ {
		off := (i * 4099) % (len(pool) - recordSize)
		cl.Produce(ctx, &kgo.Record{Value: pool[off : off+recordSize]}, func(r *kgo.Record, err error) {
			if err == nil && acked == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = err
			case err == nil:
				acked(r)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return result{}, err
	}
	elapsed := time.Since(start)
	if firstErr != nil {
		return result{}, firstErr
	}
	return result{
		mbs: float64(records*recordSize) / elapsed.Seconds() / 1e6,
		rps: float64(records) / elapsed.Seconds(),
	}, nil
}

// latency produces one record at a time for d and reports the p50/p99 of
// the acknowledgement round trip.
func latency(brokers, topic string, acks kgo.Acks, recordSize int, d time.Duration) (result, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(acks),
		kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression())}
	if acks != kgo.AllISRAcks() {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	value := randomBytes(recordSize)
	var latencies []time.Duration
	for start := time.Now(); time.Since(start) < d; {
		sent := time.Now()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			return result{}, err
		}
		latencies = append(latencies, time.Since(sent))
	}
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return result{p50: ms(latencies[len(latencies)/2]), p99: ms(latencies[len(latencies)*99/100])}, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// consume reads topic from the log start until records records have
// arrived, decoding every record, 64 MiB per Fetch; each, when not nil,
// sees every record and stops the replay with its error; extra options
// (TLS) follow the bench's.
func consume(brokers, topic string, records int, each func(*kgo.Record) error, extra ...kgo.Opt) (result, error) {
	return consumeWith(brokers, topic, records, each, append([]kgo.Opt{kgo.FetchMaxBytes(64 << 20)}, extra...)...)
}

// consumeWith is consume with franz-go's default fetch sizes (50 MiB per
// Fetch, 1 MiB per partition, min bytes 1, max wait 5 s) unless opts
// change them.
func consumeWith(brokers, topic string, records int, each func(*kgo.Record) error, opts ...kgo.Opt) (result, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	n, bytes := 0, 0
	var eachErr error
	for n < records {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return result{}, fmt.Errorf("consumed %d of %d", n, records)
		}
		for _, e := range fs.Errors() {
			// A retriable error (a partition not served yet after a
			// restart: --tiered) the client retries by itself.
			if !kerr.IsRetriable(e.Err) {
				return result{}, e.Err
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			bytes += len(r.Value)
			if each != nil && eachErr == nil {
				eachErr = each(r)
			}
		})
		if eachErr != nil {
			return result{}, eachErr
		}
	}
	elapsed := time.Since(start)
	return result{mbs: float64(bytes) / elapsed.Seconds() / 1e6, rps: float64(n) / elapsed.Seconds()}, nil
}

// rawFetch reads every partition to its end with plain Fetch requests and
// does not decode the records: the broker's fetch path without a client's
// record decoding in the way.
func rawFetch(brokers, topic string, partitions int) (result, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return result{}, err
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return result{}, err
	}
	offsets := make([]int64, partitions)
	done := 0
	total := 0
	start := time.Now()
	for done < partitions {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 11
		req.ReplicaID = -1
		req.MaxBytes = 64 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rt.TopicID = details[topic].ID // the client may pick Fetch v13, which names topics by id
		for p := range partitions {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = int32(p)
			rp.FetchOffset = offsets[p]
			rp.PartitionMaxBytes = 8 << 20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return result{}, err
		}
		done = 0
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 {
				return result{}, fmt.Errorf("fetch partition %d: error %d", p.Partition, p.ErrorCode)
			}
			total += len(p.RecordBatches)
			offsets[p.Partition] = nextOffset(p.RecordBatches, offsets[p.Partition])
			end, _ := ends.Lookup(topic, p.Partition)
			if offsets[p.Partition] >= end.Offset {
				done++
			}
		}
	}
	return result{mbs: float64(total) / time.Since(start).Seconds() / 1e6}, nil
}

// nextOffset returns the offset after the last whole batch in b.
func nextOffset(b []byte, current int64) int64 {
	for len(b) >= 61 {
		base := int64(binary.BigEndian.Uint64(b[0:]))
		length := int(binary.BigEndian.Uint32(b[8:]))
		lastDelta := int64(binary.BigEndian.Uint32(b[23:]))
		if 12+length > len(b) {
			break
		}
		current = base + lastDelta + 1
		b = b[12+length:]
	}
	return current
}

// runCluster starts three nodes (brokers and metadata voters) and measures
// produce throughput and latency of RF=1 acks=1 next to RF=3 acks=all
// (acknowledged once every in-sync replica has the write), in the same run.
func runCluster(bin, dir string, records, recordSize, partitions int) error {
	if bin == "" {
		return errors.New("set --bin or $STRATA_BIN")
	}
	ports, err := freePorts(9)
	if err != nil {
		return err
	}
	quorum := fmt.Sprintf("1@%s,2@%s,3@%s", ports[2], ports[5], ports[8])
	secret := filepath.Join(dir, "cluster.secret")
	if out, err := exec.Command(bin, "format", "--generate-cluster-secret", secret).CombinedOutput(); err != nil {
		return fmt.Errorf("generate the cluster secret: %v: %s", err, out)
	}
	type started struct {
		addr string
		stop func()
		err  error
	}
	results := make([]started, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			addr, stop, err := startBroker(bin, filepath.Join(dir, fmt.Sprintf("data-%d", i+1)), ports[3*i:3*i+3],
				"--node-id", fmt.Sprint(i+1), "--cluster-id", "bench", "--controller-quorum", quorum, "--cluster-secret-file", secret)
			results[i] = started{addr, stop, err}
		})
	}
	wg.Wait()
	var seeds []string
	for _, r := range results {
		if r.err != nil {
			return r.err
		}
		defer r.stop()
		seeds = append(seeds, r.addr)
	}
	brokers := seeds[0]
	fmt.Printf("strata-bench --cluster: 3 nodes, %d records of %d B, %d partitions\n\n", records, recordSize, partitions)
	fmt.Printf("%-28s %10s %12s %10s %10s %8s\n", "run", "MB/s", "records/s", "p50 ms", "p99 ms", "vs RF=1")
	var base float64
	for _, run := range []struct {
		name string
		rf   int
		acks kgo.Acks
	}{{"produce RF=1 acks=1", 1, kgo.LeaderAck()}, {"produce RF=3 acks=all", 3, kgo.AllISRAcks()}} {
		topic := fmt.Sprintf("bench-rf%d-%d", run.rf, time.Now().UnixNano())
		if err := createReplicatedTopic(brokers, topic, partitions, run.rf, nil); err != nil {
			return err
		}
		time.Sleep(time.Second) // followers start fetching
		res, err := produce(brokers, topic, run.acks, records, recordSize, nil)
		if err != nil {
			return err
		}
		lat, err := latency(brokers, topic, run.acks, recordSize, 3*time.Second)
		if err != nil {
			return err
		}
		if base == 0 {
			base = res.mbs
		}
		fmt.Printf("%-28s %10.1f %12.0f %10.2f %10.2f %8.2f\n", run.name, res.mbs, res.rps, lat.p50, lat.p99, res.mbs/base)
	}
	if err := transactionalRatio(brokers, 3, partitions, records, recordSize); err != nil {
		return err
	}
	if err := durableRatio(brokers, 3, partitions, records, recordSize); err != nil {
		return err
	}
	return topicChanges(seeds)
}

// topicChangeRounds is how many topics topicChanges creates and deletes.
const topicChangeRounds = 100

// topicChangeLimit is what a user may expect of one CreateTopics or
// DeleteTopics on a loopback cluster, answered only once every broker
// lists the change.
const topicChangeLimit = time.Second

// topicChanges times CreateTopics and DeleteTopics (RF=3, 3 partitions)
// and checks, after each, that every broker's first Metadata answer agrees
// (all partitions with leaders; then no topic), so the figures are of
// changes a client can act on.
func topicChanges(seeds []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	visible := func(topic string, want int) error {
		for id := int32(1); id <= int32(len(seeds)); id++ {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
			if err != nil {
				return err
			}
			listed := 0
			for _, p := range resp.Topics[0].Partitions {
				if p.ErrorCode == 0 && p.Leader >= 0 {
					listed++
				}
			}
			if listed != want {
				return fmt.Errorf("broker %d lists %d of %d partitions of %s with a leader right after the change", id, listed, want, topic)
			}
		}
		return nil
	}
	var creates, deletes []float64
	for i := range topicChangeRounds {
		topic := fmt.Sprintf("bench-topic-change-%d-%d", i, time.Now().UnixNano())
		start := time.Now()
		if resp, err := adm.CreateTopic(ctx, 3, 3, nil, topic); err != nil || resp.Err != nil {
			return fmt.Errorf("create %s: %v %v", topic, err, resp.Err)
		}
		creates = append(creates, float64(time.Since(start))/float64(time.Millisecond))
		if err := visible(topic, 3); err != nil {
			return err
		}
		start = time.Now()
		if resp, err := adm.DeleteTopic(ctx, topic); err != nil || resp.Err != nil {
			return fmt.Errorf("delete %s: %v %v", topic, err, resp.Err)
		}
		deletes = append(deletes, float64(time.Since(start))/float64(time.Millisecond))
		if err := visible(topic, 0); err != nil {
			return err
		}
	}
	limit := float64(topicChangeLimit) / float64(time.Millisecond)
	fmt.Printf("\n%d topic changes (RF=3, 3 partitions), answered once every broker lists them; limit %v\n", topicChangeRounds, topicChangeLimit)
	fmt.Printf("%-28s %10s %10s %10s %14s\n", "request", "p50 ms", "p99 ms", "max ms", "p99 / limit")
	for _, r := range []struct {
		name string
		ms   []float64
	}{{"CreateTopics", creates}, {"DeleteTopics", deletes}} {
		sort.Float64s(r.ms)
		p50, p99 := r.ms[len(r.ms)/2], r.ms[len(r.ms)*99/100]
		fmt.Printf("%-28s %10.1f %10.1f %10.1f %14.2f\n", r.name, p50, p99, r.ms[len(r.ms)-1], p99/limit)
	}
	return nil
}

// durableRounds is how many times durableRatio measures each mode; it
// reports the medians.
const durableRounds = 3

// durableGoal is the target for durable produce throughput, as a
// share of page-cache produce (not a gate: the machine may be shared).
const durableGoal = 0.75

// durableRatio measures produce throughput (acks=all) into topics of
// replication factor rf in the default page-cache mode and in the durable
// mode (flush.messages=1: acknowledged once fsynced on every in-sync
// replica), alternating, durableRounds times each, and prints the medians,
// the latency of one record at a time, and their ratio.
func durableRatio(brokers string, rf, partitions, records, recordSize int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	modes := []struct {
		name    string
		configs map[string]*string
	}{{"page cache", nil}, {"durable", map[string]*string{"flush.messages": kmsg.StringPtr("1")}}}
	throughput := make([][]float64, len(modes))
	latencies := make([]result, len(modes))
	for round := range durableRounds {
		for m, mode := range modes {
			topic := fmt.Sprintf("bench-durable-%d-rf%d-%d", m, rf, time.Now().UnixNano())
			if err := createReplicatedTopic(brokers, topic, partitions, rf, mode.configs); err != nil {
				return err
			}
			if rf > 1 {
				time.Sleep(time.Second) // followers start fetching
			}
			res, err := produce(brokers, topic, kgo.AllISRAcks(), records, recordSize, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", mode.name, err)
			}
			throughput[m] = append(throughput[m], res.mbs)
			if round == durableRounds-1 {
				if latencies[m], err = latency(brokers, topic, kgo.AllISRAcks(), recordSize, 3*time.Second); err != nil {
					return fmt.Errorf("%s: %w", mode.name, err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err = adm.DeleteTopic(ctx, topic) // frees the disk for the next round
			cancel()
			if err != nil {
				return err
			}
		}
	}
	fmt.Printf("\ndurable acknowledgement (flush.messages=1) vs page cache: RF=%d acks=all, median of %d runs each (goal: durable >= %.2fx)\n", rf, durableRounds, durableGoal)
	fmt.Printf("%-28s %10s %12s %10s %10s %14s\n", "run", "MB/s", "records/s", "p50 ms", "p99 ms", "vs page cache")
	base := 0.0
	for m, mode := range modes {
		sort.Float64s(throughput[m])
		median := throughput[m][len(throughput[m])/2]
		if base == 0 {
			base = median
		}
		fmt.Printf("%-28s %10.1f %12.0f %10.2f %10.2f %14.2f\n", fmt.Sprintf("produce RF=%d %s", rf, mode.name), median, median*1e6/float64(recordSize),
			latencies[m].p50, latencies[m].p99, median/base)
	}
	return nil
}

// smallTxnRecords caps the records of the small-transaction run: each
// transaction of 10 records waits for its commit, so the run is bound by
// round trips, not bytes.
const smallTxnRecords = 20_000

// transactionalRatio measures transactional produce (acks=all, one
// producer, transactions of 10 and of 10,000 records, each committed)
// next to idempotent produce (acks=all) into topics of replication factor
// rf, in the same run, and prints their ratio.
func transactionalRatio(brokers string, rf, partitions, records, recordSize int) error {
	runs := []struct {
		name    string
		perTxn  int // 0: idempotent, no transactions
		records int
	}{
		{"idempotent", 0, records},
		{"txn of 10 records", 10, min(records, smallTxnRecords)},
		{"txn of 10,000 records", 10_000, records},
	}
	fmt.Printf("\ntransactional vs idempotent produce: RF=%d acks=all, one producer\n", rf)
	fmt.Printf("%-28s %10s %12s %10s %14s\n", "run", "MB/s", "records/s", "records", "vs idempotent")
	base := 0.0
	for _, run := range runs {
		topic := fmt.Sprintf("bench-txn-%d-rf%d-%d", run.perTxn, rf, time.Now().UnixNano())
		if err := createReplicatedTopic(brokers, topic, partitions, rf, nil); err != nil {
			return err
		}
		if rf > 1 {
			time.Sleep(time.Second) // followers start fetching
		}
		var res result
		var err error
		if run.perTxn == 0 {
			res, err = produce(brokers, topic, kgo.AllISRAcks(), run.records, recordSize, nil)
		} else {
			res, err = produceTransactions(brokers, topic, run.records, run.perTxn, recordSize)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", run.name, err)
		}
		if base == 0 {
			base = res.mbs
		}
		fmt.Printf("%-28s %10.1f %12.0f %10d %14.2f\n", "produce "+run.name, res.mbs, res.rps, run.records, res.mbs/base)
	}
	return nil
}

// produceTransactions writes records values of recordSize incompressible
// bytes with one transactional producer, perTxn records per transaction,
// committing each (flush, then EndTxn) before the next begins.
func produceTransactions(brokers, topic string, records, perTxn, recordSize int) (result, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(50_000), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.TransactionalID(fmt.Sprintf("bench-%s", topic)), kgo.TransactionTimeout(time.Minute))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	pool := randomBytes(4 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for sent := 0; sent < records; {
		if err := cl.BeginTransaction(); err != nil {
			return result{}, err
		}
		for i := 0; i < perTxn && sent < records; i, sent = i+1, sent+1 {
			off := (sent * 4099) % (len(pool) - recordSize)
			cl.Produce(ctx, &kgo.Record{Value: pool[off : off+recordSize]}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			return result{}, err
		}
		mu.Lock()
		err := firstErr
		mu.Unlock()
		if err != nil {
			return result{}, err
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return result{}, fmt.Errorf("commit: %w", err)
		}
	}
	elapsed := time.Since(start)
	return result{
		mbs: float64(records*recordSize) / elapsed.Seconds() / 1e6,
		rps: float64(records) / elapsed.Seconds(),
	}, nil
}

// parseQuotas parses --tiered-isolation-quota-mib: MiB/s values,
// comma-separated, each above 0 (empty: none).
func parseQuotas(list string) ([]int, error) {
	var quotas []int
	for field := range strings.SplitSeq(list, ",") {
		if field = strings.TrimSpace(field); field == "" {
			continue
		}
		quota, err := strconv.Atoi(field)
		if err != nil || quota <= 0 {
			return nil, fmt.Errorf("--tiered-isolation-quota-mib: %q is not a quota in MiB/s above 0", field)
		}
		quotas = append(quotas, quota)
	}
	return quotas, nil
}
