package metadata

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// TestRegisterBrokerReleasesEarlierIncarnation: a new incarnation of a
// broker takes nothing over from the one before (DESIGN.md,
// "Incarnations"). In the same command that registers it, every partition
// it leads loses its leader (a higher leader epoch, so nothing the earlier
// incarnation wrote at the old epoch counts), and after an unclean
// shutdown it leaves every ISR it shares (KIP-966: its log may have lost
// its unsynced tail) — except where it is the only member, which nothing
// else could replace. A retry of the same registration changes nothing,
// and a version 1 entry (earlier builds) applies as it did then.
func TestRegisterBrokerReleasesEarlierIncarnation(t *testing.T) {
	topic := testTopic("t", 1, []int32{1, 2, 3}, []int32{2, 1, 3}, []int32{2, 3, 1}, []int32{1})
	directory := [16]byte{0xd1}
	setup := func(t *testing.T) (*fsm, uint64) {
		steps := registerBrokers(1, 2, 3)
		first := steps[0].command.(*registerBrokerCommand)
		first.registration.DirectoryID = directory
		f := applySteps(t, append(steps, fsmStep{command: &createTopicCommand{topic: topic}}))
		index := uint64(4)
		// Partition 2: broker 1 has fallen out of the ISR, on a change by
		// its leader, broker 2 (unfenced: a fenced leader changes no ISR).
		index++
		if result := applyCommand(f, index, &setBrokerFencedCommand{id: 2, epoch: 2, fenced: false}); result.err != nil {
			t.Fatal(result.err)
		}
		index++
		if result := applyCommand(f, index, changePartition(topic.ID, 2, 0, NoLeaderChange, false, 2, 3)); result.err != nil {
			t.Fatal(result.err)
		}
		return f, index
	}
	current := testRegistration(1)
	current.DirectoryID = directory
	restarted := current
	restarted.IncarnationID = uuid.New()
	clean := restarted
	clean.CleanShutdown = true
	cleanElsewhere := clean
	cleanElsewhere.DirectoryID = [16]byte{0xd2}
	withoutDirectory := restarted // as builds before directory ids registered
	withoutDirectory.DirectoryID = [16]byte{}
	type want struct {
		leader      int32
		leaderEpoch int32
		isr         []int32
	}
	left := []want{{-1, 1, []int32{2, 3}}, {2, 0, []int32{2, 3}}, {2, 0, []int32{2, 3}}, {-1, 1, []int32{1}}}
	kept := []want{{-1, 1, []int32{1, 2, 3}}, {2, 0, []int32{2, 1, 3}}, {2, 0, []int32{2, 3}}, {-1, 1, []int32{1}}}
	unchanged := []want{{1, 0, []int32{1, 2, 3}}, {2, 0, []int32{2, 1, 3}}, {2, 0, []int32{2, 3}}, {1, 0, []int32{1}}}
	tests := []struct {
		name    string
		command *registerBrokerCommand
		want    []want
	}{
		{name: "unclean shutdown", command: &registerBrokerCommand{registration: restarted}, want: left},
		{name: "clean shutdown", command: &registerBrokerCommand{registration: clean}, want: kept},
		// The ISRs were earned by the logs of the registration's
		// directory, which another directory may lag, however cleanly
		// its last process stopped.
		{name: "clean shutdown of another directory", command: &registerBrokerCommand{registration: cleanElsewhere}, want: left},
		{name: "version 2 entry, clean shutdown of another directory", command: &registerBrokerCommand{registration: cleanElsewhere, version: 2}, want: kept},
		{name: "retry of the current registration", command: &registerBrokerCommand{registration: current}, want: unchanged},
		{name: "version 1 entry", command: &registerBrokerCommand{registration: withoutDirectory, version: 1}, want: unchanged},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			f, index := setup(t)
			before, _ := f.state().Topic("t")
			index++
			data := encodeCommand(test.command)
			switch test.command.version {
			case 1:
				data = encodeRegisterBrokerV1(test.command.registration)
			case 2:
				data[1] = 2 // the same fields as the current version
			}
			result := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(applyResult)
			if result.err != nil {
				t.Fatal(result.err)
			}
			state := f.state()
			after, _ := state.Topic("t")
			for i, w := range test.want {
				p := after.Partitions[i]
				if p.Leader != w.leader || p.LeaderEpoch != w.leaderEpoch || !slices.Equal(p.ISR, w.isr) {
					t.Errorf("partition %d: leader %d, leader epoch %d, ISR %v; want %d, %d, %v", i, p.Leader, p.LeaderEpoch, p.ISR, w.leader, w.leaderEpoch, w.isr)
				}
				changed := p.Leader != before.Partitions[i].Leader || !slices.Equal(p.ISR, before.Partitions[i].ISR)
				if changed != (p.PartitionEpoch != before.Partitions[i].PartitionEpoch) {
					t.Errorf("partition %d: partition epoch %d -> %d, changed %t", i, before.Partitions[i].PartitionEpoch, p.PartitionEpoch, changed)
				}
			}
			broker, _ := state.Broker(1)
			if broker.IncarnationID != test.command.registration.IncarnationID || broker.DirectoryID != test.command.registration.DirectoryID {
				t.Errorf("broker 1 registered as %+v", broker)
			}
		})
	}
}

