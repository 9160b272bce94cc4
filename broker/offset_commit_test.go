package broker_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/group"
)

// TestOffsetCommitPartitionCodes: an OffsetCommit's partitions are checked
// one by one: an unknown topic or partition and too large metadata are
// refused with their own code, the others are committed.
func TestOffsetCommitPartitionCodes(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "t", 2, nil)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(8)
	commit.Group, commit.Generation = "simple", -1
	partition := func(index int32, offset int64, metadata string) kmsg.OffsetCommitRequestTopicPartition {
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset, p.Metadata = index, offset, kmsg.StringPtr(metadata)
		return p
	}
	commit.Topics = []kmsg.OffsetCommitRequestTopic{
		{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{
			partition(0, 42, "ok"),
			partition(1, 43, strings.Repeat("m", group.OffsetMetadataMaxBytes+1)),
			partition(7, 44, ""),
		}},
		{Topic: "nope", Partitions: []kmsg.OffsetCommitRequestTopicPartition{partition(0, 45, "")}},
	}
	resp := request[*kmsg.OffsetCommitResponse](t, cl, commit)
	want := map[string][]int16{
		"t":    {0, kerr.OffsetMetadataTooLarge.Code, kerr.UnknownTopicOrPartition.Code},
		"nope": {kerr.UnknownTopicOrPartition.Code},
	}
	for _, rt := range resp.Topics {
		for i, rp := range rt.Partitions {
			if rp.ErrorCode != want[rt.Topic][i] {
				t.Errorf("%s-%d: %v, want %v", rt.Topic, rp.Partition, kerr.ErrorForCode(rp.ErrorCode), kerr.ErrorForCode(want[rt.Topic][i]))
			}
		}
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.SetVersion(7)
	fetch.Group = "simple"
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}}
	fr := request[*kmsg.OffsetFetchResponse](t, cl, fetch)
	if fr.ErrorCode != 0 || len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 2 {
		t.Fatalf("offset fetch: %+v", fr)
	}
	for _, p := range fr.Topics[0].Partitions {
		wantOffset, wantMeta := int64(-1), ""
		if p.Partition == 0 {
			wantOffset, wantMeta = 42, "ok"
		}
		if p.ErrorCode != 0 || p.Offset != wantOffset || deref(p.Metadata) != wantMeta {
			t.Errorf("t-%d committed: offset %d metadata %q (%v), want %d %q", p.Partition, p.Offset, deref(p.Metadata), kerr.ErrorForCode(p.ErrorCode), wantOffset, wantMeta)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
