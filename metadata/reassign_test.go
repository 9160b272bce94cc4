package metadata

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/google/uuid"
)

// nextReassignCommand is a random reassignment step or dynamic broker
// config change for the property tests.
func (g *commandGenerator) nextReassignCommand() command {
	topic, partition := g.pickPartition()
	c := &alterPartitionReassignmentCommand{topicID: topic.ID, partition: partition, partitionEpoch: -1, leader: -1}
	switch g.random.IntN(5) {
	case 0:
		c.kind = reassignCancel
	case 1:
		c.kind = reassignFinish
		if topic.HasPartition(partition) {
			p := topic.Partitions[partition]
			c.partitionEpoch = p.PartitionEpoch
			if target := p.TargetReplicas(); len(target) > 0 {
				c.leader = target[g.random.IntN(len(target))]
			}
		}
	case 2:
		configs := map[string]string{}
		if g.chance(70) {
			configs["leader.replication.throttled.rate"] = "1000"
		}
		c := &alterBrokerConfigsCommand{broker: g.random.Int32N(5) - 2, configs: configs} // -2 is refused
		if g.chance(50) {
			// Compare-and-set (v2): mostly from the broker's current set.
			c.checked, c.from = true, map[string]string{"follower.replication.throttled.rate": "5"}
			if g.chance(70) {
				c.from = g.current().BrokerConfigs(c.broker)
			}
		}
		return c
	default:
		c.kind = reassignStart
		for _, r := range []int32{1, 2, 3, 4} {
			if g.chance(50) {
				c.target = append(c.target, r)
			}
		}
		g.random.Shuffle(len(c.target), func(i, j int) { c.target[i], c.target[j] = c.target[j], c.target[i] })
	}
	return c
}

// crashedAndBack is broker id's registration by a new incarnation after an
// unclean stop.
func crashedAndBack(id int32) BrokerRegistration {
	registration := testRegistration(id)
	registration.IncarnationID[15] = 0xee
	return registration
}

func start(topicID [16]byte, partition int32, target ...int32) *alterPartitionReassignmentCommand {
	return &alterPartitionReassignmentCommand{kind: reassignStart, topicID: topicID, partition: partition, partitionEpoch: -1, target: target, leader: -1}
}

func cancelReassign(topicID [16]byte, partition int32) *alterPartitionReassignmentCommand {
	return &alterPartitionReassignmentCommand{kind: reassignCancel, topicID: topicID, partition: partition, partitionEpoch: -1, leader: -1}
}

func finish(topicID [16]byte, partition, partitionEpoch, leader int32) *alterPartitionReassignmentCommand {
	return &alterPartitionReassignmentCommand{kind: reassignFinish, topicID: topicID, partition: partition, partitionEpoch: partitionEpoch, leader: leader}
}