// encodeRegisterBrokerV1 encodes a registration as builds before directory
// ids wrote it (testdata/commands/register-broker-v1.bin).
func encodeRegisterBrokerV1(registration BrokerRegistration) []byte {
	e := encoder{buffer: []byte{byte(commandRegisterBroker), 1}}
	e.int32(registration.ID)
	e.uuid(registration.IncarnationID)
	encodeEndpoints(&e, registration.Endpoints)
	e.string(registration.Rack)
	return e.buffer
}

// TestControllerAdmitsBrokerRegistration: a registration that would
// replace another incarnation's is admitted at once from the same data
// directory (the process before it on that directory has stopped), and
// refused (ErrDuplicateBroker) from another directory while the current
// registration's session lives — also before this controller has heard
// from it, counting from when it took over — so two processes with one
// node id never fence each other.
func TestControllerAdmitsBrokerRegistration(t *testing.T) {
	current := testRegistration(1)
	current.DirectoryID = [16]byte{0xd1}
	f := applySteps(t, []fsmStep{{command: &registerBrokerCommand{registration: current}}})
	if result := applyCommand(f, 2, &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}); result.err != nil {
		t.Fatal(result.err)
	}
	store := &Store{fsm: f}
	c := newController(store, time.Minute, 0)
	c.since = time.Now()
	c.lastSeen = map[int32]time.Time{}

	sameDirectory := current
	sameDirectory.IncarnationID = uuid.New()
	otherDirectory := sameDirectory
	otherDirectory.DirectoryID = [16]byte{0xd2}
	noDirectory := sameDirectory
	noDirectory.DirectoryID = [16]byte{}

	check := func(what string, registration BrokerRegistration, wantDuplicate bool) {
		t.Helper()
		err := c.admit(registration)
		if errors.Is(err, ErrDuplicateBroker) != wantDuplicate || (err != nil && !errors.Is(err, ErrDuplicateBroker)) {
			t.Errorf("%s: admit: %v, want duplicate %t", what, err, wantDuplicate)
		}
	}
	check("same directory, session not heard yet", sameDirectory, false)
	check("other directory, session not heard yet", otherDirectory, true)
	check("no directory id, session not heard yet", noDirectory, true)
	check("the current incarnation again", current, false)
	c.lastSeen[1] = time.Now()
	check("same directory, live session", sameDirectory, false)
	check("other directory, live session", otherDirectory, true)
	c.lastSeen[1] = time.Now().Add(-2 * time.Minute)
	c.since = c.lastSeen[1]
	check("other directory, session over", otherDirectory, false)

	// A registration from a build before directory ids: admitted over
	// unless heard from within the session (the first start after an
	// upgrade is not held up).
	old := current
	old.IncarnationID, old.DirectoryID = uuid.New(), [16]byte{}
	if result := applyCommand(f, 3, &registerBrokerCommand{registration: old}); result.err != nil {
		t.Fatal(result.err)
	}
	if result := applyCommand(f, 4, &setBrokerFencedCommand{id: 1, epoch: 3, fenced: false}); result.err != nil {
		t.Fatal(result.err)
	}
	c.since = time.Now()
	delete(c.lastSeen, 1)
	check("registration without a directory id, not heard yet", otherDirectory, false)
	c.lastSeen[1] = time.Now()
	check("registration without a directory id, live session", otherDirectory, true)
}

