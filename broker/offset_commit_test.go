package broker_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/group"
)

// TestOffsetCommitPartitionCodes: an OffsetCommit's partitions are checked
// one by one: an unknown topic or partition and too large metadata are
// refused with their own code, the others are committed.
func TestOffsetCommitPartitionCodes(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client(offsetsByName())
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

// offsetsByName caps OffsetCommit and OffsetFetch at v8, the last
// versions that name topics by name (v10 names them by id), for tests of
// committed offsets that build their requests by name.
func offsetsByName() kgo.Opt {
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(kmsg.OffsetCommit.Int16(), 8)
	versions.SetMaxKeyVersion(kmsg.OffsetFetch.Int16(), 8)
	return kgo.MaxVersions(versions)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestOffsetCommitFetchByTopicID: OffsetCommit and OffsetFetch v10 (Kafka
// 4.2) name topics by id: a commit by id is fetched back by id (and by name
// with v8), and an id the cluster does not know answers UNKNOWN_TOPIC_ID.
func TestOffsetCommitFetchByTopicID(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "byid", 1, nil)
	topic, _ := n.Store.State().Topic("byid")
	unknown := [16]byte{0xde, 0xad}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "ids", -1
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Offset = 7
	commit.Topics = []kmsg.OffsetCommitRequestTopic{
		{TopicID: topic.ID, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}},
		{TopicID: unknown, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}},
	}
	resp := request[*kmsg.OffsetCommitResponse](t, cl, commit)
	if resp.Version != 10 || len(resp.Topics) != 2 || resp.Topics[0].TopicID != topic.ID || resp.Topics[0].Partitions[0].ErrorCode != 0 ||
		resp.Topics[1].TopicID != unknown || resp.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("OffsetCommit v%d: %+v", resp.Version, resp.Topics)
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	group := kmsg.NewOffsetFetchRequestGroup()
	group.Group = "ids"
	group.Topics = []kmsg.OffsetFetchRequestGroupTopic{{TopicID: topic.ID, Partitions: []int32{0}}, {TopicID: unknown, Partitions: []int32{0}}}
	fetch.Groups = []kmsg.OffsetFetchRequestGroup{group}
	fr := request[*kmsg.OffsetFetchResponse](t, cl, fetch)
	if fr.Version != 10 || len(fr.Groups) != 1 || len(fr.Groups[0].Topics) != 2 {
		t.Fatalf("OffsetFetch v%d: %+v", fr.Version, fr.Groups)
	}
	got := fr.Groups[0].Topics
	if got[0].TopicID != topic.ID || got[0].Partitions[0].Offset != 7 || got[0].Partitions[0].ErrorCode != 0 ||
		got[1].TopicID != unknown || got[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("OffsetFetch by id: %+v", got)
	}
	// Every committed offset of the group, by id.
	fetch.Groups[0].Topics = nil
	fr = request[*kmsg.OffsetFetchResponse](t, cl, fetch)
	if all := fr.Groups[0].Topics; len(all) != 1 || all[0].TopicID != topic.ID || all[0].Partitions[0].Offset != 7 {
		t.Fatalf("OffsetFetch all by id: %+v", all)
	}
	if got := fetchOffset(t, n.Client(kgo.MaxVersions(kversion.V3_0_0())), "ids", "byid", 0); got != 7 {
		t.Fatalf("OffsetFetch by name: %d, want 7", got)
	}
}
