package broker

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// typicalProduce is a producer's Produce of one batch to one partition.
func typicalProduce() *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, -1, 30000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "orders",
		Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 3, Records: make([]byte, 16<<10)}}}}
	return req
}

// followerFetch is a follower's full Fetch of topics × partitions.
func followerFetch(topics, partitions int) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = 12, 2, 500, 10<<20
	for t := range topics {
		ft := kmsg.FetchRequestTopic{Topic: fmt.Sprintf("topic-%d", t)}
		for p := range partitions {
			ft.Partitions = append(ft.Partitions, kmsg.FetchRequestTopicPartition{
				Partition: int32(p), FetchOffset: 1000, LogStartOffset: -1, PartitionMaxBytes: 1 << 20})
		}
		req.Topics = append(req.Topics, ft)
	}
	return req
}

func TestRequestElementsOfHotPathRequests(t *testing.T) {
	if got := requestElements(typicalProduce()); got != 2 {
		t.Errorf("Produce of 1 partition: %d elements, want 2", got)
	}
	if got := requestElements(followerFetch(1, 1000)); got != 1001 {
		t.Errorf("Fetch of 1 topic × 1000 partitions: %d elements, want 1001", got)
	}
	if got := requestElements(followerFetch(100, 10)); got != 1100 {
		t.Errorf("Fetch of 100 topics × 10 partitions: %d elements, want 1100", got)
	}
}

func BenchmarkRequestElements(b *testing.B) {
	for _, bc := range []struct {
		name string
		req  kmsg.Request
	}{
		{"Produce/1x1", typicalProduce()},
		{"Fetch/1x1000", followerFetch(1, 1000)},
		{"Fetch/100x10", followerFetch(100, 10)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				requestElements(bc.req)
			}
		})
	}
}

// BenchmarkFetchDecode is what decoding the same Fetch costs, to compare.
func BenchmarkFetchDecode(b *testing.B) {
	req := followerFetch(1, 1000)
	body := req.AppendTo(nil)
	b.Logf("frame body %d bytes", len(body))
	b.ReportAllocs()
	for b.Loop() {
		r := kmsg.NewPtrFetchRequest()
		r.Version = req.Version
		if err := r.ReadFrom(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChargeRequestElements: what handleFrame pays per request for
// the element limit and charge (no request memory: the count only).
func BenchmarkChargeRequestElements(b *testing.B) {
	for _, bc := range []struct {
		name string
		req  kmsg.Request
	}{
		{"Produce/1x1", typicalProduce()},
		{"Fetch/1x1000", followerFetch(1, 1000)},
	} {
		h := requestHeader{key: bc.req.Key(), version: bc.req.GetVersion(), frameSize: len(bc.req.AppendTo(nil)) + 10}
		c := &clientConn{}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.chargeRequestElements(h, bc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLargeFetchIsStillCounted: the Fetch shortcut skips only frames too
// small to hold more than maxRequestElements elements.
func TestLargeFetchIsStillCounted(t *testing.T) {
	req := followerFetch(1, maxRequestElements+1)
	h := requestHeader{key: req.Key(), version: req.GetVersion(), frameSize: len(req.AppendTo(nil)) + 10}
	if err := (&clientConn{}).chargeRequestElements(h, req); err == nil {
		t.Fatalf("a %d-byte Fetch of %d elements was admitted", h.frameSize, requestElements(req))
	}
	small := followerFetch(1, 1000)
	h = requestHeader{key: small.Key(), version: small.GetVersion(), frameSize: len(small.AppendTo(nil)) + 10}
	if err := (&clientConn{}).chargeRequestElements(h, small); err != nil {
		t.Fatal(err)
	}
}
