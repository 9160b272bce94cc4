package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/strata-log/strata/authz"
)

func testTopic(name string, idByte byte, assignments ...[]int32) Topic {
	return Topic{
		Name:               name,
		ID:                 [16]byte{idByte, 0xaa},
		CreatedAtUnixMilli: goldenCreatedAt,
		Partitions:         newPartitions(0, assignments),
	}
}

func TestFSMCommands(t *testing.T) {
	orders := testTopic("orders", 1, []int32{1, 2}, []int32{2, 1})
	tests := []struct {
		name string
		// brokers are registered before the steps (applySteps' indexes
		// 1..len(brokers)), so that topics may be placed on them.
		brokers []int32
		steps   []fsmStep
		check   func(t *testing.T, state *State)
	}{
		{
			name: "init cluster once",
			steps: []fsmStep{
				{command: &initClusterCommand{clusterID: "a"}},
				{command: &initClusterCommand{clusterID: "a"}},
				{command: &initClusterCommand{clusterID: "b"}, wantErr: ErrClusterIDMismatch},
				{command: &initClusterCommand{}, wantErr: ErrInvalidClusterID},
			},
			check: func(t *testing.T, state *State) {
				if state.ClusterID() != "a" {
					t.Errorf("cluster id %q", state.ClusterID())
				}
			},
		},
		{
			name:    "create topic",
			brokers: []int32{1, 2},
			steps: []fsmStep{
				{command: &createTopicCommand{topic: orders}, wantValue: orders},
				{command: &createTopicCommand{topic: testTopic("orders", 2, []int32{1})}, wantErr: ErrTopicExists},
				{command: &createTopicCommand{topic: testTopic("other", 1, []int32{1})}, wantErr: ErrTopicIDExists},
				{command: &createTopicCommand{topic: testTopic("", 3, []int32{1})}, wantErr: ErrInvalidTopic},
				{command: &createTopicCommand{topic: Topic{Name: "zero-id", Partitions: newPartitions(0, [][]int32{{1}})}}, wantErr: ErrInvalidTopic},
				{command: &createTopicCommand{topic: testTopic("no-partitions", 4)}, wantErr: ErrInvalidPartitions},
				{command: &createTopicCommand{topic: testTopic("no-replicas", 5, nil)}, wantErr: ErrInvalidPartitions},
				{command: &createTopicCommand{topic: testTopic("duplicate-replica", 6, []int32{1, 1})}, wantErr: ErrInvalidPartitions},
				{command: &createTopicCommand{topic: testTopic("negative-replica", 7, []int32{-2})}, wantErr: ErrInvalidPartitions},
				{command: &createTopicCommand{topic: Topic{Name: "leader-not-replica", ID: [16]byte{8}, Partitions: []Partition{{Replicas: []int32{1}, Leader: 2}}}}, wantErr: ErrInvalidPartitions},
				{command: &createTopicCommand{topic: Topic{Name: "isr-not-replica", ID: [16]byte{9}, Partitions: []Partition{{Replicas: []int32{1}, Leader: 1, ISR: []int32{3}}}}}, wantErr: ErrInvalidPartitions},
				{command: &createTopicCommand{topic: testTopic("unregistered-replica", 10, []int32{1}, []int32{2, 3})}, wantErr: ErrInvalidPartitions},
			},
			check: func(t *testing.T, state *State) {
				if state.TopicCount() != 1 {
					t.Errorf("%d topics, want 1", state.TopicCount())
				}
				topic, ok := state.TopicByID(orders.ID)
				if !ok || !reflect.DeepEqual(topic, orders) {
					t.Errorf("TopicByID = %+v, %t", topic, ok)
				}
			},
		},
		{
			name:    "delete topic",
			brokers: []int32{1, 2},
			steps: []fsmStep{
				{command: &createTopicCommand{topic: orders}, wantValue: orders},
				{command: &deleteTopicCommand{name: "missing"}, wantErr: ErrUnknownTopic},
				{command: &deleteTopicCommand{name: "orders", id: [16]byte{99}}, wantErr: ErrUnknownTopic},
				{command: &deleteTopicCommand{name: "orders", id: orders.ID}, wantValue: orders},
				{command: &deleteTopicCommand{name: "orders"}, wantErr: ErrUnknownTopic},
				// The name and the id are free again.
				{command: &createTopicCommand{topic: orders}, wantValue: orders},
				{command: &deleteTopicCommand{name: "orders"}, wantValue: orders},
			},
			check: func(t *testing.T, state *State) {
				if state.TopicCount() != 0 {
					t.Errorf("%d topics, want 0", state.TopicCount())
				}
				if _, ok := state.TopicByID(orders.ID); ok {
					t.Error("topic id still indexed")
				}
			},
		},
		{
			name:    "alter topic configs replaces the map",
			brokers: []int32{1, 2},
			steps: []fsmStep{
				{command: &createTopicCommand{topic: orders}, wantValue: orders},
				{command: &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"retention.ms": "1", "cleanup.policy": "compact"}}},
				{command: &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"retention.ms": "2"}}},
				{command: &alterTopicConfigsCommand{name: "orders", id: [16]byte{42}, configs: map[string]string{"x": "y"}}, wantErr: ErrUnknownTopic},
				{command: &alterTopicConfigsCommand{name: "missing"}, wantErr: ErrUnknownTopic},
				// A change computed from a set that is no longer the
				// topic's is refused; one from the current set applies.
				{command: &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"retention.ms": "3"},
					checked: true, from: map[string]string{"retention.ms": "1", "cleanup.policy": "compact"}}, wantErr: ErrStaleTopicConfigs},
				{command: &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"retention.ms": "3"},
					checked: true, from: map[string]string{"retention.ms": "2"}}},
				{command: &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"retention.ms": "2"}, checked: true}, wantErr: ErrStaleTopicConfigs},
			},
			check: func(t *testing.T, state *State) {
				topic, _ := state.Topic("orders")
				if want := map[string]string{"retention.ms": "3"}; !reflect.DeepEqual(topic.Configs, want) {
					t.Errorf("configs %v, want %v", topic.Configs, want)
				}
			},
		},
		{
			name:    "create partitions",
			brokers: []int32{1, 2, 3},
			steps: []fsmStep{
				{command: &createTopicCommand{topic: orders}, wantValue: orders},
				{command: &createPartitionsCommand{name: "orders", total: 2}, wantErr: ErrInvalidPartitions},
				{command: &createPartitionsCommand{name: "orders", total: 1}, wantErr: ErrInvalidPartitions},
				{command: &createPartitionsCommand{name: "orders", total: 4, partitions: newPartitions(2, [][]int32{{3}})}, wantErr: ErrInvalidPartitions},
				{command: &createPartitionsCommand{name: "orders", total: 3, partitions: newPartitions(2, [][]int32{{3, 3}})}, wantErr: ErrInvalidPartitions},
				{command: &createPartitionsCommand{name: "missing", total: 3, partitions: newPartitions(0, [][]int32{{3}})}, wantErr: ErrUnknownTopic},
				{command: &createPartitionsCommand{name: "orders", total: 4, partitions: newPartitions(2, [][]int32{{3}, {1, 4}})}, wantErr: ErrInvalidPartitions},
				{command: &createPartitionsCommand{name: "orders", total: 4, partitions: newPartitions(2, [][]int32{{3}, {1, 3}})}},
			},
			check: func(t *testing.T, state *State) {
				topic, _ := state.Topic("orders")
				want := append(newPartitions(0, [][]int32{{1, 2}, {2, 1}}), newPartitions(2, [][]int32{{3}, {1, 3}})...)
				if !reflect.DeepEqual(topic.Partitions, want) {
					t.Errorf("partitions %+v\nwant %+v", topic.Partitions, want)
				}
			},
		},
		{
			name: "allocate producer ids",
			steps: []fsmStep{
				{command: &allocateProducerIDsCommand{brokerID: 1, count: 1000}, wantValue: int64(0)},
				{command: &allocateProducerIDsCommand{brokerID: 2, count: 10}, wantValue: int64(1000)},
				{command: &allocateProducerIDsCommand{brokerID: 1, count: 0}, wantErr: ErrInvalidProducerIDs},
				{command: &allocateProducerIDsCommand{brokerID: 1, count: MaxProducerIDBlock + 1}, wantErr: ErrInvalidProducerIDs},
				{command: &allocateProducerIDsCommand{brokerID: -1, count: 1}, wantErr: ErrInvalidProducerIDs},
				{command: &allocateProducerIDsCommand{brokerID: 1, count: 1}, wantValue: int64(1010)},
				// A reservation lifts the next block past it, never lowers it.
				{command: &reserveProducerIDsCommand{below: 5000}},
				{command: &reserveProducerIDsCommand{below: 10}},
				{command: &reserveProducerIDsCommand{below: -1}, wantErr: ErrInvalidProducerIDs},
				{command: &allocateProducerIDsCommand{brokerID: 2, count: 10}, wantValue: int64(5000)},
			},
			check: func(t *testing.T, state *State) {
				if state.NextProducerID() != 5010 {
					t.Errorf("next producer id %d, want 5010", state.NextProducerID())
				}
			},
		},
		{
			name: "register brokers",
			steps: []fsmStep{
				{command: &registerBrokerCommand{registration: goldenRegistration}, wantValue: int64(1)},
				// A retry of the same registration keeps its epoch.
				{command: &registerBrokerCommand{registration: goldenRegistration}, wantValue: int64(1)},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.ID = -1 })}, wantErr: ErrInvalidBroker},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.IncarnationID = [16]byte{} })}, wantErr: ErrInvalidBroker},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.Endpoints = nil })}, wantErr: ErrInvalidBroker},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.Endpoints[1].Listener = "CLIENT" })}, wantErr: ErrInvalidBroker},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.Endpoints[0].Listener = "" })}, wantErr: ErrInvalidBroker},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.Endpoints[0].Host = "" })}, wantErr: ErrInvalidBroker},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.Endpoints[0].Port = 65536 })}, wantErr: ErrInvalidBroker},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.Endpoints[0].SecurityProtocol = "" })}, wantErr: ErrInvalidBroker},
				// A changed registration of the same incarnation is a new
				// registration.
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.Rack = "" })}, wantValue: int64(11)},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.IncarnationID[0]++ })}, wantValue: int64(12)},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.ID = 0 })}, wantValue: int64(13)},
			},
			check: func(t *testing.T, state *State) {
				want := Broker{
					ID: 1, IncarnationID: goldenIncarnation, Endpoints: goldenRegistration.Endpoints,
					Rack: goldenRegistration.Rack, DirectoryID: goldenDirectory, Fenced: true, Epoch: 12,
				}
				want.IncarnationID[0]++
				if broker, ok := state.Broker(1); !ok || !reflect.DeepEqual(broker, want) {
					t.Errorf("Broker(1) = %+v, %t\nwant %+v", broker, ok, want)
				}
				if brokers := state.Brokers(); len(brokers) != 2 || brokers[0].ID != 0 || brokers[1].ID != 1 || state.BrokerCount() != 2 {
					t.Errorf("Brokers() = %+v", brokers)
				}
				if endpoint, ok := want.Endpoint("INTERNAL"); !ok || endpoint.Port != 9094 {
					t.Errorf("Endpoint(INTERNAL) = %+v, %t", endpoint, ok)
				}
				if _, ok := state.Broker(-1); ok {
					t.Error("Broker(-1) found")
				}
			},
		},
		{
			name: "fence and unregister brokers",
			steps: []fsmStep{
				{command: &registerBrokerCommand{registration: goldenRegistration}, wantValue: int64(1)},
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
				{command: &setBrokerFencedCommand{id: 1, epoch: 2, fenced: true}, wantErr: ErrStaleBrokerEpoch},
				{command: &setBrokerFencedCommand{id: 1, epoch: AnyBrokerEpoch, fenced: true}, wantErr: ErrStaleBrokerEpoch},
				{command: &setBrokerFencedCommand{id: 9, epoch: 1, fenced: true}, wantErr: ErrUnknownBroker},
				{command: &registerBrokerCommand{registration: withRegistration(func(r *BrokerRegistration) { r.IncarnationID[0]++ })}, wantValue: int64(7)},
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}, wantErr: ErrStaleBrokerEpoch},
				{command: &unregisterBrokerCommand{id: 1, epoch: 1}, wantErr: ErrStaleBrokerEpoch},
				{command: &unregisterBrokerCommand{id: 1, epoch: 7}},
				{command: &unregisterBrokerCommand{id: 1, epoch: AnyBrokerEpoch}, wantErr: ErrUnknownBroker},
				{command: &registerBrokerCommand{registration: goldenRegistration}, wantValue: int64(12)},
				{command: &unregisterBrokerCommand{id: 1, epoch: AnyBrokerEpoch}},
			},
			check: func(t *testing.T, state *State) {
				if state.BrokerCount() != 0 {
					t.Errorf("%d brokers, want 0", state.BrokerCount())
				}
			},
		},
		{
			name:    "change partition",
			brokers: []int32{1, 2},
			steps: []fsmStep{
				// Brokers 1 and 2 (registered at indexes 1 and 2) are
				// unfenced: 1 may lead and change its ISR, 2 may join it.
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
				{command: &setBrokerFencedCommand{id: 2, epoch: 2, fenced: false}},
				{command: &createTopicCommand{topic: orders}, wantValue: orders},
				{command: changePartition(orders.ID, 0, 0, NoLeaderChange, false, 1), wantValue: Partition{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1}, PartitionEpoch: 1}},
				{command: changePartition(orders.ID, 0, 0, NoLeaderChange, false, 1, 2), wantErr: ErrStalePartitionEpoch},
				{command: changePartition(orders.ID, 0, 1, 2, false, 1), wantErr: ErrInvalidPartitions},
				{command: changePartition(orders.ID, 0, 1, NoLeaderChange, false, 1, 3), wantErr: ErrInvalidPartitions},
				{command: changePartition(orders.ID, 0, 1, NoLeaderChange, false, 1, 1), wantErr: ErrInvalidPartitions},
				{command: changePartition(orders.ID, 0, 1, NoLeaderChange, false, 2), wantErr: ErrInvalidPartitions},
				{command: changePartition(orders.ID, 0, 1, -3, false, 1), wantErr: ErrInvalidPartitions},
				{command: changePartition([16]byte{42}, 0, 1, NoLeaderChange, false, 1), wantErr: ErrUnknownTopic},
				{command: changePartition(orders.ID, 2, 0, NoLeaderChange, false, 1), wantErr: ErrUnknownPartition},
				{command: changePartition(orders.ID, -1, 0, NoLeaderChange, false, 1), wantErr: ErrUnknownPartition},
				// Election: the leader epoch moves with the leader.
				{command: changePartition(orders.ID, 0, 1, 2, false, 2), wantValue: Partition{Replicas: []int32{1, 2}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2}, PartitionEpoch: 2}},
				// No effective change: no new epoch.
				{command: changePartition(orders.ID, 0, 2, 2, false, 2), wantValue: Partition{Replicas: []int32{1, 2}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2}, PartitionEpoch: 2}},
				{command: changePartition(orders.ID, 0, 2, NoLeaderChange, true, 2), wantValue: Partition{Replicas: []int32{1, 2}, Leader: 2, LeaderEpoch: 2, ISR: []int32{2}, PartitionEpoch: 3}},
				{command: changePartition(orders.ID, 0, 3, -1, false), wantValue: Partition{Replicas: []int32{1, 2}, Leader: -1, LeaderEpoch: 3, PartitionEpoch: 4}},
				{command: changePartition(orders.ID, 1, 0, 1, false, 2, 1), wantValue: Partition{Index: 1, Replicas: []int32{2, 1}, Leader: 1, LeaderEpoch: 1, ISR: []int32{2, 1}, PartitionEpoch: 1}},
			},
			check: func(t *testing.T, state *State) {
				topic, _ := state.TopicByID(orders.ID)
				want := []Partition{
					{Index: 0, Replicas: []int32{1, 2}, Leader: -1, LeaderEpoch: 3, PartitionEpoch: 4},
					{Index: 1, Replicas: []int32{2, 1}, Leader: 1, LeaderEpoch: 1, ISR: []int32{2, 1}, PartitionEpoch: 1},
				}
				if !reflect.DeepEqual(topic.Partitions, want) {
					t.Errorf("partitions %+v\nwant %+v", topic.Partitions, want)
				}
			},
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			test.check(t, applySteps(t, append(registerBrokers(test.brokers...), test.steps...)).state())
		})
	}
}

