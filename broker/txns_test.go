package broker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/txn"
)

// TestMarkerWriter: the partitions of a marker go to their leaders in one
// WriteTxnMarkers v1 request per leader, and each answer is classified as
// the coordinator acts on it.
func TestMarkerWriter(t *testing.T) {
	leaders := map[string]int32{"a": 1, "b": 2, "deleted-later": 2}
	var mu sync.Mutex
	deleted := map[string]bool{"gone": true}
	resolve := func(tp group.TopicPartition) (int32, string, error) {
		mu.Lock()
		defer mu.Unlock()
		if deleted[tp.Topic] {
			return -1, "", fmt.Errorf("%w: %s", txn.ErrPartitionGone, tp.Topic)
		}
		if tp.Topic == "leaderless" {
			return -1, "", errMarkerNotWritten
		}
		return leaders[tp.Topic], fmt.Sprintf("broker-%d:9094", leaders[tp.Topic]), nil
	}
	answers := map[group.TopicPartition]int16{
		{Topic: "a", Partition: 0}:             0,
		{Topic: "a", Partition: 1}:             kerr.NotLeaderForPartition.Code,
		{Topic: "b", Partition: 0}:             kerr.TransactionCoordinatorFenced.Code,
		{Topic: "deleted-later", Partition: 0}: kerr.UnknownTopicOrPartition.Code,
	}
	var requests []*kmsg.WriteTxnMarkersRequest
	var addresses []string
	send := func(_ context.Context, leader int32, address string, req *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, req)
		addresses = append(addresses, address)
		// Deleted while the marker was on its way.
		deleted["deleted-later"] = true
		return markersResponse(req, func(_ int64, tp group.TopicPartition) int16 { return answers[tp] }), nil
	}
	w := &markerWriter{resolve: resolve, send: send}
	m := txn.Marker{ProducerID: 77, ProducerEpoch: 3, Commit: true, CoordinatorEpoch: 9, Version: txn.V2, Partitions: []group.TopicPartition{
		{Topic: "a", Partition: 0}, {Topic: "a", Partition: 1}, {Topic: "b", Partition: 0}, {Topic: "deleted-later", Partition: 0},
		{Topic: "gone", Partition: 0}, {Topic: "leaderless", Partition: 0},
	}}
	got := w.WriteMarkers(context.Background(), m)

	want := map[string]error{"a-0": nil, "a-1": errMarkerNotWritten, "b-0": txn.ErrCoordinatorFenced,
		"deleted-later-0": txn.ErrPartitionGone, "gone-0": txn.ErrPartitionGone, "leaderless-0": errMarkerNotWritten}
	if len(got) != len(want) {
		t.Fatalf("results %v", got)
	}
	for tp, err := range got {
		w := want[fmt.Sprintf("%s-%d", tp.Topic, tp.Partition)]
		if (w == nil) != (err == nil) || (w != nil && !errors.Is(err, w)) {
			t.Errorf("%s-%d: %v, want %v", tp.Topic, tp.Partition, err, w)
		}
	}
	sort.Strings(addresses)
	if !reflect.DeepEqual(addresses, []string{"broker-1:9094", "broker-2:9094"}) {
		t.Fatalf("requests went to %v, want one per leader", addresses)
	}
	for _, req := range requests {
		if req.Version != 2 || len(req.Markers) != 1 {
			t.Fatalf("request %+v", req)
		}
		mk := req.Markers[0]
		if mk.ProducerID != 77 || mk.ProducerEpoch != 3 || !mk.Committed || mk.CoordinatorEpoch != 9 || mk.TransactionVersion != 2 {
			t.Fatalf("marker %+v", mk)
		}
	}

	// A leader that cannot be reached: its partitions are retried.
	w.send = func(context.Context, int32, string, *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error) {
		return nil, errors.New("connection refused")
	}
	m.Partitions = []group.TopicPartition{{Topic: "a", Partition: 0}}
	if err := w.WriteMarkers(context.Background(), m)[m.Partitions[0]]; !errors.Is(err, errMarkerNotWritten) {
		t.Fatalf("unreachable leader: %v", err)
	}
}

// TestMarkerWriterBatchesPerLeader: markers of several transactions bound
// for one leader while a request to it is in flight go together in the
// next request (one marker entry per producer), and each transaction gets
// its own answer.
func TestMarkerWriterBatchesPerLeader(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var requests [][]int64 // producer ids per request
	send := func(_ context.Context, _ int32, _ string, req *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error) {
		mu.Lock()
		var pids []int64
		for _, m := range req.Markers {
			pids = append(pids, m.ProducerID)
		}
		first := len(requests) == 0
		requests = append(requests, pids)
		mu.Unlock()
		if first {
			<-release
		}
		return markersResponse(req, func(producerID int64, _ group.TopicPartition) int16 {
			if producerID == 3 {
				return kerr.NotLeaderForPartition.Code
			}
			return 0
		}), nil
	}
	w := &markerWriter{send: send, resolve: func(group.TopicPartition) (int32, string, error) { return 1, "leader:9094", nil }}
	tp := group.TopicPartition{Topic: "a", Partition: 0}
	results := make([]map[group.TopicPartition]error, 4)
	var wg sync.WaitGroup
	write := func(pid int64) {
		wg.Go(func() {
			results[pid] = w.WriteMarkers(context.Background(), txn.Marker{ProducerID: pid, ProducerEpoch: 0, Commit: true, Partitions: []group.TopicPartition{tp}})
		})
	}
	queued := func(n int) {
		for {
			w.mu.Lock()
			q := w.queues[markerLeader{1, "leader:9094"}]
			got := q != nil && len(q.calls) == n
			w.mu.Unlock()
			mu.Lock()
			sent := len(requests)
			mu.Unlock()
			if got && sent == 1 {
				return
			}
			runtime.Gosched()
		}
	}
	write(1)
	queued(0) // the first request is in flight
	write(2)
	write(3)
	queued(2)
	close(release)
	wg.Wait()
	if len(requests) != 2 || !reflect.DeepEqual(requests[0], []int64{1}) || len(requests[1]) != 2 {
		t.Fatalf("requests %v, want [1] then [2 3] together", requests)
	}
	if results[1][tp] != nil || results[2][tp] != nil || !errors.Is(results[3][tp], errMarkerNotWritten) {
		t.Fatalf("results %v", results)
	}
	w.wait()
}

// markersResponse is a partition leader's answer to req: code gives each
// marker's partition its error code.
func markersResponse(req *kmsg.WriteTxnMarkersRequest, code func(producerID int64, tp group.TopicPartition) int16) *kmsg.WriteTxnMarkersResponse {
	resp := kmsg.NewPtrWriteTxnMarkersResponse()
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, mt := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = mt.Topic
			for _, p := range mt.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition, rp.ErrorCode = p, code(m.ProducerID, group.TopicPartition{Topic: mt.Topic, Partition: p})
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp
}
