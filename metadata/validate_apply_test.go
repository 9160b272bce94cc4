package metadata

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
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
	// The replica is registered: the name is what is refused.
	registerTestBrokers(t, ctx, leader, 1)
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

// TestApplyRefusesMalformedCommands: commands that skipped the proposer's
// checks are refused by the state machine itself, with the state unchanged:
// configs that are not config names and short values, and more partitions
// than a topic may have.
func TestApplyRefusesMalformedCommands(t *testing.T) {
	orders := testTopic("orders", 1, []int32{1})
	withConfigs := func(configs map[string]string) Topic {
		topic := testTopic("configured", 2, []int32{1})
		topic.Configs = configs
		return topic
	}
	many := map[string]string{}
	for i := range maxTopicConfigs + 1 {
		many["config."+string(rune('a'+i%26))+uuid.NewString()[:8]] = "1"
	}
	huge := testTopic("huge", 3)
	huge.Partitions = newPartitions(0, make([][]int32, MaxPartitionsPerTopic+1))
	for i := range huge.Partitions {
		huge.Partitions[i].Replicas, huge.Partitions[i].Leader, huge.Partitions[i].ISR = []int32{1}, 1, []int32{1}
	}
	tests := []struct {
		name    string
		command command
		wantErr error
	}{
		{"config name with a path", &createTopicCommand{topic: withConfigs(map[string]string{"../retention.ms": "1"})}, ErrInvalidTopicConfig},
		{"config name in upper case", &createTopicCommand{topic: withConfigs(map[string]string{"Retention.ms": "1"})}, ErrInvalidTopicConfig},
		{"empty config name", &createTopicCommand{topic: withConfigs(map[string]string{"": "1"})}, ErrInvalidTopicConfig},
		{"oversized config value", &createTopicCommand{topic: withConfigs(map[string]string{"retention.ms": string(make([]byte, maxTopicConfigValueLen+1))})}, ErrInvalidTopicConfig},
		{"config value not UTF-8", &createTopicCommand{topic: withConfigs(map[string]string{"retention.ms": "\xff"})}, ErrInvalidTopicConfig},
		{"too many configs", &createTopicCommand{topic: withConfigs(many)}, ErrInvalidTopicConfig},
		{"altered configs with a bad name", &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"x y": "1"}}, ErrInvalidTopicConfig},
		{"too many partitions", &createTopicCommand{topic: huge}, ErrInvalidPartitions},
		{"grown past the partition limit", &createPartitionsCommand{name: "orders", total: MaxPartitionsPerTopic + 1, partitions: huge.Partitions[1:]}, ErrInvalidPartitions},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			applySteps(t, append(registerBrokers(1),
				fsmStep{command: &createTopicCommand{topic: orders}},
				fsmStep{command: test.command, wantErr: test.wantErr},
			))
		})
	}
}