// fsmStep is one command of a test sequence and the answer it must get.
type fsmStep struct {
	command command
	wantErr error
	// wantValue, unless nil, is the result value the command must return.
	wantValue any
}

// applySteps applies steps in order to a new FSM (step i as the entry at
// index i+1) and returns it. It fails at the first answer that differs from
// the step's, when a rejected command changed the state, and when a state
// breaks an invariant (checkInvariants).
func applySteps(t *testing.T, steps []fsmStep) *fsm {
	t.Helper()
	f := newFSM(discardLogger())
	for i, step := range steps {
		before := f.state()
		result := applyCommand(f, uint64(i+1), step.command)
		if !errors.Is(result.err, step.wantErr) || (step.wantErr == nil && result.err != nil) {
			t.Fatalf("step %d (%s): error %v, want %v", i, step.command.commandType(), result.err, step.wantErr)
		}
		if step.wantValue != nil && !reflect.DeepEqual(result.value, step.wantValue) {
			t.Fatalf("step %d (%s): value %+v, want %+v", i, step.command.commandType(), result.value, step.wantValue)
		}
		if result.err != nil {
			requireStatesEqual(t, f.state(), before.withAppliedIndex(uint64(i+1)))
		}
		checkInvariants(t, f.state())
	}
	return f
}