// TestForwardedRejectionsKeepTheirSentinel: a request a follower forwards
// to the leader and the leader rejects fails with the same sentinel as on
// the leader, so a broker behind a follower tells a stale registration
// (register again) from a controller it cannot reach (retry); a
// registration check (CheckRegistration) answers as the registration
// would, from any node.
func TestForwardedRejectionsKeepTheirSentinel(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	_, follower := c.follower()
	registration, epoch := registerOnDirectory(t, ctx, follower, 1, 0xd1)
	if err := follower.Heartbeat(ctx, BrokerHeartbeat{ID: 1, BrokerEpoch: epoch - 1}); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Errorf("heartbeat with a stale epoch: %v, want ErrStaleBrokerEpoch", err)
	}
	if err := follower.Heartbeat(ctx, BrokerHeartbeat{ID: 9, BrokerEpoch: 1}); !errors.Is(err, ErrUnknownBroker) {
		t.Errorf("heartbeat of an unknown broker: %v, want ErrUnknownBroker", err)
	}
	if err := follower.SetBrokerFenced(ctx, 1, epoch+100, false); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Errorf("fencing a stale epoch: %v, want ErrStaleBrokerEpoch", err)
	}
	other := testRegistration(1)
	other.IncarnationID[0]++
	other.DirectoryID = [16]byte{0xd2}
	if err := follower.Heartbeat(ctx, BrokerHeartbeat{ID: 1, BrokerEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	if err := follower.SetBrokerFenced(ctx, 1, epoch, false); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.RegisterBroker(ctx, other); !errors.Is(err, ErrDuplicateBroker) {
		t.Errorf("second process on another directory: %v, want ErrDuplicateBroker", err)
	}

	// CheckRegistration asks the voters without registering (a node
	// whose Raft has no leader can ask): the same answers, nothing
	// changes.
	for _, store := range c.stores {
		if err := store.CheckRegistration(ctx, other); !errors.Is(err, ErrDuplicateBroker) {
			t.Errorf("check of a second process on another directory: %v, want ErrDuplicateBroker", err)
		}
		restart := registration
		restart.IncarnationID[0] += 2
		if err := store.CheckRegistration(ctx, restart); err != nil {
			t.Errorf("check of a restart on the same directory: %v", err)
		}
	}
	if b, _ := follower.State().Broker(1); b.Epoch != epoch {
		t.Errorf("broker 1 at epoch %d after checks, want %d", b.Epoch, epoch)
	}
}

// TestChangePartitionRefusesIneligibleReplicas: an ISR expansion naming a
// member at a broker epoch that is not its current registration (the
// follower caught up as an earlier incarnation, and has registered again
// since) is refused with ErrIneligibleReplica (KIP-903); -1 is not
// checked, and the current epoch is accepted.
func TestChangePartitionRefusesIneligibleReplicas(t *testing.T) {
	topic := testTopic("t", 1, []int32{1, 2})
	// The leader, broker 1, is unfenced: a fenced leader changes no ISR.
	f := applySteps(t, append(registerBrokers(1, 2), fsmStep{command: &createTopicCommand{topic: topic}},
		fsmStep{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}}))
	// Partition 0: broker 2 left the ISR.
	if result := applyCommand(f, 5, changePartition(topic.ID, 0, 0, NoLeaderChange, false, 1)); result.err != nil {
		t.Fatal(result.err)
	}
	// Broker 2 restarts: a new registration, epoch 6.
	restarted := testRegistration(2)
	restarted.IncarnationID[0]++
	if result := applyCommand(f, 6, &registerBrokerCommand{registration: restarted}); result.err != nil {
		t.Fatal(result.err)
	}
	expand := func(epochs ...int64) *changePartitionCommand {
		c := changePartition(topic.ID, 0, 1, NoLeaderChange, false, 1, 2)
		c.change.ISRBrokerEpochs = epochs
		return c
	}
	if result := applyCommand(f, 7, expand(-1, 2)); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("expansion with broker 2's earlier epoch: %v, want ErrIneligibleReplica", result.err)
	}
	if result := applyCommand(f, 8, expand(-1)); !errors.Is(result.err, ErrInvalidPartitions) {
		t.Fatalf("expansion with one epoch for two members: %v, want ErrInvalidPartitions", result.err)
	}
	if tp, _ := f.state().Topic("t"); !slices.Equal(tp.Partitions[0].ISR, []int32{1}) {
		t.Fatalf("ISR %v after refused expansions, want [1]", tp.Partitions[0].ISR)
	}
	// The new registration is fenced until the controller unfences it
	// (KIP-841: TestChangePartitionRefusesFencedISRMembers).
	if result := applyCommand(f, 9, expand(-1, 6)); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("expansion with broker 2's current epoch while it is fenced: %v, want ErrIneligibleReplica", result.err)
	}
	if result := applyCommand(f, 10, &setBrokerFencedCommand{id: 2, epoch: 6, fenced: false}); result.err != nil {
		t.Fatal(result.err)
	}
	if result := applyCommand(f, 11, expand(-1, 6)); result.err != nil {
		t.Fatalf("expansion with broker 2's current epoch: %v", result.err)
	}
	if tp, _ := f.state().Topic("t"); !slices.Equal(tp.Partitions[0].ISR, []int32{1, 2}) {
		t.Fatalf("ISR %v, want [1 2]", tp.Partitions[0].ISR)
	}
}

