//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/tiering"
)

// envMiB reads a size knob in MiB from the environment.
func envMiB(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// tieredCluster is a 3-node cluster tiering to one versitygw bucket.
type tieredCluster struct {
	*cluster
	s3     *s3Fixture
	prefix string
}

type s3Fixture struct {
	server interface {
		Close() error
		Restart() error
	}
	url    string
	bucket string
	mc     *minio.Client
}

func startTieredCluster(t *testing.T) *tieredCluster {
	server := startS3(t)
	fx := &s3Fixture{server: server, url: server.URL("strata-e2e"), bucket: "strata-e2e", mc: minioClient(t, server)}
	prefix := fmt.Sprintf("cluster-%d", time.Now().UnixNano()%1_000_000)
	c := startClusterWith(t, 3, func(id int32, b *brokerProcess) (string, []string) {
		return "", []string{"--object-store", fx.url, "--object-store-prefix", prefix,
			"--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300"}
	})
	return &tieredCluster{cluster: c, s3: fx, prefix: prefix}
}

// bucketLogs lists the .log objects of a topic with minio-go.
func (tc *tieredCluster) bucketLogs(t *testing.T, topic string) (objects int, size int64) {
	return listLogObjects(t, tc.s3.mc, tc.s3.bucket, tc.prefix+"/"+topic+"-")
}

// snapshotLogStart returns the log start offset in the newest manifest
// snapshot object of the topic's partition 0 in the bucket (-1: none).
func (tc *tieredCluster) snapshotLogStart(t *testing.T, topic string) int64 {
	t.Helper()
	newest := ""
	for obj := range tc.s3.mc.ListObjects(context.Background(), tc.s3.bucket, minio.ListObjectsOptions{Prefix: tc.prefix + "/" + topic + "-", Recursive: true}) {
		if strings.Contains(obj.Key, "/0/manifest-") && obj.Key > newest {
			newest = obj.Key
		}
	}
	if newest == "" {
		return -1
	}
	object, err := tc.s3.mc.GetObject(context.Background(), tc.s3.bucket, newest, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer object.Close()
	data, err := io.ReadAll(object)
	if err != nil {
		return -1 // replaced meanwhile
	}
	snapshot, err := tiering.UnmarshalManifestSnapshot(newest, data)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot.LogStartOffset
}

// offsets answers ListOffsets with a special timestamp for partition 0.
func offsetAt(t *testing.T, seeds []string, topic string, timestamp int64) int64 {
	t.Helper()
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...))
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = timestamp
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	shards := cl.RequestSharded(testContext(t, 30*time.Second), req)
	for _, shard := range shards {
		if shard.Err != nil {
			t.Fatalf("ListOffsets %d: %v", timestamp, shard.Err)
		}
		p := shard.Resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("ListOffsets %d: error %d", timestamp, p.ErrorCode)
		}
		return p.Offset
	}
	t.Fatal("ListOffsets: no answer")
	return 0
}