func changePartition(topicID [16]byte, partition, partitionEpoch, leader int32, bump bool, isr ...int32) *changePartitionCommand {
	return &changePartitionCommand{change: PartitionChange{
		TopicID: topicID, Partition: partition, PartitionEpoch: partitionEpoch,
		Leader: leader, ISR: isr, BumpLeaderEpoch: bump,
	}}
}

// withRegistration returns a copy of goldenRegistration changed by change.
func withRegistration(change func(*BrokerRegistration)) BrokerRegistration {
	registration := goldenRegistration
	registration.Endpoints = slices.Clone(goldenRegistration.Endpoints)
	change(&registration)
	return registration
}

func TestFSMDoesNotModifyPublishedStates(t *testing.T) {
	f := applySteps(t, append(registerBrokers(1, 2),
		fsmStep{command: &createTopicCommand{topic: testTopic("orders", 1, []int32{1})}},
		fsmStep{command: &alterTopicConfigsCommand{name: "orders", configs: map[string]string{"a": "1"}}},
	))
	old := f.state()
	oldTopic, _ := old.Topic("orders")
	oldBytes := snapshotOf(t, old)

	index := old.AppliedIndex()
	for _, c := range []command{
		&alterTopicConfigsCommand{name: "orders", configs: map[string]string{"a": "2"}},
		&createPartitionsCommand{name: "orders", total: 2, partitions: newPartitions(1, [][]int32{{2}})},
		&createTopicCommand{topic: testTopic("other", 2, []int32{1})},
		changePartition(oldTopic.ID, 0, 0, -1, false),
		&deleteTopicCommand{name: "orders"},
	} {
		index++
		if result := applyCommand(f, index, c); result.err != nil {
			t.Fatalf("%s: %v", c.commandType(), result.err)
		}
	}

	if !bytes.Equal(snapshotOf(t, old), oldBytes) {
		t.Fatal("an old State changed after later commands")
	}
	if oldTopic.Configs["a"] != "1" || len(oldTopic.Partitions) != 1 || oldTopic.Partitions[0].Leader != 1 || len(oldTopic.Partitions[0].ISR) != 1 {
		t.Fatalf("a Topic read earlier changed: %+v", oldTopic)
	}
}