// TestChangePartitionRefusesFencedISRMembers: a change that adds a fenced
// broker to an ISR is refused with ErrIneligibleReplica (KIP-841), with
// or without broker epochs: a leader whose view of the registrations is
// behind (it saw the follower unfenced) must not put back a broker the
// controller has fenced — it would count for acks=all and the high
// watermark while it may be gone. A member that stays is not checked, so
// the controller and leaders can still shrink an ISR that holds one. A
// version 2 entry, from an earlier build, applies as it did then.
func TestChangePartitionRefusesFencedISRMembers(t *testing.T) {
	topic := testTopic("t", 1, []int32{1, 2, 3})
	steps := append(registerBrokers(1, 2, 3), fsmStep{command: &createTopicCommand{topic: topic}})
	for id := int32(1); id <= 3; id++ { // broker id's epoch is its step's index, id
		steps = append(steps, fsmStep{command: &setBrokerFencedCommand{id: id, epoch: int64(id), fenced: false}})
	}
	f := applySteps(t, steps)
	index := uint64(len(steps))
	apply := func(c command, version uint8) applyResult {
		index++
		data := encodeCommand(c)
		if version != 0 {
			data[1] = version
		}
		return f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(applyResult)
	}
	isr := func() []int32 { tp, _ := f.state().Topic("t"); return tp.Partitions[0].ISR }
	// Brokers 2 and 3 leave the ISR; then broker 2's session ends.
	if result := apply(changePartition(topic.ID, 0, 0, NoLeaderChange, false, 1), 0); result.err != nil {
		t.Fatal(result.err)
	}
	if result := apply(&setBrokerFencedCommand{id: 2, epoch: 2, fenced: true}, 0); result.err != nil {
		t.Fatal(result.err)
	}
	if result := apply(changePartition(topic.ID, 0, 1, NoLeaderChange, false, 1, 2), 0); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("adding fenced broker 2: %v, want ErrIneligibleReplica", result.err)
	}
	withEpochs := changePartition(topic.ID, 0, 1, NoLeaderChange, false, 1, 2)
	withEpochs.change.ISRBrokerEpochs = []int64{-1, 2}
	if result := apply(withEpochs, 0); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("adding fenced broker 2 at its current epoch: %v, want ErrIneligibleReplica", result.err)
	}
	if got := isr(); !slices.Equal(got, []int32{1}) {
		t.Fatalf("ISR %v after refused changes, want [1]", got)
	}
	// As a version 2 entry, written by an earlier build, it applies.
	if result := apply(changePartition(topic.ID, 0, 1, NoLeaderChange, false, 1, 2), 2); result.err != nil {
		t.Fatalf("version 2 entry adding fenced broker 2: %v", result.err)
	}
	// Members that stay are not checked: broker 3 joins beside fenced
	// broker 2, and broker 2 can be taken out.
	if result := apply(changePartition(topic.ID, 0, 2, NoLeaderChange, false, 1, 2, 3), 0); result.err != nil {
		t.Fatalf("adding broker 3 beside fenced member 2: %v", result.err)
	}
	if result := apply(changePartition(topic.ID, 0, 3, NoLeaderChange, false, 1, 3), 0); result.err != nil {
		t.Fatalf("taking fenced broker 2 out: %v", result.err)
	}
	if got := isr(); !slices.Equal(got, []int32{1, 3}) {
		t.Fatalf("ISR %v, want [1 3]", got)
	}
}