func leaderOf(t *testing.T, adm *kadm.Client, topic string) (leader int32, isr []int32) {
	t.Helper()
	m, err := adm.Metadata(testContext(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Topics[topic].Partitions[0]
	return p.Leader, p.ISR
}

// scrub runs `strata tiering scrub` against a node and returns its output
// and whether it found the bucket clean.
func scrub(t *testing.T, b *brokerProcess) (string, bool) {
	t.Helper()
	out, err := exec.Command(strataBin, "tiering", "scrub", "--admin", b.admin).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
		return string(out), false
	}
	return string(out), true
}

// TestTieringLargeCluster: ≥ 1 GiB (STRATA_E2E_TIER_MIB) through a 3-node
// cluster at RF=3 with 4 MiB segments and a 16 MiB local window: every
// node's local log stays bounded, the bucket holds the rest, a consumer
// from offset 0 reads every record byte-identical and in order, and
// ListOffsets by timestamp lands in remote data.
func TestTieringLargeCluster(t *testing.T) {
	tc := startTieredCluster(t)
	totalMiB := envMiB("STRATA_E2E_TIER_MIB", 1024)
	const (
		recordSize   = 16 << 10
		segmentBytes = 4 << 20
		localBytes   = 16 << 20
	)
	records := totalMiB << 20 / recordSize
	adm := tc.admin()
	topic := uniqueTopic(t)
	if r := createOne(t, adm, 1, 3, tieredTopicConfigs(segmentBytes, localBytes), topic); r.Err != nil {
		t.Fatalf("create %s: %v %s", topic, r.Err, r.ErrMessage)
	}
	g := tierGen{topic: topic, size: recordSize, base: time.Now().Add(-100 * 24 * time.Hour).Truncate(time.Millisecond)}
	cl := tc.client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequiredAcks(kgo.AllISRAcks()))
	start := time.Now()
	g.produce(t, cl, 0, records)
	t.Logf("produced %d MiB at RF=3 acks=all in %v", totalMiB, time.Since(start).Round(time.Millisecond))

	total := int64(records) * recordSize
	eventually(t, 3*time.Minute, "every node's local log within the local window, the bucket holding the rest", func() error {
		for id, b := range tc.nodes {
			if local := localLogBytes(t, b.dataDir, topic, 0); local > localBytes+3*segmentBytes {
				return fmt.Errorf("node %d holds %d bytes locally", id, local)
			}
		}
		if objects, size := tc.bucketLogs(t, topic); size < total-localBytes-3*segmentBytes {
			return fmt.Errorf("bucket holds %d .log objects, %d of %d bytes", objects, size, total)
		}
		return nil
	})
	t.Logf("tiered in %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	g.requireReplay(t, tc.seeds(), 0, records)
	t.Logf("replayed %d MiB from offset 0 in %v", totalMiB, time.Since(start).Round(time.Millisecond))

	// Record 1000 is deep in the remote data.
	byTime, err := adm.ListOffsetsAfterMilli(testContext(t, 30*time.Second), g.base.Add(1000*time.Second-300*time.Millisecond).UnixMilli(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := byTime.Lookup(topic, 0); o.Err != nil || o.Offset != 1000 {
		t.Fatalf("offset for the timestamp of record 1000: %+v", o)
	}
	if earliest, local := offsetAt(t, tc.seeds(), topic, -2), offsetAt(t, tc.seeds(), topic, -4); earliest != 0 || local <= 1000 {
		t.Fatalf("earliest offset %d (want 0), earliest local %d (want past the remote data)", earliest, local)
	}
	if out, clean := scrub(t, tc.nodes[1]); !clean {
		t.Fatalf("scrub after the large run:\n%s", out)
	}
}

// TestTieringFaults runs the fault scenarios on one 3-node cluster, one
// topic each: a leader killed while uploads are in flight, the object store
// down during production, an empty replacement replica, uploads switched
// off and on, remote retention, recovery from the bucket into a fresh
// cluster, and scrub finding an object deleted behind Strata's back.
func TestTieringFaults(t *testing.T) {
	tc := startTieredCluster(t)
	const (
		recordSize   = 8 << 10
		segmentBytes = 1 << 20
		localBytes   = 4 << 20
	)
	perMiB := (1 << 20) / recordSize
	adm := tc.admin()
	newTopic := func(t *testing.T) (tierGen, *kgo.Client) {
		topic := legalTopic(t)
		if r := createOne(t, adm, 1, 3, tieredTopicConfigs(segmentBytes, localBytes), topic); r.Err != nil {
			t.Fatalf("create %s: %v %s", topic, r.Err, r.ErrMessage)
		}
		g := tierGen{topic: topic, size: recordSize, base: time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond)}
		cl := tc.client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchMaxBytes(256<<10), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequiredAcks(kgo.AllISRAcks()))
		return g, cl
	}
	// tieredUpTo waits until the remote log covers at least offset.
	tieredUpTo := func(t *testing.T, g tierGen, offset int) {
		t.Helper()
		eventually(t, 2*time.Minute, fmt.Sprintf("remote log reaching offset %d", offset), func() error {
			if end := offsetAt(t, tc.seeds(), g.topic, -5); end < int64(offset) {
				return fmt.Errorf("remote log ends at %d", end)
			}
			return nil
		})
	}
	requireClean := func(t *testing.T) {
		t.Helper()
		eventually(t, time.Minute, "scrub finding the bucket and the manifest in agreement", func() error {
			if out, clean := scrub(t, tc.nodes[1]); !clean {
				return fmt.Errorf("%s", out)
			}
			return nil
		})
	}

	t.Run("leader killed during uploads", func(t *testing.T) {
		g, cl := newTopic(t)
		g.produce(t, cl, 0, 30*perMiB)
		leader, _ := leaderOf(t, adm, g.topic)
		tc.nodes[leader].kill() // uploads of the last segments are in flight
		g.produce(t, cl, 30*perMiB, 60*perMiB)
		tc.nodes[leader].restart(t)
		tieredUpTo(t, g, 50*perMiB)
		g.requireReplay(t, tc.seeds(), 0, 60*perMiB)
		requireClean(t)
	})

	t.Run("object store down during production", func(t *testing.T) {
		g, cl := newTopic(t)
		g.produce(t, cl, 0, 10*perMiB)
		tieredUpTo(t, g, 5*perMiB)
		leader, _ := leaderOf(t, adm, g.topic)
		tc.s3.server.Close()
		down := true
		defer func() {
			if down { // the next subtests need the object store
				tc.s3.server.Restart()
			}
		}()
		g.produce(t, cl, 10*perMiB, 50*perMiB) // acknowledged while uploads fail
		eventually(t, time.Minute, "the leader reporting failed uploads and a backlog", func() error {
			failures := metricOrZero(t, tc.nodes[leader], fmt.Sprintf(`strata_tiering_task_failures_total{topic=%q}`, g.topic))
			lag := metricOrZero(t, tc.nodes[leader], fmt.Sprintf(`strata_tiering_upload_lag_bytes{partition="0",topic=%q}`, g.topic))
			if failures == 0 || lag < 10<<20 {
				return fmt.Errorf("failures %v, lag %v bytes", failures, lag)
			}
			return nil
		})
		// Reading remote data answers a retriable error, never wrong data.
		rc := dialRaw(t, tc.nodes[leader].addr)
		fetched := rc.roundTrip(fetchRequest(g.topic, 0, 1, 1<<20, map[int32]int64{0: 0}, 1<<20)).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if fetched.ErrorCode != kerr.KafkaStorageError.Code || len(fetched.RecordBatches) != 0 {
			t.Fatalf("fetch of remote data during the outage: error %d with %d bytes, want KAFKA_STORAGE_ERROR and nothing", fetched.ErrorCode, len(fetched.RecordBatches))
		}
		// Nothing left local disk that is not uploaded.
		if local := localLogBytes(t, tc.nodes[leader].dataDir, g.topic, 0); local < 25<<20 {
			t.Fatalf("leader holds %d bytes locally during the outage; un-uploaded data must stay", local)
		}
		if err := tc.s3.server.Restart(); err != nil {
			t.Fatal(err)
		}
		down = false
		tieredUpTo(t, g, 45*perMiB)
		g.requireReplay(t, tc.seeds(), 0, 50*perMiB)
		requireClean(t)
	})

	t.Run("empty replacement replica", func(t *testing.T) {
		g, cl := newTopic(t)
		g.produce(t, cl, 0, 50*perMiB)
		tieredUpTo(t, g, 40*perMiB)
		leader, _ := leaderOf(t, adm, g.topic)
		replaced := int32(1)
		if replaced == leader {
			replaced = 2
		}
		b := tc.nodes[replaced]
		b.kill()
		if err := os.RemoveAll(filepath.Join(b.dataDir, g.topic+"-0")); err != nil {
			t.Fatal(err)
		}
		b.restart(t)
		g.produce(t, cl, 50*perMiB, 55*perMiB)
		// A restart on the same data dir is admitted at once (no waiting
		// for the killed process's session to end), so the replica may
		// not have fetched yet when this starts checking: the log line is
		// waited for too (kadm's metadata is cached for up to 5 s).
		eventually(t, 2*time.Minute, "the empty replica back in the ISR holding only the hot window", func() error {
			_, isr := leaderOf(t, adm, g.topic)
			if !containsID(isr, replaced) {
				return fmt.Errorf("ISR %v", isr)
			}
			if local := localLogBytes(t, b.dataDir, g.topic, 0); local > localBytes+4*segmentBytes {
				return fmt.Errorf("replica copied %d bytes", local)
			}
			if !b.logContains("follower starts from the leader's local log") {
				return fmt.Errorf("the replica did not start from the leader's local log")
			}
			return nil
		})
		// The replacement leads and serves the whole history.
		tc.nodes[leader].kill()
		g.requireReplay(t, tc.seeds(leader), 0, 55*perMiB)
		tc.nodes[leader].restart(t)
	})

	t.Run("remote.log.copy.disable off and on", func(t *testing.T) {
		g, cl := newTopic(t)
		g.produce(t, cl, 0, 10*perMiB)
		tieredUpTo(t, g, 5*perMiB)
		alter := func(value string) {
			resps, err := adm.AlterTopicConfigs(testContext(t, 30*time.Second), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "remote.log.copy.disable", Value: &value}}, g.topic)
			if err := alterErr(t, resps, err, g.topic); err != nil {
				t.Fatal(err)
			}
		}
		alter("true")
		time.Sleep(time.Second) // an upload in flight finishes
		frozen := offsetAt(t, tc.seeds(), g.topic, -5)
		g.produce(t, cl, 10*perMiB, 20*perMiB)
		time.Sleep(2 * time.Second)
		if end := offsetAt(t, tc.seeds(), g.topic, -5); end != frozen {
			t.Fatalf("uploads went on with remote.log.copy.disable=true: remote end %d → %d", frozen, end)
		}
		g.requireReplay(t, tc.seeds(), 0, 20*perMiB) // remote data stays readable
		alter("false")
		tieredUpTo(t, g, 15*perMiB)
		g.requireReplay(t, tc.seeds(), 0, 20*perMiB)
		requireClean(t)
	})

	t.Run("retention deletes remote segments", func(t *testing.T) {
		g, cl := newTopic(t)
		g.produce(t, cl, 0, 20*perMiB)
		tieredUpTo(t, g, 15*perMiB)
		before, _ := tc.bucketLogs(t, g.topic)
		value := fmt.Sprint(8 << 20)
		resps, err := adm.AlterTopicConfigs(testContext(t, 30*time.Second), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.bytes", Value: &value}}, g.topic)
		if err := alterErr(t, resps, err, g.topic); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "remote segments past retention.bytes deleted", func() error {
			objects, size := tc.bucketLogs(t, g.topic)
			if earliest := offsetAt(t, tc.seeds(), g.topic, -2); earliest < 10*int64(perMiB) || objects >= before || size > 8<<20 {
				return fmt.Errorf("earliest offset %d, %d .log objects (%d before), %d bytes", earliest, objects, before, size)
			}
			return nil
		})
		earliest := int(offsetAt(t, tc.seeds(), g.topic, -2))
		g.requireReplay(t, tc.seeds(), earliest, 20*perMiB)
		requireClean(t)
	})

	t.Run("deleting the topic deletes its objects", func(t *testing.T) {
		g, cl := newTopic(t)
		g.produce(t, cl, 0, 5*perMiB)
		tieredUpTo(t, g, 2*perMiB)
		if r := deleteOne(t, adm, g.topic); r.Err != nil {
			t.Fatal(r.Err)
		}
		eventually(t, time.Minute, "the deleted topic's objects gone from the bucket", func() error {
			n := 0
			for obj := range tc.s3.mc.ListObjects(context.Background(), tc.s3.bucket, minio.ListObjectsOptions{Prefix: tc.prefix + "/" + g.topic + "-", Recursive: true}) {
				if obj.Err != nil {
					return obj.Err
				}
				n++
			}
			if n > 0 {
				return fmt.Errorf("%d objects left", n)
			}
			return nil
		})
	})

	t.Run("scrub finds an object deleted behind Strata's back", func(t *testing.T) {
		g, cl := newTopic(t)
		g.produce(t, cl, 0, 8*perMiB)
		tieredUpTo(t, g, 2*perMiB)
		eventually(t, time.Minute, "offset 0 gone from local disk", func() error {
			if start := offsetAt(t, tc.seeds(), g.topic, -4); start == 0 {
				return fmt.Errorf("local log still starts at 0")
			}
			return nil
		})
		// The first segment's offset index (base offset 0), never read yet.
		var victim string
		for obj := range tc.s3.mc.ListObjects(context.Background(), tc.s3.bucket, minio.ListObjectsOptions{Prefix: tc.prefix + "/" + g.topic + "-", Recursive: true}) {
			if strings.HasSuffix(obj.Key, ".index") && strings.Contains(obj.Key, "/00000000000000000000-") {
				victim = obj.Key
				break
			}
		}
		if victim == "" {
			t.Fatal("no .index object in the bucket")
		}
		if err := tc.s3.mc.RemoveObject(context.Background(), tc.s3.bucket, victim, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		out, clean := scrub(t, tc.nodes[2])
		if clean || !strings.Contains(out, "MISSING") || !strings.Contains(out, victim) {
			t.Fatalf("scrub after deleting %s (clean %v):\n%s", victim, clean, out)
		}
		// A consumer reading inside that segment gets a retriable error, no
		// data (from its base offset a read starts at byte 0 and needs no
		// index).
		leader, _ := leaderOf(t, adm, g.topic)
		fetched := dialRaw(t, tc.nodes[leader].addr).roundTrip(fetchRequest(g.topic, 0, 1, 1<<20, map[int32]int64{0: 1}, 1<<20)).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if fetched.ErrorCode != kerr.KafkaStorageError.Code || len(fetched.RecordBatches) != 0 {
			t.Fatalf("fetch of a segment whose index was deleted: error %d with %d bytes, want KAFKA_STORAGE_ERROR and nothing", fetched.ErrorCode, len(fetched.RecordBatches))
		}
	})

	t.Run("recovery from the bucket into a fresh cluster", func(t *testing.T) {
		g, cl := newTopic(t)
		g.produce(t, cl, 0, 20*perMiB)
		tieredUpTo(t, g, 15*perMiB)
		// A pass commits uploads in the Raft manifest and then writes the
		// partition's manifest snapshot to the bucket, which is what a
		// recovery from the bucket alone reads: once the remote end has
		// stopped moving, the snapshot names it.
		uploaded := int(untilStill(func() int64 { return offsetAt(t, tc.seeds(), g.topic, -5) }, func(a, b int64) bool { return a == b }))
		// DeleteRecords into the remote data: the next pass rewrites the
		// snapshot with the new log start, and the records below it stay
		// deleted in the recovered cluster.
		logStart := int64(3*perMiB + 7)
		offsets := kadm.Offsets{}
		offsets.AddOffset(g.topic, 0, logStart, -1)
		if deleted, err := adm.DeleteRecords(testContext(t, 30*time.Second), offsets); err != nil {
			t.Fatal(err)
		} else if r, _ := deleted.Lookup(g.topic, 0); r.Err != nil || r.LowWatermark != logStart {
			t.Fatalf("DeleteRecords before %d: low watermark %d, %v", logStart, r.LowWatermark, r.Err)
		}
		eventually(t, 30*time.Second, "the manifest snapshot holds the log start", func() error {
			if got := tc.snapshotLogStart(t, g.topic); got != logStart {
				return fmt.Errorf("log start %d in the bucket's manifest snapshot, want %d", got, logStart)
			}
			return nil
		})
		fresh := startBroker(t, "--object-store", tc.s3.url, "--object-store-prefix", tc.prefix, "--remote-log-manager-task-interval-ms", "200")
		out, err := exec.Command(strataBin, "tiering", "recover", "--admin", fresh.admin).CombinedOutput()
		if err != nil {
			t.Fatalf("strata tiering recover: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), g.topic+"-0") || !strings.Contains(string(out), "recovery finished") {
			t.Fatalf("recover output lacks the topic or the end:\n%s", out)
		}
		t.Logf("recover:\n%s", out)
		// The fresh one has at least what the bucket named before the
		// recovery started.
		remoteEnd := int(offsetAt(t, []string{fresh.addr}, g.topic, -5))
		if remoteEnd < uploaded {
			t.Fatalf("recovered up to offset %d, the bucket held %d before", remoteEnd, uploaded)
		}
		if earliest := offsetAt(t, []string{fresh.addr}, g.topic, -2); earliest != logStart {
			t.Fatalf("recovered partition's earliest offset %d, want the log start %d DeleteRecords set", earliest, logStart)
		}
		g.requireReplay(t, []string{fresh.addr}, int(logStart), remoteEnd+1)
		// New records continue after the recovered ones.
		fcl := newClient(t, fresh.addr, kgo.DefaultProduceTopic(g.topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		r := fcl.ProduceSync(testContext(t, 30*time.Second), &kgo.Record{Value: []byte("after recovery")})
		if err := r.FirstErr(); err != nil {
			t.Fatal(err)
		}
		if rec, _ := r.First(); rec.Offset != int64(remoteEnd+1) {
			t.Fatalf("first record after recovery at offset %d, want %d", rec.Offset, remoteEnd+1)
		}
	})
}

// TestTieringNeedsASharedStore reproduces issue 15's confirmed loss: in a
// 3-node cluster started as the README's walk-through does, without
// --object-store, each node tiers into its own data dir, so replicas
// dropped local copies of segments only the uploader's directory held and
// a killed leader took them with it. Such a cluster now refuses
// remote.storage.enable=true, whichever node the request reaches, with a
// message naming the fix. With one file:// directory every node shares
// (declared with --object-store-shared) the topic is tiered, and with its
// leader killed every acknowledged record is read back, the old ones from
// the shared directory.
func TestTieringNeedsASharedStore(t *testing.T) {
	timing := []string{"--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300"}
	const (
		recordSize   = 8 << 10
		segmentBytes = 1 << 20
		localBytes   = 2 << 20
	)
	perMiB := (1 << 20) / recordSize

	t.Run("node-local stores refused", func(t *testing.T) {
		c := startClusterWith(t, 3, func(int32, *brokerProcess) (string, []string) { return "", timing })
		c.waitLiveBrokers(3)
		topic := legalTopic(t)
		for id, b := range c.nodes {
			req := kmsg.NewPtrCreateTopicsRequest()
			req.Version, req.TimeoutMillis = 5, 10_000 // v1+ carries the error message
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 3
			for name, value := range tieredTopicConfigs(segmentBytes, localBytes) {
				config := kmsg.NewCreateTopicsRequestTopicConfig()
				config.Name, config.Value = name, value
				rt.Configs = append(rt.Configs, config)
			}
			req.Topics = append(req.Topics, rt)
			got := dialRaw(t, b.addr).roundTrip(req).(*kmsg.CreateTopicsResponse).Topics[0]
			message := ""
			if got.ErrorMessage != nil {
				message = *got.ErrorMessage
			}
			if got.ErrorCode != kerr.InvalidConfig.Code || !strings.Contains(message, "--object-store-shared") || !strings.Contains(message, "node-local") {
				t.Fatalf("node %d: CreateTopics of a tiered topic answered error %d %q, want INVALID_CONFIG naming a shared --object-store", id, got.ErrorCode, message)
			}
		}
		if r := createOne(t, c.admin(), 1, 3, nil, topic); r.Err != nil {
			t.Fatalf("an untiered topic: %v %s", r.Err, r.ErrMessage)
		}
	})

	t.Run("shared file store", func(t *testing.T) {
		shared := t.TempDir()
		c := startClusterWith(t, 3, func(int32, *brokerProcess) (string, []string) {
			return "", append([]string{"--object-store", "file://" + shared, "--object-store-shared"}, timing...)
		})
		c.waitLiveBrokers(3)
		adm := c.admin()
		topic := legalTopic(t)
		configs := tieredTopicConfigs(segmentBytes, localBytes)
		configs["min.insync.replicas"] = kadm.StringPtr("2")
		if r := createOne(t, adm, 1, 3, configs, topic); r.Err != nil {
			t.Fatalf("create %s: %v %s", topic, r.Err, r.ErrMessage)
		}
		g := tierGen{topic: topic, size: recordSize, base: time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond)}
		cl := c.client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchMaxBytes(256<<10), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequiredAcks(kgo.AllISRAcks()))
		g.produce(t, cl, 0, 12*perMiB)
		leader, _ := leaderOf(t, adm, topic)
		eventually(t, 2*time.Minute, "the followers holding only the local window, the rest tiered", func() error {
			if end := offsetAt(t, c.seeds(), topic, -5); end < int64(8*perMiB) {
				return fmt.Errorf("remote log ends at %d", end)
			}
			for id, b := range c.nodes {
				if local := localLogBytes(t, b.dataDir, topic, 0); id != leader && local > localBytes+3*segmentBytes {
					return fmt.Errorf("node %d holds %d bytes locally", id, local)
				}
			}
			return nil
		})
		c.nodes[leader].kill()
		g.requireReplay(t, c.seeds(leader), 0, 12*perMiB)
	})
}
