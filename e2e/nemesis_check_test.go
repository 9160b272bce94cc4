//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// nemesisReport is one scenario's row of the table, and its evidence.
type nemesisReport struct {
	scenario string
	gated    bool
	seed     uint64
	wall     time.Duration

	acked, lost, duplicated, divergent, orphans int

	mu         sync.Mutex
	violations []string       // invariant violations (each one a finding), in order
	repeats    map[string]int // how often each was seen
	evidence   []string       // which records, which replicas
	known      []string       // violations of a check listed in nemesisKnownViolations
}

// checkViolation records a broken invariant of a named check: a
// violation, or a known one (reported, not gated) while the check is
// listed in nemesisKnownViolations.
func (r *nemesisReport) checkViolation(check, format string, args ...any) {
	if reason, known := nemesisKnownViolations[check]; known {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.known) < 20 {
			r.known = append(r.known, fmt.Sprintf(format, args...)+" [known: "+check+": "+reason+"]")
		}
		return
	}
	r.violation(format, args...)
}

// violation records a broken invariant (once; repeats are counted).
func (r *nemesisReport) violation(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := fmt.Sprintf(format, args...)
	if r.repeats == nil {
		r.repeats = map[string]int{}
	}
	if r.repeats[v]++; r.repeats[v] == 1 {
		r.violations = append(r.violations, v)
	}
}

// evidence records one detail behind a bad column, up to a bound.
func (r *nemesisReport) evidenceOf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.evidence) < 40 {
		r.evidence = append(r.evidence, fmt.Sprintf(format, args...))
	}
}

// bad: any column that must be 0, or any violation.
func (r *nemesisReport) bad() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost+r.duplicated+r.divergent+r.orphans+len(r.violations) > 0
}

const nemesisTableHeader = "%-30s %6s %7s %5s %5s %9s %7s %10s %5s %6s"

func (r *nemesisReport) row() string {
	gate := "gated"
	if !r.gated {
		gate = "report"
	}
	return fmt.Sprintf(nemesisTableHeader, r.scenario, gate, fmt.Sprint(r.acked), fmt.Sprint(r.lost), fmt.Sprint(r.duplicated),
		fmt.Sprint(r.divergent), fmt.Sprint(r.orphans), fmt.Sprint(len(r.violations)), fmt.Sprint(len(r.known)), r.wall.Round(time.Second))
}

// invariantMonitor polls the cluster while the nemesis runs: every node's
// leader epochs and topics (its own metadata view must never go back),
// the latest offsets clients see, and a group's committed offsets.
type invariantMonitor struct {
	r      *nemesisReport
	topics map[string]bool // acknowledged creations
	group  string

	mu        sync.Mutex
	epochs    map[string]int32 // "node/topic/partition" → highest leader epoch seen
	seen      map[string]bool  // "node/topic" once the node listed the topic
	latest    map[string]int64 // "topic/partition" → highest ListOffsets latest
	committed map[string]int64 // "topic/partition" → highest committed offset
	polls     int
}

func newInvariantMonitor(r *nemesisReport, topics []nemesisTopic, group string) *invariantMonitor {
	m := &invariantMonitor{r: r, topics: map[string]bool{}, group: group,
		epochs: map[string]int32{}, seen: map[string]bool{}, latest: map[string]int64{}, committed: map[string]int64{}}
	for _, tp := range topics {
		m.topics[tp.name] = true
	}
	return m
}

