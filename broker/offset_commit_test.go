package broker_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
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

// TestOffsetCommitByTopicIDOfTopicReplacedMeanwhile: an OffsetCommit v10
// names its topic by id; the topic is deleted and re-created under its
// name (a new id) after the broker resolved the id to the name and before
// the commit is written. The commit is of the old topic: it must be
// refused with UNKNOWN_TOPIC_ID (as Kafka answers an id it does not know),
// not stored with the new topic's id and served to the new topic's
// consumers, while the request's other topic is committed.
func TestOffsetCommitByTopicIDOfTopicReplacedMeanwhile(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	createTopic(t, cl, "t", 1, nil)
	createTopic(t, cl, "kept", 1, nil)
	old, _ := n.Store.State().Topic("t")
	kept, _ := n.Store.State().Topic("kept")

	var replaced [16]byte
	var fired atomic.Bool
	n.Server.BeforeOffsetCommit(func(groupID string) {
		if groupID != "g" || !fired.CompareAndSwap(false, true) {
			return
		}
		if _, err := n.Store.DeleteTopic(t.Context(), "t"); err != nil {
			t.Errorf("delete: %v", err)
			return
		}
		topic, err := n.Store.CreateTopic(t.Context(), metadata.TopicSpec{Name: "t", Assignments: [][]int32{{metadatatest.NodeID}}})
		if err != nil {
			t.Errorf("re-create: %v", err)
			return
		}
		replaced = topic.ID
		// The reconcile pass has seen the change (and reported the old
		// topic deleted to the group coordinators) before the commit is
		// written: a commit written after it is not of the old topic by
		// that judgement.
		applied := n.Store.State().AppliedIndex()
		for deadline := time.Now().Add(10 * time.Second); n.Server.ReconciledIndex() < applied; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("metadata index %d not reconciled", applied)
				return
			}
		}
	})
	defer n.Server.BeforeOffsetCommit(nil)

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(10)
	commit.Group, commit.Generation = "g", -1
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Offset = 42
	commit.Topics = []kmsg.OffsetCommitRequestTopic{
		{TopicID: old.ID, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}},
		{TopicID: kept.ID, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}},
	}
	resp := request[*kmsg.OffsetCommitResponse](t, cl, commit)
	if !fired.Load() || replaced == ([16]byte{}) {
		t.Fatal("the topic was not re-created before the commit was written")
	}
	if len(resp.Topics) != 2 || resp.Topics[0].TopicID != old.ID || resp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code ||
		resp.Topics[1].TopicID != kept.ID || resp.Topics[1].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetCommit v10 of the replaced topic and another: %+v, want UNKNOWN_TOPIC_ID and no error", resp.Topics)
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	group := kmsg.NewOffsetFetchRequestGroup()
	group.Group = "g"
	group.Topics = []kmsg.OffsetFetchRequestGroupTopic{{TopicID: replaced, Partitions: []int32{0}}, {TopicID: kept.ID, Partitions: []int32{0}}}
	fetch.Groups = []kmsg.OffsetFetchRequestGroup{group}
	fr := request[*kmsg.OffsetFetchResponse](t, cl, fetch)
	if len(fr.Groups) != 1 || len(fr.Groups[0].Topics) != 2 {
		t.Fatalf("OffsetFetch: %+v", fr.Groups)
	}
	if got := fr.Groups[0].Topics[0].Partitions[0].Offset; got != -1 {
		t.Errorf("committed offset of the re-created topic: %d (the old topic's commit), want -1", got)
	}
	if got := fr.Groups[0].Topics[1].Partitions[0].Offset; got != 42 {
		t.Errorf("committed offset of the other topic: %d, want 42", got)
	}
	if got := fetchOffset(t, n.Client(offsetsByName()), "g", "t", 0); got != -1 {
		t.Errorf("committed offset of the re-created topic by name: %d, want -1", got)
	}
}