// fencedLeaderSetup applies steps to a new FSM and returns it with apply,
// which applies a command as the next log entry, at version (0: the
// current one), and partition, which reads topic t's partition 0.
func fencedLeaderSetup(t *testing.T, steps []fsmStep) (apply func(c command, version uint8) applyResult, partition func() Partition) {
	t.Helper()
	f := applySteps(t, steps)
	index := uint64(len(steps))
	apply = func(c command, version uint8) applyResult {
		index++
		data := encodeCommand(c)
		if version != 0 {
			data[1] = version
		}
		return f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(applyResult)
	}
	partition = func() Partition { tp, _ := f.state().Topic("t"); return tp.Partitions[0] }
	return apply, partition
}

// TestChangePartitionRefusesFencedNewLeader: a leader change to a broker
// that is registered and fenced is refused with ErrIneligibleReplica
// (ChangePartition v4). The controller decides its elections and
// preferred-leader moves on a state read before its pass, so a new
// registration applied meanwhile — here broker 2 restarting cleanly on
// the same directory, which keeps its ISR memberships and leaves the
// partition untouched, but is fenced until the controller hears from it —
// went unseen, and the move to broker 2 made a fenced broker the leader.
// A version 3 entry, from an earlier build, applies as it did then; a
// change to no leader is accepted, and broker 2 leads once unfenced.
func TestChangePartitionRefusesFencedNewLeader(t *testing.T) {
	topic := testTopic("t", 1, []int32{1, 2})
	directory := [16]byte{0xd1}
	steps := registerBrokers(1, 2) // broker id's epoch is id
	for _, step := range steps {
		step.command.(*registerBrokerCommand).registration.DirectoryID = directory
	}
	steps = append(steps,
		fsmStep{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
		fsmStep{command: &setBrokerFencedCommand{id: 2, epoch: 2, fenced: false}},
		fsmStep{command: &createTopicCommand{topic: topic}})
	restarted := testRegistration(2)
	restarted.IncarnationID[0]++
	restarted.DirectoryID, restarted.CleanShutdown = directory, true
	steps = append(steps, fsmStep{command: &registerBrokerCommand{registration: restarted}, wantValue: int64(6)})
	toBroker2 := changePartition(topic.ID, 0, 0, 2, false, 1, 2)

	apply, partition := fencedLeaderSetup(t, steps)
	if p := partition(); p.Leader != 1 || p.PartitionEpoch != 0 || !slices.Equal(p.ISR, []int32{1, 2}) {
		t.Fatalf("after broker 2's clean restart: %+v, want leader 1, ISR [1 2], partition epoch 0 (untouched)", p)
	}
	if result := apply(toBroker2, 0); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("moving the leadership to fenced broker 2: %v, want ErrIneligibleReplica", result.err)
	}
	if p := partition(); p.Leader != 1 || p.PartitionEpoch != 0 {
		t.Fatalf("after the refused move: %+v, want leader 1 at partition epoch 0", p)
	}
	// Away from the leader to none is not a new leader.
	if result := apply(changePartition(topic.ID, 0, 0, -1, false, 1, 2), 0); result.err != nil {
		t.Fatalf("moving the leadership to none: %v", result.err)
	}
	if result := apply(&setBrokerFencedCommand{id: 2, epoch: 6, fenced: false}, 0); result.err != nil {
		t.Fatal(result.err)
	}
	if result := apply(changePartition(topic.ID, 0, 1, 2, false, 1, 2), 0); result.err != nil {
		t.Fatalf("moving the leadership to broker 2 once unfenced: %v", result.err)
	}
	if p := partition(); p.Leader != 2 {
		t.Fatalf("leader %d, want 2", p.Leader)
	}

	// As a version 3 entry, written by an earlier build, it applies.
	apply, partition = fencedLeaderSetup(t, steps)
	if result := apply(toBroker2, 3); result.err != nil {
		t.Fatalf("version 3 entry moving the leadership to fenced broker 2: %v", result.err)
	}
	if p := partition(); p.Leader != 2 || p.LeaderEpoch != 1 {
		t.Fatalf("after the version 3 entry: %+v, want leader 2 at leader epoch 1", p)
	}
}

