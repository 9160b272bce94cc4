//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type ackedRecord struct {
	partition int32
	offset    int64
	value     string
}

// TestKill9KeepsAcknowledged: producers write continuously with acks=all;
// the broker is killed with SIGKILL mid-stream and restarted. Every record
// acknowledged before the kill is read back at its acknowledged offset, and
// producing continues at the next offsets.
func TestKill9KeepsAcknowledged(t *testing.T) {
	b := startBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 3, nil)

	producer := newClient(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.RecordRetries(0), kgo.ProduceRequestTimeout(5*time.Second),
		kgo.RetryTimeout(5*time.Second))
	var (
		mu    sync.Mutex
		acked []ackedRecord
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			v := fmt.Sprintf("v-%08d", i)
			producer.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked = append(acked, ackedRecord{r.Partition, r.Offset, string(r.Value)})
					mu.Unlock()
				}
			})
			if i%500 == 499 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d records acknowledged in 30s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.kill()
	cancel()
	wg.Wait()
	producer.Close()
	mu.Lock()
	snapshot := append([]ackedRecord(nil), acked...)
	mu.Unlock()
	t.Logf("%d records acknowledged before SIGKILL", len(snapshot))

	b.restart(t)
	highest := map[int32]int64{}
	for _, a := range snapshot {
		if a.offset+1 > highest[a.partition] {
			highest[a.partition] = a.offset + 1
		}
	}
	total := 0
	for _, h := range highest {
		total += int(h)
	}
	recs := consumeAll(t, b.addr, topic, total)
	at := map[int32]map[int64]string{}
	for _, r := range recs {
		if at[r.Partition] == nil {
			at[r.Partition] = map[int64]string{}
		}
		at[r.Partition][r.Offset] = string(r.Value)
	}
	lost := 0
	for _, a := range snapshot {
		if at[a.partition][a.offset] != a.value {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost or changed after kill -9", lost, len(snapshot))
	}

	// Producing continues after the recovered end of each partition.
	after := newClient(t, b.addr)
	ends, err := kadm.NewClient(after).ListEndOffsets(testContext(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 3; p++ {
		end, _ := ends.Lookup(topic, p)
		offs := produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, p, "after-restart")
		if offs[0] != end.Offset {
			t.Fatalf("partition %d: new record at %d, want the recovered end %d", p, offs[0], end.Offset)
		}
	}
}

// TestGracefulRestart: SIGTERM exits cleanly (exit 0) and everything written
// is there after a restart, with idempotent producer state intact.
func TestGracefulRestart(t *testing.T) {
	b := startBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 2, nil)
	cl := newClient(t, b.addr, manualPartitioner())
	for p := int32(0); p < 2; p++ {
		produceSync(t, cl, topic, p, "a", "b", "c")
	}
	cl.Close()

	// A producer keeps sending while the broker is asked to stop: the broker
	// finishes the requests in flight and exits promptly, and everything it
	// acknowledged is there after the restart.
	busy := newClient(t, b.addr, manualPartitioner(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(0))
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu    sync.Mutex
		acked []ackedRecord
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			r := &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(fmt.Sprintf("busy-%d", i))}
			busy.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked = append(acked, ackedRecord{r.Partition, r.Offset, string(r.Value)})
					mu.Unlock()
				}
			})
			time.Sleep(200 * time.Microsecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	stopErr := b.stop() // fails if the broker is still up 30s after SIGTERM
	cancel()
	wg.Wait()
	busy.Close()
	if stopErr != nil {
		t.Fatal(stopErr)
	}
	if code := b.exitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	b.restart(t)
	mu.Lock()
	defer mu.Unlock()
	recs := consumeAll(t, b.addr, topic, 6+len(acked))
	at := map[int32]map[int64]string{}
	for _, r := range recs {
		if at[r.Partition] == nil {
			at[r.Partition] = map[int64]string{}
		}
		at[r.Partition][r.Offset] = string(r.Value)
	}
	for p := int32(0); p < 2; p++ {
		for o, v := range []string{"a", "b", "c"} {
			if at[p][int64(o)] != v {
				t.Fatalf("partition %d offset %d: %q, want %q", p, o, at[p][int64(o)], v)
			}
		}
	}
	for _, a := range acked {
		if at[a.partition][a.offset] != a.value {
			t.Fatalf("acknowledged %q at %d/%d missing after graceful restart", a.value, a.partition, a.offset)
		}
	}
	t.Logf("%d records acknowledged while stopping", len(acked))
}