// TestReassignmentStateMachine drives reassignments through the state
// machine step by step: start (replicas = target + removed, adding and
// removing sets), the new replica joining the ISR through an ordinary
// ISR change, the finish (removed replicas leave the replicas and the
// ISR, the leader moves off a removed replica, the leader epoch is bumped
// to fence them), cancel, re-targeting, and Kafka's refusals.
func TestReassignmentStateMachine(t *testing.T) {
	orders := testTopic("orders", 1, []int32{1, 2}, []int32{2, 1})
	id := orders.ID
	partition := func(state *State, index int32) Partition {
		topic, _ := state.TopicByID(id)
		return topic.Partitions[index]
	}
	tests := []struct {
		name  string
		steps []fsmStep
		want  Partition
	}{
		{
			name: "move {1,2} to {2,3}: the leader 1 is removed",
			steps: []fsmStep{
				{command: start(id, 0, 2, 3), wantValue: Partition{Replicas: []int32{2, 3, 1}, Leader: 1, ISR: []int32{1, 2}, PartitionEpoch: 1,
					AddingReplicas: []int32{3}, RemovingReplicas: []int32{1}}},
				// Not in sync yet: the controller may not finish.
				{command: finish(id, 0, 1, 2), wantErr: ErrInvalidReplicaAssignment},
				// Broker 1 (registered at index 1) is unfenced: it leads,
				// and a fenced leader changes no ISR.
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
				// Replica 3 caught up: the leader adds it to the ISR.
				{command: changePartition(id, 0, 1, NoLeaderChange, false, 1, 2, 3)},
				{command: finish(id, 0, 2, 1), wantErr: ErrInvalidReplicaAssignment}, // 1 is being removed
				{command: finish(id, 0, 1, 2), wantErr: ErrStalePartitionEpoch},
				{command: finish(id, 0, 2, 2), wantErr: ErrIneligibleReplica}, // 2 is fenced
				// Broker 2 (registered at index 2) is unfenced: it may lead.
				{command: &setBrokerFencedCommand{id: 2, epoch: 2, fenced: false}},
				{command: finish(id, 0, 2, 2)},
				{command: cancelReassign(id, 0), wantErr: ErrNoReassignmentInProgress},
			},
			want: Partition{Replicas: []int32{2, 3}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2, 3}, PartitionEpoch: 3},
		},
		{
			name: "only removals are in sync at once; the leader stays",
			steps: []fsmStep{
				{command: start(id, 1, 2)},
				// Broker 2 (registered at index 2) is unfenced: it may lead.
				{command: &setBrokerFencedCommand{id: 2, epoch: 2, fenced: false}},
				{command: finish(id, 1, 1, 2)},
			},
			want: Partition{Index: 1, Replicas: []int32{2}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2}, PartitionEpoch: 2},
		},
		{
			name: "a permutation reorders the replicas without a reassignment",
			steps: []fsmStep{
				{command: start(id, 0, 2, 1)},
				{command: cancelReassign(id, 0), wantErr: ErrNoReassignmentInProgress},
			},
			want: Partition{Replicas: []int32{2, 1}, Leader: 1, ISR: []int32{1, 2}, PartitionEpoch: 1},
		},
		{
			name: "cancel drops the adding replica from the replicas and ISR, and moves leadership off it",
			steps: []fsmStep{
				{command: start(id, 0, 3, 1)},
				{command: changePartition(id, 0, 1, 3, false, 1, 2, 3)}, // 3 caught up and leads (its preferred)
				// Broker 1 (registered at index 1) is unfenced: it may lead.
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
				{command: cancelReassign(id, 0)},
			},
			want: Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, ISR: []int32{1, 2}, PartitionEpoch: 3},
		},
		{
			name: "cancel with no unfenced in-sync replica left leaves the partition to the controller's election",
			steps: []fsmStep{
				{command: start(id, 0, 3, 1)},
				{command: changePartition(id, 0, 1, 3, false, 1, 2, 3)},
				{command: cancelReassign(id, 0)},
			},
			want: Partition{Replicas: []int32{1, 2}, Leader: -1, LeaderEpoch: 2, ISR: []int32{1, 2}, PartitionEpoch: 3},
		},
		{
			name: "the new replica crashes after joining the ISR: not finished; cancel reverts",
			steps: []fsmStep{
				{command: start(id, 0, 2, 3)},
				// Broker 1 (registered at index 1) is unfenced: it leads,
				// and a fenced leader changes no ISR.
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
				{command: changePartition(id, 0, 1, NoLeaderChange, false, 1, 2, 3)},
				// Broker 3 restarts after an unclean stop (a new
				// incarnation): it leaves every ISR, what it had may be lost.
				{command: &registerBrokerCommand{registration: crashedAndBack(3)}},
				{command: finish(id, 0, 3, 2), wantErr: ErrInvalidReplicaAssignment},
				{command: cancelReassign(id, 0)},
			},
			want: Partition{Replicas: []int32{2, 1}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 2}, PartitionEpoch: 4},
		},
		{
			name: "no cancel when only the replicas being added are in sync",
			steps: []fsmStep{
				{command: start(id, 1, 3)},
				// Replica 3 caught up while 1 and 2 fell out of the ISR
				// (it leads); finish is the controller's next step.
				{command: changePartition(id, 1, 1, 3, false, 3)},
				{command: cancelReassign(id, 1), wantErr: ErrInvalidReplicaAssignment},
				{command: finish(id, 1, 2, 3)},
			},
			want: Partition{Index: 1, Replicas: []int32{3}, Leader: 3, LeaderEpoch: 2, ISR: []int32{3}, PartitionEpoch: 3},
		},
		{
			// As KRaft: the reassignment in progress is reverted first, so
			// 4, which the new target drops, leaves at once (the leader
			// epoch fences it) and 3 is still being added.
			name: "a new target replaces the one in progress, from the replicas before it",
			steps: []fsmStep{
				{command: start(id, 0, 3, 4)},
				{command: start(id, 0, 1, 3), wantValue: Partition{Replicas: []int32{1, 3, 2}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 2}, PartitionEpoch: 2,
					AddingReplicas: []int32{3}, RemovingReplicas: []int32{2}}},
				// Broker 1 (registered at index 1) is unfenced: it leads,
				// and a fenced leader changes no ISR.
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
				{command: changePartition(id, 0, 2, NoLeaderChange, false, 1, 2, 3)},
				{command: finish(id, 0, 3, 1)},
			},
			want: Partition{Replicas: []int32{1, 3}, Leader: 1, LeaderEpoch: 2, ISR: []int32{1, 3}, PartitionEpoch: 4},
		},
		{
			name: "a new target drops the adding replica that leads: leadership moves to an in-sync replica",
			steps: []fsmStep{
				{command: start(id, 0, 3, 1)},
				{command: changePartition(id, 0, 1, 3, false, 1, 2, 3)}, // 3 caught up and leads
				{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
				{command: start(id, 0, 1, 2, 4), wantValue: Partition{Replicas: []int32{1, 2, 4}, Leader: 1, LeaderEpoch: 2, ISR: []int32{1, 2}, PartitionEpoch: 3,
					AddingReplicas: []int32{4}}},
			},
			want: Partition{Replicas: []int32{1, 2, 4}, Leader: 1, LeaderEpoch: 2, ISR: []int32{1, 2}, PartitionEpoch: 3, AddingReplicas: []int32{4}},
		},
		{
			name: "a new target that would leave no in-sync replica is refused",
			steps: []fsmStep{
				{command: start(id, 1, 3)},
				{command: changePartition(id, 1, 1, 3, false, 3)}, // only 3, being added, is in sync
				{command: start(id, 1, 4), wantErr: ErrInvalidReplicaAssignment},
			},
			want: Partition{Index: 1, Replicas: []int32{3, 2, 1}, Leader: 3, LeaderEpoch: 1, ISR: []int32{3}, PartitionEpoch: 2,
				AddingReplicas: []int32{3}, RemovingReplicas: []int32{2, 1}},
		},
		{
			name: "refusals",
			steps: []fsmStep{
				{command: start(id, 0), wantErr: ErrInvalidReplicaAssignment},
				{command: start(id, 0, 2, 2), wantErr: ErrInvalidReplicaAssignment},
				{command: start(id, 0, 2, 9), wantErr: ErrInvalidReplicaAssignment}, // not registered
				{command: start(id, 0, -1), wantErr: ErrInvalidReplicaAssignment},
				{command: start(id, 5, 1), wantErr: ErrUnknownPartition},
				{command: start([16]byte{9}, 0, 1), wantErr: ErrUnknownTopic},
				{command: cancelReassign(id, 0), wantErr: ErrNoReassignmentInProgress},
				{command: finish(id, 0, 0, 1), wantErr: ErrNoReassignmentInProgress},
			},
			want: orders.Partitions[0],
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			steps := append(registerBrokers(1, 2, 3, 4), fsmStep{command: &createTopicCommand{topic: orders}},
				// The brokers being added are unfenced (KIP-841: a fenced
				// broker does not join an ISR); 1 and 2 stay fenced
				// unless a case unfences them.
				fsmStep{command: &setBrokerFencedCommand{id: 3, epoch: 3, fenced: false}},
				fsmStep{command: &setBrokerFencedCommand{id: 4, epoch: 4, fenced: false}})
			f := applySteps(t, append(steps, test.steps...))
			got := partition(f.state(), test.want.Index)
			if !reflect.DeepEqual(got, test.want) {
				t.Fatalf("partition %+v\nwant      %+v", got, test.want)
			}
			// The snapshot carries the reassignment state.
			restored, err := readSnapshot(bytesReader(snapshotOf(t, f.state())))
			if err != nil {
				t.Fatal(err)
			}
			requireStatesEqual(t, restored, f.state())
		})
	}
}