// TestChangePartitionRefusesChangesKeepingAFencedLeader: while the leader
// is registered and fenced, a change that keeps it is refused with
// ErrIneligibleReplica (ChangePartition v4). SetBrokerFenced touches no
// partition, and the controller moves the leadership in a later command;
// in between, a leader that was paused (and fenced for it) and resumes
// shrank the ISR to itself, leaving the controller no live in-sync replica
// to elect: the partition was offline until the broker was unfenced. A
// bump of the leader epoch is refused as well; a change to what the
// partition is stays a no-op, and a change that moves the leadership away
// is accepted. A version 3 entry applies as it did then.
func TestChangePartitionRefusesChangesKeepingAFencedLeader(t *testing.T) {
	topic := testTopic("t", 1, []int32{1, 2})
	steps := append(registerBrokers(1, 2),
		fsmStep{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: false}},
		fsmStep{command: &setBrokerFencedCommand{id: 2, epoch: 2, fenced: false}},
		fsmStep{command: &createTopicCommand{topic: topic}},
		// Broker 1, the leader of ISR [1 2], is paused; its session ends.
		fsmStep{command: &setBrokerFencedCommand{id: 1, epoch: 1, fenced: true}})
	shrink := changePartition(topic.ID, 0, 0, NoLeaderChange, false, 1)

	apply, partition := fencedLeaderSetup(t, steps)
	if p := partition(); p.Leader != 1 || !slices.Equal(p.ISR, []int32{1, 2}) {
		t.Fatalf("before: %+v, want leader 1, ISR [1 2]", p)
	}
	if result := apply(shrink, 0); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("fenced leader 1 shrinking the ISR to itself: %v, want ErrIneligibleReplica", result.err)
	}
	// Naming the leader it keeps is no leader change either.
	if result := apply(changePartition(topic.ID, 0, 0, 1, false, 1), 0); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("fenced leader 1 named as the leader, shrinking the ISR: %v, want ErrIneligibleReplica", result.err)
	}
	if result := apply(changePartition(topic.ID, 0, 0, NoLeaderChange, true, 1, 2), 0); !errors.Is(result.err, ErrIneligibleReplica) {
		t.Fatalf("fenced leader 1 bumping its leader epoch: %v, want ErrIneligibleReplica", result.err)
	}
	if result := apply(changePartition(topic.ID, 0, 0, NoLeaderChange, false, 1, 2), 0); result.err != nil || result.value.(Partition).PartitionEpoch != 0 {
		t.Fatalf("a change to what the partition is: %+v, %v; want a no-op", result.value, result.err)
	}
	if p := partition(); p.Leader != 1 || p.PartitionEpoch != 0 || !slices.Equal(p.ISR, []int32{1, 2}) {
		t.Fatalf("after the refused changes: %+v, want leader 1, ISR [1 2] at partition epoch 0", p)
	}
	// The controller's election: broker 2, live and in sync, leads.
	if result := apply(changePartition(topic.ID, 0, 0, 2, false, 2), 0); result.err != nil {
		t.Fatalf("electing broker 2: %v", result.err)
	}

	// As a version 3 entry, written by an earlier build, it applies.
	apply, partition = fencedLeaderSetup(t, steps)
	if result := apply(shrink, 3); result.err != nil {
		t.Fatalf("version 3 entry of fenced leader 1 shrinking the ISR: %v", result.err)
	}
	if p := partition(); !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("ISR %v after the version 3 entry, want [1]", p.ISR)
	}
}