func TestChangedIsClosedOnEveryApply(t *testing.T) {
	f := newFSM(discardLogger())
	state, changed := f.watch()
	applyCommand(f, 1, &allocateProducerIDsCommand{brokerID: 1, count: 1})
	select {
	case <-changed:
	default:
		t.Fatal("changed channel still open after Apply")
	}
	newState, newChanged := f.watch()
	if newState == state || newChanged == changed {
		t.Fatal("watch did not move to a new State and channel")
	}
	f.ApplyBatch([]*raft.Log{{Index: 2, Type: raft.LogConfiguration}, {Index: 3, Type: raft.LogCommand, Data: encodeCommand(&allocateProducerIDsCommand{brokerID: 1, count: 1})}})
	select {
	case <-newChanged:
	default:
		t.Fatal("changed channel still open after ApplyBatch")
	}
	if got := f.state().AppliedIndex(); got != 3 {
		t.Fatalf("applied index %d, want 3", got)
	}
}

func snapshotOf(t *testing.T, state *State) []byte {
	t.Helper()
	var buffer bytes.Buffer
	if err := writeSnapshot(&buffer, state); err != nil {
		t.Fatal(err)
	}
	return buffer.Bytes()
}

// commandGenerator makes random command sequences over a small name space so
// that commands often collide (existing names, wrong ids, shrinking counts)
// and names share prefixes in the radix trees.
type commandGenerator struct {
	random *rand.Rand
	ids    map[string][16]byte // last id used per name
	counts map[string]int      // partition count per created name, as far as known
	// state, when set, returns the state the next command applies to, so
	// that broker, partition and segment commands are often valid (their
	// epochs are hard to hit blindly); without it they are mostly rejected.
	state func() *State
}