// TestApplyRefusesReplicasOnUnregisteredBrokers: CreateTopic and
// CreatePartitions commands that place a replica on a broker id that is not
// registered, proposed raw (as a peer on the controller port could, past
// the broker's placement checks), are refused when applied, on the leader
// and through a follower's forwarding; no node's state changes. The same
// commands on registered brokers are accepted.
func TestApplyRefusesReplicasOnUnregisteredBrokers(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	_, leader := c.leader()
	_, follower := c.follower()
	registerTestBrokers(t, ctx, leader, 1, 2)
	existing, err := follower.proposeRemote(ctx, &createTopicCommand{topic: Topic{Name: "existing", ID: uuid.New(), Partitions: newPartitions(0, [][]int32{{1}})}})
	if err != nil {
		t.Fatalf("topic on a registered broker: %v", err)
	}
	unregistered := int32(9)
	vias := []struct {
		what    string
		propose func(command) (any, error)
	}{
		{"on the leader", func(cmd command) (any, error) { return leader.proposeLocal(ctx, cmd) }},
		{"forwarded by a follower", func(cmd command) (any, error) { return follower.proposeRemote(ctx, cmd) }},
	}
	for _, via := range vias {
		for _, test := range []struct {
			what    string
			command command
		}{
			{"new topic", &createTopicCommand{topic: Topic{Name: "nowhere", ID: uuid.New(), Partitions: newPartitions(0, [][]int32{{1, 2}, {2, unregistered}})}}},
			{"new topic led by it", &createTopicCommand{topic: Topic{Name: "nowhere", ID: uuid.New(), Partitions: newPartitions(0, [][]int32{{unregistered}})}}},
			{"new partitions", &createPartitionsCommand{name: "existing", total: 3, partitions: newPartitions(1, [][]int32{{2}, {unregistered, 1}})}},
		} {
			_, err := via.propose(test.command)
			if !errors.Is(err, ErrInvalidPartitions) || !strings.Contains(err.Error(), fmt.Sprintf("replica %d is not a registered broker", unregistered)) {
				t.Fatalf("%s %s: %v, want ErrInvalidPartitions naming replica %d", test.what, via.what, err, unregistered)
			}
		}
	}
	// The same commands on registered brokers are accepted; once every node
	// has applied them, the refused ones left nothing behind.
	if _, err := leader.proposeLocal(ctx, &createTopicCommand{topic: Topic{Name: "placed", ID: uuid.New(), Partitions: newPartitions(0, [][]int32{{1, 2}, {2, 1}})}}); err != nil {
		t.Fatalf("topic on registered brokers: %v", err)
	}
	if _, err := follower.proposeRemote(ctx, &createPartitionsCommand{name: "existing", total: 3, partitions: newPartitions(1, [][]int32{{2}, {2, 1}})}); err != nil {
		t.Fatalf("partitions on registered brokers: %v", err)
	}
	for id, store := range c.stores {
		state := waitState(t, store, fmt.Sprintf("node %d to apply every command", id), func(s *State) bool {
			topic, _ := s.Topic("existing")
			_, placed := s.Topic("placed")
			return placed && len(topic.Partitions) == 3
		})
		if _, ok := state.Topic("nowhere"); ok {
			t.Fatalf("node %d: a topic on an unregistered broker entered the state", id)
		}
		topic, _ := state.Topic("existing")
		if topic.ID != existing.(Topic).ID || !slices.Equal(topic.Partitions[1].Replicas, []int32{2}) || !slices.Equal(topic.Partitions[2].Replicas, []int32{2, 1}) {
			t.Fatalf("node %d: partitions of the grown topic %+v", id, topic.Partitions)
		}
		state.EachTopic(func(topic Topic) bool {
			for _, partition := range topic.Partitions {
				if slices.Contains(partition.Replicas, unregistered) {
					t.Fatalf("node %d: topic %q partition %d on unregistered broker %d", id, topic.Name, partition.Index, unregistered)
				}
			}
			return true
		})
	}
}

// TestApplyChecksReplicasAgainstTheStateAtApply: whether a replica is a
// registered broker is decided by the state the command applies to, the
// same on every node: a broker registered by an earlier entry may be
// placed on, one unregistered by an earlier entry may not, and
// unregistering a broker leaves the partitions it already holds alone.
func TestApplyChecksReplicasAgainstTheStateAtApply(t *testing.T) {
	orders := testTopic("orders", 1, []int32{1, 3})
	steps := []fsmStep{
		{command: &registerBrokerCommand{registration: testRegistration(1)}},
		{command: &createTopicCommand{topic: orders}, wantErr: ErrInvalidPartitions},
		{command: &registerBrokerCommand{registration: testRegistration(3)}},
		{command: &createTopicCommand{topic: orders}, wantValue: orders},
		{command: &unregisterBrokerCommand{id: 3, epoch: AnyBrokerEpoch}},
		{command: &createPartitionsCommand{name: "orders", total: 2, partitions: newPartitions(1, [][]int32{{3}})}, wantErr: ErrInvalidPartitions},
		{command: &createTopicCommand{topic: testTopic("later", 2, []int32{3})}, wantErr: ErrInvalidPartitions},
		{command: &createPartitionsCommand{name: "orders", total: 2, partitions: newPartitions(1, [][]int32{{1}})}},
	}
	state := applySteps(t, steps).state()
	topic, _ := state.Topic("orders")
	want := append(slices.Clone(orders.Partitions), newPartitions(1, [][]int32{{1}})...)
	if !reflect.DeepEqual(topic.Partitions, want) {
		t.Fatalf("partitions %+v\nwant %+v", topic.Partitions, want)
	}
}

// TestApplyReplaysInternalTopicsOfEarlierBuilds: an earlier build created
// __consumer_offsets on its own node before that node had registered, and
// such an entry replays after an upgrade exactly as it applied then.
func TestApplyReplaysInternalTopicsOfEarlierBuilds(t *testing.T) {
	offsets := testTopic("__consumer_offsets", 1, []int32{1})
	offsets.Internal = true
	state := applySteps(t, []fsmStep{
		{command: &createTopicCommand{topic: offsets}, wantValue: offsets},
		{command: &registerBrokerCommand{registration: testRegistration(1)}},
	}).state()
	if _, ok := state.Topic("__consumer_offsets"); !ok {
		t.Fatal("the offsets topic of an earlier build's log was refused on replay")
	}
}
