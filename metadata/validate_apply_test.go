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
			applySteps(t, []fsmStep{
				{command: &createTopicCommand{topic: orders}},
				{command: test.command, wantErr: test.wantErr},
			})
		})
	}
}