var generatorNames = []string{"a", "ab", "abc", "b", "b.c", "b-c", "orders", "orders_v2", "__consumer_offsets"}
var generatorConfigKeys = []string{"retention.ms", "cleanup.policy", "segment.bytes", "min.insync.replicas"}

func newCommandGenerator(seed uint64) *commandGenerator {
	return &commandGenerator{random: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ids: map[string][16]byte{}, counts: map[string]int{}}
}

func (g *commandGenerator) name() string { return generatorNames[g.random.IntN(len(generatorNames))] }

// replicas returns 1..3 distinct broker ids out of 0..4 (the ids
// nextClusterCommand registers); with a state, mostly registered ones, so
// that CreateTopic and CreatePartitions are often accepted.
func (g *commandGenerator) replicas() []int32 {
	ids := []int32{0, 1, 2, 3, 4}
	if g.state != nil && g.chance(90) {
		if registered := g.state().Brokers(); len(registered) > 0 {
			ids = ids[:0]
			for _, broker := range registered {
				ids = append(ids, broker.ID)
			}
		}
	}
	g.random.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids[:1+g.random.IntN(min(3, len(ids)))]
}

func (g *commandGenerator) partitions(count int) []Partition {
	partitions := make([]Partition, count)
	for i := range partitions {
		replicas := g.replicas()
		partitions[i] = Partition{
			Replicas:       replicas,
			Leader:         replicas[g.random.IntN(len(replicas))],
			LeaderEpoch:    g.random.Int32N(5),
			ISR:            replicas[:g.random.IntN(len(replicas)+1)],
			PartitionEpoch: g.random.Int32N(5),
		}
		if g.random.IntN(5) == 0 {
			partitions[i].Leader = -1
		}
	}
	return partitions
}