// run polls every 300 ms until ctx ends.
func (m *invariantMonitor) run(ctx context.Context, nc *nemesisCluster) {
	perNode := map[int32]*kgo.Client{}
	for id, b := range nc.nodes {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RequestRetries(0))
		if err != nil {
			m.r.violation("monitor: %v", err)
			return
		}
		defer cl.Close()
		perNode[id] = cl
	}
	all, err := kgo.NewClient(kgo.SeedBrokers(nc.seeds()...))
	if err != nil {
		m.r.violation("monitor: %v", err)
		return
	}
	defer all.Close()
	adm := kadm.NewClient(all)
	for ctx.Err() == nil {
		for id, cl := range perNode {
			if !nc.isPaused(id) && nc.nodes[id].running() {
				m.pollMetadata(ctx, id, cl)
			}
		}
		m.pollLatest(ctx, adm)
		m.pollCommitted(ctx, adm)
		m.mu.Lock()
		m.polls++
		m.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// pollMetadata asks one node for its view: a leader epoch lower than one
// it answered before, or a topic it listed and no longer lists, is a
// violation.
func (m *invariantMonitor) pollMetadata(ctx context.Context, id int32, cl *kgo.Client) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	for name := range m.topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return
	}
	resp, err := seeds[0].Request(rctx, req)
	if err != nil {
		return // a node that is down or starting does not answer
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range resp.(*kmsg.MetadataResponse).Topics {
		if t.Topic == nil {
			continue
		}
		key := fmt.Sprintf("%d/%s", id, *t.Topic)
		if t.ErrorCode != 0 {
			if m.seen[key] && t.ErrorCode == 3 { // UNKNOWN_TOPIC_OR_PARTITION
				m.r.checkViolation("topic-never-vanishes", "node %d no longer knows topic %s (created, acknowledged, never deleted)", id, *t.Topic)
			}
			continue
		}
		m.seen[key] = true
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 || p.LeaderEpoch < 0 {
				continue
			}
			pk := fmt.Sprintf("%s/%d", key, p.Partition)
			if prev, ok := m.epochs[pk]; ok && p.LeaderEpoch < prev {
				m.r.checkViolation("leader-epoch-monotonic", "node %d: leader epoch of %s[%d] went from %d back to %d", id, *t.Topic, p.Partition, prev, p.LeaderEpoch)
			}
			m.epochs[pk] = max(m.epochs[pk], p.LeaderEpoch)
		}
	}
}

// pollLatest: ListOffsets latest (the high watermark a consumer sees) never
// decreases.
func (m *invariantMonitor) pollLatest(ctx context.Context, adm *kadm.Client) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	names := make([]string, 0, len(m.topics))
	for name := range m.topics {
		names = append(names, name)
	}
	ends, err := adm.ListEndOffsets(rctx, names...)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		key := fmt.Sprintf("%s/%d", o.Topic, o.Partition)
		if prev, ok := m.latest[key]; ok && o.Offset < prev {
			m.r.checkViolation("latest-offset-monotonic", "ListOffsets latest of %s[%d] went from %d back to %d", o.Topic, o.Partition, prev, o.Offset)
		}
		m.latest[key] = max(m.latest[key], o.Offset)
	})
}

// pollCommitted: the group's committed offsets never go backwards.
func (m *invariantMonitor) pollCommitted(ctx context.Context, adm *kadm.Client) {
	if m.group == "" {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	offsets, err := adm.FetchOffsets(rctx, m.group)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			return
		}
		key := fmt.Sprintf("%s/%d", o.Topic, o.Partition)
		if prev, ok := m.committed[key]; ok && o.At < prev {
			m.r.checkViolation("committed-offset-monotonic", "committed offset of group %s on %s[%d] went from %d back to %d", m.group, o.Topic, o.Partition, prev, o.At)
		}
		m.committed[key] = max(m.committed[key], o.At)
	})
}

// committedSeen is how many partitions had a committed offset of the group
// and the sum of the highest ones: the group made progress.
func (m *invariantMonitor) committedSeen() (partitions int, sum int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.committed {
		partitions++
		sum += o
	}
	return partitions, sum
}

// waitQuiet waits until every partition has a leader and a full ISR in
// the metadata (the cluster healed); a partition that does not get there is
// a violation.
func waitQuiet(t *testing.T, adm *kadm.Client, topics []nemesisTopic, r *nemesisReport, d time.Duration) {
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		last = ""
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		names := make([]string, len(topics))
		for i, tp := range topics {
			names[i] = tp.name
		}
		m, err := adm.Metadata(ctx, names...)
		cancel()
		if err != nil {
			last = err.Error()
		} else {
			for _, tp := range topics {
				td := m.Topics[tp.name]
				if td.Err != nil || len(td.Partitions) != int(tp.partitions) {
					last = fmt.Sprintf("%s: %v, %d partitions", tp.name, td.Err, len(td.Partitions))
					break
				}
				for _, p := range td.Partitions.Sorted() {
					if p.Leader < 0 || len(p.ISR) != 3 {
						last = fmt.Sprintf("%s[%d]: leader %d ISR %v", tp.name, p.Partition, p.Leader, p.ISR)
						break
					}
				}
				if last != "" {
					break
				}
			}
		}
		if last == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.violation("not every partition led with a full ISR %v after healing: %s", d, last)
}