// TestReassignmentFinishRefusesFencedBrokers: a finish whose leader is
// not a registered, unfenced, in-sync replica, or with a target replica
// that is registered and fenced, is refused with ErrIneligibleReplica
// (AlterPartitionReassignment v3): the controller decided it on a state
// from before the fence, which touched no partition, so the partition
// epoch it names is still current (see
// TestControllerFinishRefusedForABrokerFencedMeanwhile). A version 2
// entry, from an earlier build, applies as it did then.
func TestReassignmentFinishRefusesFencedBrokers(t *testing.T) {
	topic := testTopic("t", 1, []int32{1, 2})
	steps := append(registerBrokers(1, 2, 3), // broker id's epoch is id
		fsmStep{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
		fsmStep{command: &setBrokerFencedCommand{id: 2, epoch: 2, fenced: false}},
		fsmStep{command: &setBrokerFencedCommand{id: 3, epoch: 3, fenced: false}},
		fsmStep{command: &createTopicCommand{topic: topic}},
		fsmStep{command: start(topic.ID, 0, 3, 2)},
		// Replica 3 caught up: in sync, the controller may finish.
		fsmStep{command: changePartition(topic.ID, 0, 1, NoLeaderChange, false, 1, 2, 3)},
		// Then broker 3's session ends.
		fsmStep{command: &setBrokerFencedCommand{id: 3, epoch: 3, fenced: true}})

	apply, partition := fencedLeaderSetup(t, steps)
	before := partition()
	for _, test := range []struct {
		name   string
		leader int32
	}{
		{"fenced broker 3 leading", 3},
		{"broker 2 leading, fenced broker 3 a target replica", 2},
	} {
		if result := apply(finish(topic.ID, 0, 2, test.leader), 0); !errors.Is(result.err, ErrIneligibleReplica) {
			t.Fatalf("finish with %s: %v, want ErrIneligibleReplica", test.name, result.err)
		}
	}
	// Gone altogether, broker 3 is not registered: it does not lead.
	if result := apply(&unregisterBrokerCommand{id: 3, epoch: 3}, 0); result.err != nil {
		t.Fatal(result.err)
	}
	if result := apply(finish(topic.ID, 0, 2, 3), 0); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("finish with unregistered broker 3 leading: %v, want ErrIneligibleReplica", result.err)
	}
	if p := partition(); !reflect.DeepEqual(p, before) {
		t.Fatalf("after the refused finishes: %+v\nwant unchanged %+v", p, before)
	}

	// As a version 2 entry, written by an earlier build, it applies.
	apply, partition = fencedLeaderSetup(t, steps)
	if result := apply(finish(topic.ID, 0, 2, 3), 2); result.err != nil {
		t.Fatalf("version 2 entry of a finish with fenced broker 3 leading: %v", result.err)
	}
	if p := partition(); p.Reassigning() || p.Leader != 3 || !slices.Equal(p.ISR, []int32{2, 3}) {
		t.Fatalf("after the version 2 entry: %+v, want leader 3, ISR [2 3], finished", p)
	}
}

