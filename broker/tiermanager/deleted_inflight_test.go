package tiermanager

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/strata-log/strata/broker/partition"
)

// TestUploadInFlightWhenTopicDeletedLeavesNoObjects: a segment upload
// whose "copy started" was committed before its topic was deleted goes on
// writing objects after the deleted-topics cleanup has deleted the entry
// and listed the partition's objects; once the upload ends (its "copy
// finished" refused) and the pass has written its manifest snapshot,
// nothing of the deleted topic may stay in the bucket, where no later
// cleanup would look (its entries are gone).
func TestUploadInFlightWhenTopicDeletedLeavesNoObjects(t *testing.T) {
	f := newFixture(t, 10)
	// The second segment's upload is held, after the first one's
	// "copy finished": the pass then writes a manifest snapshot.
	second := fmt.Sprintf("/%020d-", f.sealed()[1].BaseOffset)
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.tier = f.newTier(&gateBucket{Bucket: f.faults,
		before: func(key string) error {
			if strings.Contains(key, second) && strings.HasSuffix(key, ".index") {
				once.Do(func() {
					close(reached)
					<-release
				})
			}
			return nil
		},
		after: func(string) {},
	}, 1)
	f.manager = f.newManager()
	done := make(chan error, 1)
	go func() { done <- f.work() }()
	<-reached // "copy started" committed, the .log written
	if _, err := f.store.DeleteTopic(f.ctx, f.topic.Name); err != nil {
		t.Fatal(err)
	}
	// The partition is removed: passes no longer list it.
	f.manager.cfg.Partitions = func() []*partition.Partition { return nil }
	f.pass() // the lowest live broker's cleanup
	close(release)
	if err := <-done; err == nil {
		t.Fatal("the upload into the deleted topic succeeded")
	}
	f.pass()
	f.pass()
	if entries := f.entries(); len(entries) != 0 {
		t.Fatalf("entries left %+v", entries)
	}
	if objects := f.objects(); len(objects) != 0 {
		t.Fatalf("objects of the deleted topic left in the bucket: %v", objects)
	}
}