func (g *commandGenerator) configs() map[string]string {
	configs := map[string]string{}
	for range g.random.IntN(3) {
		configs[generatorConfigKeys[g.random.IntN(len(generatorConfigKeys))]] = fmt.Sprint(g.random.IntN(1000))
	}
	return configs
}

// id returns the id last used for name, or occasionally a wrong one or zero.
func (g *commandGenerator) id(name string) [16]byte {
	switch g.random.IntN(4) {
	case 0:
		return [16]byte{}
	case 1:
		return [16]byte{byte(g.random.IntN(256)), 1}
	default:
		return g.ids[name]
	}
}

// nextACLCommand returns a CreateAcls (create) or DeleteAcls command,
// occasionally an invalid one.
func (g *commandGenerator) nextACLCommand(create bool) command {
	principals := []string{"User:a", "User:b", authz.WildcardPrincipal}
	if create {
		var bindings []authz.Binding
		for range 1 + g.random.IntN(3) {
			b := authz.Binding{
				Pattern: authz.Pattern{Type: authz.ResourceType(2 + g.random.IntN(2)), Name: g.name(), PatternType: authz.PatternType(3 + g.random.IntN(2))},
				Entry: authz.Entry{Principal: principals[g.random.IntN(len(principals))], Host: "*",
					Operation: authz.Operation(2 + g.random.IntN(11)), Permission: authz.Permission(2 + g.random.IntN(2))},
			}
			if g.chance(5) {
				b.Entry.Operation = authz.OpAny
			}
			bindings = append(bindings, b)
		}
		return &createACLsCommand{bindings: bindings}
	}
	filter := authz.Filter{ResourceType: authz.ResourceAny, PatternType: authz.PatternAny, Operation: authz.OpAny, Permission: authz.PermissionAny}
	if g.chance(50) {
		name := g.name()
		filter.Name = &name
		filter.PatternType = authz.PatternType(1 + g.random.IntN(4))
	}
	if g.chance(30) {
		filter.Principal = &principals[g.random.IntN(len(principals))]
	}
	if g.chance(10) {
		filter.Permission = authz.PermissionUnknown
	}
	return &deleteACLsCommand{filters: []authz.Filter{filter}}
}