// TestDeleteAndRecreate: a topic deleted and re-created with the same name
// serves none of the old data, also across a restart.
func TestDeleteAndRecreate(t *testing.T) {
	b := startBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, 0, "old-1", "old-2", "old-3")
	adm := kadm.NewClient(newClient(t, b.addr))
	ctx := testContext(t, 30*time.Second)
	resp, err := adm.DeleteTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	createTopic(t, b.addr, topic, 1, nil)
	check := func(stage string) {
		ends, err := kadm.NewClient(newClient(t, b.addr)).ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		end, ok := ends.Lookup(topic, 0)
		if !ok || end.Err != nil || end.Offset != 1 {
			t.Fatalf("%s: end offset %+v, want 1 (only the new record)", stage, end)
		}
		recs := consumeAll(t, b.addr, topic, 1)
		if string(recs[0].Value) != "new" || recs[0].Offset != 0 {
			t.Fatalf("%s: read %q at %d, want \"new\" at 0", stage, recs[0].Value, recs[0].Offset)
		}
	}
	produceSync(t, newClient(t, b.addr, manualPartitioner()), topic, 0, "new")
	check("after re-create")
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	b.restart(t)
	check("after restart")
}

// TestListOffsetsByTimestamp: offsets for timestamps, earliest, latest and
// the max timestamp are those of the right records.
func TestListOffsetsByTimestamp(t *testing.T) {
	b := sharedBroker(t)
	topic := uniqueTopic(t)
	createTopic(t, b.addr, topic, 1, nil)
	cl := newClient(t, b.addr, manualPartitioner(), kgo.ProducerLinger(0))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	// Three batches of ten records, one second apart each.
	var recs []*kgo.Record
	for i := 0; i < 30; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	for i := 0; i < 30; i += 10 {
		if err := cl.ProduceSync(testContext(t, 10*time.Second), recs[i:i+10]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 30*time.Second)
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{
		{base.Add(-time.Minute), 0},
		{base, 0},
		{base.Add(5500 * time.Millisecond), 6},
		{base.Add(10 * time.Second), 10},
		{base.Add(29 * time.Second), 29},
	} {
		got, err := adm.ListOffsetsAfterMilli(ctx, tc.at.UnixMilli(), topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := got.Lookup(topic, 0)
		if o.Err != nil || o.Offset != tc.want {
			t.Errorf("offset after %v: %d (err %v), want %d", tc.at.Sub(base), o.Offset, o.Err, tc.want)
		}
	}
	// After the last timestamp there is no such record: Kafka answers -1,
	// which kadm reports as the end offset.
	got, err := adm.ListOffsetsAfterMilli(ctx, base.Add(time.Hour).UnixMilli(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := got.Lookup(topic, 0); o.Offset != 30 && o.Offset != -1 {
		t.Errorf("offset after the last record: %d, want the end (30) or -1", o.Offset)
	}
	start, _ := adm.ListStartOffsets(ctx, topic)
	end, _ := adm.ListEndOffsets(ctx, topic)
	if s, _ := start.Lookup(topic, 0); s.Offset != 0 {
		t.Errorf("earliest %d, want 0", s.Offset)
	}
	if e, _ := end.Lookup(topic, 0); e.Offset != 30 {
		t.Errorf("latest %d, want 30", e.Offset)
	}
	maxTS, err := adm.ListMaxTimestampOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := maxTS.Lookup(topic, 0); m.Offset != 29 || m.Timestamp != base.Add(29*time.Second).UnixMilli() {
		t.Errorf("max timestamp offset %d ts %d, want 29 at %d", m.Offset, m.Timestamp, base.Add(29*time.Second).UnixMilli())
	}
}