// readBack consumes every partition of a topic from its start to its end
// offset: record id → the positions (partition, offset) it was read at,
// and the partitions that could not be read to their end (a violation:
// their acknowledged records are neither found nor known lost).
func readBack(t *testing.T, seeds []string, tp nemesisTopic, r *nemesisReport) (map[string][]int64, map[int32]bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	unread := map[int32]bool{}
	for p := range tp.partitions {
		unread[p] = true
	}
	setup, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(setup)
	defer setup.Close()
	starts, err1 := adm.ListStartOffsets(ctx, tp.name)
	ends, err2 := adm.ListEndOffsets(ctx, tp.name)
	if err1 != nil || err2 != nil {
		r.violation("%s: list offsets: %v %v", tp.name, err1, err2)
		return nil, unread
	}
	from := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	for p := range tp.partitions {
		s, _ := starts.Lookup(tp.name, p)
		e, _ := ends.Lookup(tp.name, p)
		if s.Err != nil || e.Err != nil {
			r.violation("%s[%d]: list offsets: %v %v", tp.name, p, s.Err, e.Err)
			continue
		}
		if s.Offset != 0 {
			r.violation("%s[%d]: log starts at %d (nothing was deleted: retention is unlimited)", tp.name, p, s.Offset)
		}
		from[p] = kgo.NewOffset().At(s.Offset)
		end[p] = e.Offset
		if e.Offset <= s.Offset {
			delete(unread, p)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{tp.name: from}),
		kgo.FetchMaxWait(300*time.Millisecond), kgo.FetchMaxBytes(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	read := map[string][]int64{}
	pending := func() bool { // a listed partition not read to its end yet
		for p := range unread {
			if _, listed := from[p]; listed {
				return true
			}
		}
		return false
	}
	for pending() {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			r.violation("%s: partitions %v not read to their end offset within 2m", tp.name, unread)
			break
		}
		fetches.EachError(func(_ string, p int32, err error) {
			r.evidenceOf("%s[%d]: fetch error: %v", tp.name, p, err)
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			if rec.Offset >= end[rec.Partition] {
				return
			}
			id := recordID(rec.Value)
			if id == "" || !bytes.Equal(rec.Value, recordValue(id, tp.valueSize)) {
				r.violation("%s[%d] offset %d: a value no producer wrote: %.60q", tp.name, rec.Partition, rec.Offset, rec.Value)
			}
			read[id] = append(read[id], position(rec.Partition, rec.Offset))
			if rec.Offset+1 >= end[rec.Partition] {
				delete(unread, rec.Partition)
			}
		})
	}
	return read, unread
}

// position packs a partition and an offset as readBack does.
func position(partition int32, offset int64) int64 { return int64(partition)<<48 | offset }

// checkRecords compares what was acknowledged with what was read back:
// every acknowledged record exactly at its acknowledged offset (else lost),
// and no record id at two positions (duplicated). Records of partitions
// that could not be read are counted as a violation, not as lost.
func checkRecords(tp nemesisTopic, ledger *ackLedger, read map[string][]int64, unread map[int32]bool, r *nemesisReport) {
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	unreadable := 0
	defer func() {
		if unreadable > 0 {
			r.violation("%s: %d acknowledged records in partitions %v that could not be read back", tp.name, unreadable, unread)
		}
	}()
	for id, at := range ledger.acked {
		if at.topic != tp.name {
			continue
		}
		r.acked++
		if unread[at.partition] {
			unreadable++
			continue
		}
		got := read[id]
		if len(got) == 0 || !containsPos(got, position(at.partition, at.offset)) {
			r.lost++
			r.evidenceOf("lost: %s acknowledged at %s[%d]@%d, read at %s", id, at.topic, at.partition, at.offset, positions(got))
		}
	}
	for id, got := range read {
		if len(got) > 1 {
			r.duplicated += len(got) - 1
			_, acked := ledger.acked[id]
			r.evidenceOf("duplicated: %s (acknowledged %v) read at %s of %s", id, acked, positions(got), tp.name)
		}
		if _, ok := ledger.sent[id]; !ok && id != "" {
			r.violation("%s: read %s, which no producer sent", tp.name, id)
		}
	}
}

func containsPos(ps []int64, p int64) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func positions(ps []int64) string {
	if len(ps) == 0 {
		return "nowhere"
	}
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("[%d]@%d", p>>48, p&(1<<48-1)))
	}
	return strings.Join(s, ",")
}