// TestControllerElectsOnlyBrokersItHears: when a broker's re-registration
// takes its leadership back, a controller that has not heard from the
// other in-sync replica (not fenced yet only because its session is
// counted from when this controller took over: it may be dead, as after a
// quorum recovery) does not hand it the partition, which would drop the
// re-registering broker from the ISR and leave the partition offline if
// the other is dead; the partition waits for the re-registered broker,
// which leads again once unfenced, still in the ISR.
func TestControllerElectsOnlyBrokersItHears(t *testing.T) {
	c := newTestCluster(t, 1)
	ctx := testContext(t)
	_, store := c.leader()
	one, epoch1 := registerOnDirectory(t, ctx, store, 1, 0xd1)
	beats, stopBeats := context.WithCancel(ctx)
	beating := make(chan struct{})
	go func() { defer close(beating); heartbeats(beats, store, 1, epoch1) }()
	epoch2, err := store.RegisterBroker(ctx, testRegistration(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetBrokerFenced(ctx, 2, epoch2, false); err != nil {
		t.Fatal(err)
	}
	waitState(t, store, "broker 1 unfenced", func(s *State) bool { b, _ := s.Broker(1); return !b.Fenced })
	topic, err := store.CreateTopic(ctx, TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := topic.Partitions[0]; p.Leader != 1 || len(p.ISR) != 2 {
		t.Fatalf("partition %+v, want leader 1, ISR [1 2]", p)
	}

	// A controller that has just taken over: it has heard from nobody,
	// and broker 2 (which never heartbeats) is within its first session.
	stopBeats()
	<-beating
	store.controller.mu.Lock()
	store.controller.lastSeen = map[int32]time.Time{}
	store.controller.since = time.Now()
	store.controller.mu.Unlock()
	// Broker 1 restarts on its data dir after a clean shutdown, and the
	// controller makes a pass before it heartbeats.
	restarted := one
	restarted.IncarnationID, restarted.CleanShutdown = uuid.New(), true
	epoch, err := store.RegisterBroker(ctx, restarted)
	if err != nil {
		t.Fatal(err)
	}
	store.controller.reconcile(make(chan struct{}))
	tp, _ := store.State().Topic("t")
	if p := tp.Partitions[0]; p.Leader != -1 || !slices.Contains(p.ISR, 1) {
		t.Fatalf("partition %+v while broker 1 registers, want no leader and broker 1 in the ISR (broker 2 was never heard from)", p)
	}

	go heartbeats(ctx, store, 1, epoch)
	state := waitState(t, store, "a leader again", func(s *State) bool {
		tp, _ := s.Topic("t")
		return tp.Partitions[0].Leader >= 0
	})
	tp, _ = state.Topic("t")
	if p := tp.Partitions[0]; p.Leader != 1 || !slices.Contains(p.ISR, 1) {
		t.Fatalf("partition %+v, want broker 1 leading, in the ISR", p)
	}
}
