package metadata

import (
	"strings"
	"testing"
)

// TestLeaderDoesNotProposeAnUndecodableCommand: a command proposed on the
// leader is checked before it reaches the log, as a peer's forwarded one
// is: an entry that does not decode would stop every node that applies it
// (UnappliableEntryError), and again after every restart. It is refused
// instead, and the state machine goes on.
func TestLeaderDoesNotProposeAnUndecodableCommand(t *testing.T) {
	c := newTestCluster(t, 1)
	ctx := testContext(t)
	_, store := c.leader()
	segment := goldenSegment
	segment.TxnIndex = TxnIndexNotEmpty + 1 // encodes, does not decode
	before := store.State().AppliedIndex()
	_, err := store.propose(ctx, &segmentCopyStartedCommand{topicID: goldenTopicID, partition: 0, segment: segment})
	if err == nil || !strings.Contains(err.Error(), "does not decode") {
		t.Fatalf("proposing an undecodable command: %v, want a refusal", err)
	}
	if _, err := store.AllocateProducerIDs(ctx, 1, 10); err != nil {
		t.Fatalf("the next command: %v", err)
	}
	if halted := store.fsm.halted.Load(); halted != nil {
		t.Fatalf("the state machine halted: %v", halted)
	}
	if store.State().AppliedIndex() <= before {
		t.Fatalf("applied index %d after the next command, was %d", store.State().AppliedIndex(), before)
	}
}
