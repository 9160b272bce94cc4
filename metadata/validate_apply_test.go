package metadata

import (
	"errors"
	"testing"

	"github.com/google/uuid"
)

// TestApplyRefusesIllegalTopicNames: a createTopic command that did not go
// through Store.CreateTopic's checks — proposed raw, as a peer on the
// controller port could — is refused when applied if its name breaks
// Kafka's rules (a path separator, ".."), on the leader and through a
// follower's forwarding; nothing enters the state.
func TestApplyRefusesIllegalTopicNames(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	_, leader := c.leader()
	_, follower := c.follower()
	for _, name := range []string{"../x", "a/b", "..", ".", "", "x\x00y", `..\x`} {
		topic := Topic{Name: name, ID: uuid.New(), Partitions: newPartitions(0, [][]int32{{1}})}
		for _, via := range []struct {
			what    string
			propose func(command) (any, error)
		}{
			{"on the leader", func(cmd command) (any, error) { return leader.proposeLocal(ctx, cmd) }},
			{"forwarded by a follower", func(cmd command) (any, error) { return follower.proposeRemote(ctx, cmd) }},
		} {
			_, err := via.propose(&createTopicCommand{topic: topic})
			if !errors.Is(err, ErrInvalidTopic) {
				t.Fatalf("topic %q %s: %v, want ErrInvalidTopic", name, via.what, err)
			}
		}
		for _, store := range c.stores {
			if _, ok := store.State().Topic(name); ok {
				t.Fatalf("topic %q entered the state", name)
			}
		}
	}
	// A legal name still works the same way.
	if _, err := follower.proposeRemote(ctx, &createTopicCommand{topic: Topic{Name: "..ok", ID: uuid.New(), Partitions: newPartitions(0, [][]int32{{1}})}}); err != nil {
		t.Fatalf("legal name: %v", err)
	}
}