// TestReassignmentAndBrokerConfigsSnapshotGolden pins the extension
// records (0x0b) of a snapshot: a reassignment in progress and dynamic
// broker configs of one broker and of the cluster default.
func TestReassignmentAndBrokerConfigsSnapshotGolden(t *testing.T) {
	orders := testTopic("orders", 1, []int32{1, 2})
	f := applySteps(t, append(registerBrokers(1, 2, 3),
		fsmStep{command: &createTopicCommand{topic: orders}},
		fsmStep{command: start(orders.ID, 0, 2, 3)},
		fsmStep{command: &alterBrokerConfigsCommand{broker: 2, configs: map[string]string{"leader.replication.throttled.rate": "1048576"}}},
		fsmStep{command: &alterBrokerConfigsCommand{broker: ClusterDefaultBroker, configs: map[string]string{"follower.replication.throttled.rate": "2048"}}},
	))
	state := f.state()
	if v, ok := state.BrokerConfig(2, "leader.replication.throttled.rate"); !ok || v != "1048576" {
		t.Fatalf("broker 2's own config: %q %v", v, ok)
	}
	if v, ok := state.BrokerConfig(2, "follower.replication.throttled.rate"); !ok || v != "2048" {
		t.Fatalf("broker 2's cluster default: %q %v", v, ok)
	}
	encoded := snapshotOf(t, state)
	checkGolden(t, "snapshot-v1-reassignment.bin", encoded)
	restored, err := readSnapshot(bytesReader(readGolden(t, "snapshot-v1-reassignment.bin")))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, state)
	if got := restored.Reassignments(); len(got) != 1 || !slices.Equal(got[0].AddingReplicas, []int32{3}) || !slices.Equal(got[0].RemovingReplicas, []int32{1}) {
		t.Fatalf("restored reassignments %+v", got)
	}
	// Clearing a broker's configs removes them.
	f2 := applySteps(t, []fsmStep{{command: &alterBrokerConfigsCommand{broker: 2, configs: map[string]string{"a.b": "1"}}},
		{command: &alterBrokerConfigsCommand{broker: 2}}, {command: &alterBrokerConfigsCommand{broker: -2}, wantErr: ErrInvalidBroker}})
	if configs := f2.state().BrokerConfigs(2); configs != nil {
		t.Fatalf("configs after clearing: %v", configs)
	}
}

