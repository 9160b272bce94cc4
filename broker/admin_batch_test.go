package broker_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
)

// TestDeleteTopicsRefusesMalformedEntriesPerEntry: as Kafka's controller
// (ControllerApis.deleteTopics), a DeleteTopics entry that names a topic
// by both name and id, or by neither, a name or id given twice, and a
// name whose topic another entry names by id, are each refused with
// INVALID_REQUEST and delete nothing, while the request's other entries
// are carried out.
func TestDeleteTopicsRefusesMalformedEntriesPerEntry(t *testing.T) {
	n := brokertest.Start(t)
	admin := n.Client()
	for _, name := range []string{"dup", "both", "byid", "ok", "old-dup", "old-ok"} {
		createTopic(t, admin, name, 1, nil)
	}
	id := func(name string) [16]byte { return mustTopic(t, n, name).ID }
	exists := func(name string) bool {
		_, ok := n.Store.State().Topic(name)
		return ok
	}

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = 10000
	entry := func(name string, topicID [16]byte) kmsg.DeleteTopicsRequestTopic {
		e := kmsg.NewDeleteTopicsRequestTopic()
		if name != "" {
			e.Topic = kmsg.StringPtr(name)
		}
		e.TopicID = topicID
		return e
	}
	req.Topics = []kmsg.DeleteTopicsRequestTopic{
		entry("dup", [16]byte{}),
		entry("both", id("both")),
		entry("dup", [16]byte{}),
		entry("", [16]byte{}),
		entry("", id("byid")),
		entry("byid", [16]byte{}),
		entry("ok", [16]byte{}),
	}
	r := request[*kmsg.DeleteTopicsResponse](t, admin, req)
	if r.Version < 6 {
		t.Fatalf("DeleteTopics v%d, want v6+ (topic ids)", r.Version)
	}
	want := []int16{kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, 0, kerr.InvalidRequest.Code, 0}
	if len(r.Topics) != len(want) {
		t.Fatalf("%d results for %d entries: %+v", len(r.Topics), len(want), r.Topics)
	}
	for i, w := range want {
		if got := r.Topics[i].ErrorCode; got != w {
			name := "<null>"
			if r.Topics[i].Topic != nil {
				name = *r.Topics[i].Topic
			}
			t.Errorf("entry %d (%s): %v, want %v", i, name, kerr.ErrorForCode(got), kerr.ErrorForCode(w))
		}
	}
	for name, kept := range map[string]bool{"dup": true, "both": true, "byid": false, "ok": false} {
		if exists(name) != kept {
			t.Errorf("topic %s exists: %v, want %v", name, exists(name), kept)
		}
	}

	// Before topic ids (v5): a name given twice.
	v5 := kversion.Stable()
	v5.SetMaxKeyVersion(kmsg.DeleteTopics.Int16(), 5)
	old := kmsg.NewPtrDeleteTopicsRequest()
	old.TimeoutMillis = 10000
	old.TopicNames = []string{"old-dup", "old-ok", "old-dup"}
	r = request[*kmsg.DeleteTopicsResponse](t, n.Client(kgo.MaxVersions(v5)), old)
	if r.Version != 5 || len(r.Topics) != 3 || r.Topics[0].ErrorCode != kerr.InvalidRequest.Code || r.Topics[1].ErrorCode != 0 || r.Topics[2].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("v%d with a name twice: %d results, errors %v", r.Version, len(r.Topics), deleteErrors(r))
	}
	if !exists("old-dup") || exists("old-ok") {
		t.Fatalf("after v5: old-dup exists %v (want true), old-ok exists %v (want false)", exists("old-dup"), exists("old-ok"))
	}
}

func deleteErrors(r *kmsg.DeleteTopicsResponse) []error {
	var errs []error
	for _, topic := range r.Topics {
		errs = append(errs, kerr.ErrorForCode(topic.ErrorCode))
	}
	return errs
}