// replicaBatch is one record batch of a replica's log, as bytes.
type replicaBatch struct {
	last  int64 // last offset
	bytes []byte
}

// replicaBatches reads a partition's .log files in a data dir (through the
// lazy file system's mount when there is one): base offset → batch.
// Trailing bytes that are not a whole batch end a file's scan.
func replicaBatches(dataDir, topic string, partition int32) (map[int64]replicaBatch, error) {
	names, err := filepath.Glob(filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition), "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := map[int64]replicaBatch{}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		for len(data) >= 61 {
			base := int64(binary.BigEndian.Uint64(data[0:]))
			length := int(int32(binary.BigEndian.Uint32(data[8:])))
			if length < 49 || 12+length > len(data) {
				break
			}
			delta := int64(binary.BigEndian.Uint32(data[23:]))
			out[base] = replicaBatch{last: base + delta, bytes: data[:12+length]}
			data = data[12+length:]
		}
	}
	return out, nil
}

// divergentReplicas compares a partition's replicas below the high
// watermark: a batch two replicas both hold must be byte-identical, and a
// replica must hold every batch below the high watermark from its own log
// start on. It returns "" when they agree, else what differs.
func divergentReplicas(nodes map[int32]*brokerProcess, topic string, partition int32, hw int64) string {
	logs := map[int32]map[int64]replicaBatch{}
	union := map[int64]replicaBatch{}
	for id, b := range nodes {
		batches, err := replicaBatches(b.dataDir, topic, partition)
		if err != nil {
			return fmt.Sprintf("node %d: %v", id, err)
		}
		logs[id] = batches
		for base, batch := range batches {
			if batch.last < hw {
				union[base] = batch
			}
		}
	}
	for id, batches := range logs {
		start := int64(-1)
		for base := range batches {
			if start < 0 || base < start {
				start = base
			}
		}
		for base, batch := range union {
			if base < start {
				continue
			}
			mine, ok := batches[base]
			if !ok {
				return fmt.Sprintf("node %d lacks the batch at offset %d (below the high watermark %d, above its log start %d)", id, base, hw, start)
			}
			if !bytes.Equal(mine.bytes, batch.bytes) {
				return fmt.Sprintf("node %d holds different bytes for the batch at offset %d (high watermark %d)", id, base, hw)
			}
		}
	}
	return ""
}

// checkReplicas counts the partitions whose replicas diverge below the
// high watermark once the cluster is quiet (followers get a while to fetch
// the last batches).
func checkReplicas(t *testing.T, nc *nemesisCluster, adm *kadm.Client, tp nemesisTopic, r *nemesisReport) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ends, err := adm.ListEndOffsets(testContext(t, 10*time.Second), tp.name)
		if err != nil {
			r.violation("%s: list end offsets: %v", tp.name, err)
			return
		}
		var bad []string
		for p := range tp.partitions {
			e, _ := ends.Lookup(tp.name, p)
			if why := divergentReplicas(nc.nodes, tp.name, p, e.Offset); why != "" {
				bad = append(bad, fmt.Sprintf("%s[%d]: %s", tp.name, p, why))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.divergent += len(bad)
			for _, b := range bad {
				r.evidenceOf("divergent: %s", b)
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