// allBrokerConfigs lists every broker's dynamic configs by id.
func allBrokerConfigs(s *State) map[int32]map[string]string {
	out := map[int32]map[string]string{}
	for id := ClusterDefaultBroker; id < 8; id++ {
		if configs := s.BrokerConfigs(id); configs != nil {
			out[id] = configs
		}
	}
	return out
}

// TestClusterReassignmentSurvivesControllerFailover: a reassignment
// started through one node continues after the controller that saw it
// start dies: the new controller finishes it once the added replica is in
// sync, moving leadership off the removed replica, and a cancel of the
// next one reverts it. The state is in the quorum, so nothing of it lived
// in the dead controller.
func TestClusterReassignmentSurvivesControllerFailover(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	beats, stopBeats := context.WithCancel(ctx)
	defer stopBeats()
	for id, s := range c.stores {
		epoch, err := s.RegisterBroker(ctx, BrokerRegistration{ID: id, IncarnationID: uuid.New(),
			Endpoints: []BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9000 + id, SecurityProtocol: "PLAINTEXT"}}})
		if err != nil {
			t.Fatalf("register %d: %v", id, err)
		}
		// Every broker heartbeats through every node, so that the
		// controller hears from it whichever node leads.
		for _, through := range c.stores {
			go heartbeats(beats, through, id, epoch)
		}
	}
	_, any := c.follower()
	waitState(t, any, "all brokers unfenced", func(s *State) bool {
		for _, b := range s.Brokers() {
			if b.Fenced {
				return false
			}
		}
		return s.BrokerCount() == 3
	})
	topic, err := any.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	// Started through a follower, while broker 1 leads the partition.
	started, err := any.StartReassignment(ctx, topic.ID, 0, []int32{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if !started.Reassigning() {
		t.Fatalf("not reassigning: %+v", started)
	}
	// The controller dies before the new replica is in sync.
	leaderID, _ := c.leader()
	c.stop(leaderID)
	newLeaderID, store := c.leader()
	if newLeaderID == leaderID {
		t.Fatal("the stopped node still leads")
	}
	if got := store.State().Reassignments(); len(got) != 1 {
		t.Fatalf("reassignments after failover: %+v", got)
	}
	// Replica 3 caught up: its leader adds it to the ISR (retried while
	// the controller changes the partition meanwhile, e.g. moving its
	// leadership to the preferred replica 2).
	var p Partition
	for {
		tp, _ := store.State().Topic("t")
		p = tp.Partitions[0]
		_, err := store.ChangePartition(ctx, PartitionChange{TopicID: tp.ID, Partition: 0, PartitionEpoch: p.PartitionEpoch, Leader: NoLeaderChange, ISR: append(slices.Clone(p.ISR), 3)})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrStalePartitionEpoch) {
			t.Fatal(err)
		}
	}
	state := waitState(t, store, "the new controller to finish the reassignment", func(s *State) bool {
		tp, _ := s.Topic("t")
		return !tp.Partitions[0].Reassigning()
	})
	tp, _ := state.Topic("t")
	done := tp.Partitions[0]
	if !slices.Equal(done.Replicas, []int32{2, 3}) || !slices.Contains(done.Replicas, done.Leader) || slices.Contains(done.ISR, 1) || done.LeaderEpoch <= p.LeaderEpoch {
		t.Fatalf("finished partition %+v (before: %+v)", done, p)
	}

	// A cancel reverts the next one.
	if _, err := store.StartReassignment(ctx, tp.ID, 0, []int32{3, 1}); err != nil {
		t.Fatal(err)
	}
	cancelled, err := store.CancelReassignment(ctx, tp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.Reassigning() || !slices.Equal(cancelled.Replicas, []int32{3, 2}) || slices.Contains(cancelled.ISR, 1) {
		t.Fatalf("cancelled partition %+v", cancelled)
	}
	if _, err := store.CancelReassignment(ctx, tp.ID, 0); !errors.Is(err, ErrNoReassignmentInProgress) {
		t.Fatalf("second cancel: %v", err)
	}
}