func (g *commandGenerator) next() command {
	name := g.name()
	choice := g.random.IntN(21)
	if choice == 20 {
		return g.quotaCommand()
	}
	if choice == 19 {
		return g.scramCommand()
	}
	if choice >= 17 {
		return g.nextACLCommand(choice == 17)
	}
	if choice >= 7 {
		return g.nextClusterCommand(choice - 7)
	}
	switch choice {
	case 0:
		return &initClusterCommand{clusterID: []string{"c1", "c2"}[g.random.IntN(2)]}
	case 1, 2:
		var id [16]byte
		for i := range id {
			id[i] = byte(g.random.IntN(256))
		}
		if g.random.IntN(8) == 0 {
			id = g.ids[g.name()] // reuse another topic's id
		}
		g.ids[name] = id
		count := 1 + g.random.IntN(4)
		g.counts[name] = count
		return &createTopicCommand{topic: Topic{
			Name: name, ID: id, Configs: g.configs(), Internal: g.random.IntN(4) == 0,
			CreatedAtUnixMilli: g.random.Int64N(1 << 41), Partitions: g.partitions(count),
		}}
	case 3:
		return &deleteTopicCommand{name: name, id: g.id(name)}
	case 4:
		c := &alterTopicConfigsCommand{name: name, id: g.id(name), configs: g.configs()}
		if g.chance(50) {
			// Compare-and-set (v2): mostly from the topic's current set.
			c.checked, c.from = true, g.configs()
			if topic, ok := g.current().Topic(name); ok && g.chance(70) {
				c.from = topic.Configs
			}
		}
		return c
	case 5:
		current := g.counts[name]
		added := g.random.IntN(3) // 0 is rejected
		return &createPartitionsCommand{name: name, id: g.id(name), total: int32(current + added), partitions: g.partitions(added)}
	default:
		if g.chance(20) {
			return &reserveProducerIDsCommand{below: g.random.Int64N(20000) - 4000}
		}
		return &allocateProducerIDsCommand{brokerID: g.random.Int32N(4) - 1, count: g.random.Int64N(2000)}
	}
}

// TestPersistStreamsWhileApplyContinues checks snapshot isolation: Persist,
// running concurrently with Apply, writes the state captured by Snapshot.
func TestPersistStreamsWhileApplyContinues(t *testing.T) {
	generator := newCommandGenerator(99)
	f := newFSM(discardLogger())
	index := uint64(0)
	for range 500 {
		index++
		applyCommand(f, index, generator.next())
	}
	index++
	if result := applyCommand(f, index, &registerBrokerCommand{registration: testRegistration(1)}); result.err != nil {
		t.Fatal(result.err)
	}
	for i := range 300 {
		index++
		topic := testTopic(fmt.Sprintf("bulk-%04d", i), 0, []int32{1})
		topic.ID = [16]byte{0xbb, byte(i >> 8), byte(i)}
		if result := applyCommand(f, index, &createTopicCommand{topic: topic}); result.err != nil {
			t.Fatal(result.err)
		}
	}
	captured := f.state()
	snapshot, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snapshot.Release()

	var sink memorySink
	var persistErr error
	var wait sync.WaitGroup
	wait.Go(func() { persistErr = snapshot.Persist(&sink) })
	for range 500 {
		index++
		applyCommand(f, index, generator.next())
	}
	for i := range 300 {
		index++
		applyCommand(f, index, &deleteTopicCommand{name: fmt.Sprintf("bulk-%04d", i)})
	}
	wait.Wait()
	if persistErr != nil {
		t.Fatal(persistErr)
	}
	requireStatesEqual(t, restore(t, sink.Bytes()).state(), captured)
	if f.state().AppliedIndex() == captured.AppliedIndex() {
		t.Fatal("no command applied after the snapshot")
	}
}
