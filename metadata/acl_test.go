package metadata

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/strata-log/strata/authz"
)

// TestApplyACLs: CreateAcls and DeleteAcls applied to the state machine:
// invalid bindings or filters (that skipped the broker's checks) are refused
// with the state unchanged; duplicates are stored once; a delete answers,
// per filter, what it removed.
func TestApplyACLs(t *testing.T) {
	f := newFSM(discardLogger())
	index := uint64(1)
	apply := func(c command) applyResult {
		index++
		return applyCommand(f, index, c)
	}
	valid := goldenACLs[0]
	invalid := map[string]func(*authz.Binding){
		"resource type ANY":    func(b *authz.Binding) { b.Pattern.Type = authz.ResourceAny },
		"pattern MATCH":        func(b *authz.Binding) { b.Pattern.PatternType = authz.PatternMatch },
		"empty name":           func(b *authz.Binding) { b.Pattern.Name = "" },
		"cluster not named":    func(b *authz.Binding) { b.Pattern.Type = authz.ResourceCluster },
		"principal without :":  func(b *authz.Binding) { b.Entry.Principal = "alice" },
		"operation ANY":        func(b *authz.Binding) { b.Entry.Operation = authz.OpAny },
		"operation unknown 99": func(b *authz.Binding) { b.Entry.Operation = 99 },
		"permission ANY":       func(b *authz.Binding) { b.Entry.Permission = authz.PermissionAny },
	}
	for name, change := range invalid {
		bad := valid
		change(&bad)
		// The valid binding in the same command is not added either.
		if result := apply(&createACLsCommand{bindings: []authz.Binding{valid, bad}}); !errors.Is(result.err, ErrInvalidACL) {
			t.Fatalf("%s: %v, want ErrInvalidACL", name, result.err)
		}
		if n := f.state().ACLCount(); n != 0 {
			t.Fatalf("%s: %d bindings stored", name, n)
		}
	}
	if result := apply(&createACLsCommand{}); !errors.Is(result.err, ErrInvalidACL) {
		t.Fatalf("empty create: %v", result.err)
	}

	if result := apply(&createACLsCommand{bindings: append(append([]authz.Binding(nil), goldenACLs...), goldenACLs[0])}); result.err != nil {
		t.Fatal(result.err)
	}
	if result := apply(&createACLsCommand{bindings: goldenACLs[:1]}); result.err != nil {
		t.Fatal(result.err)
	}
	if n := f.state().ACLCount(); n != len(goldenACLs) {
		t.Fatalf("%d bindings, want %d (duplicates stored once)", n, len(goldenACLs))
	}

	anyFilter := authz.Filter{ResourceType: authz.ResourceAny, PatternType: authz.PatternAny, Operation: authz.OpAny, Permission: authz.PermissionAny}
	badFilter := anyFilter
	badFilter.PatternType = authz.PatternUnknown
	if result := apply(&deleteACLsCommand{filters: []authz.Filter{anyFilter, badFilter}}); !errors.Is(result.err, ErrInvalidACL) {
		t.Fatalf("unknown filter: %v", result.err)
	}
	if n := f.state().ACLCount(); n != len(goldenACLs) {
		t.Fatalf("refused delete removed bindings: %d left", n)
	}

	userBob := "User:bob"
	bobs := anyFilter
	bobs.Principal = &userBob
	result := apply(&deleteACLsCommand{filters: []authz.Filter{bobs, anyFilter}})
	if result.err != nil {
		t.Fatal(result.err)
	}
	deleted := result.value.([][]authz.Binding)
	if len(deleted) != 2 || len(deleted[0]) != 2 || len(deleted[1]) != 2 {
		t.Fatalf("deleted %v: want bob's two, then the other two", deleted)
	}
	for _, b := range deleted[0] {
		if b.Entry.Principal != userBob {
			t.Fatalf("first filter deleted %v", b)
		}
	}
	if n := f.state().ACLCount(); n != 0 {
		t.Fatalf("%d bindings left", n)
	}
}

// TestSnapshotGoldenACLs pins the ACL binding record (0x07) of the
// snapshot format.
func TestSnapshotGoldenACLs(t *testing.T) {
	f := newFSM(discardLogger())
	if err := f.Restore(readCloser{bytes.NewReader(snapshotOf(t, goldenFullState(t)))}); err != nil {
		t.Fatal(err)
	}
	if result := applyCommand(f, f.state().AppliedIndex()+1, &createACLsCommand{bindings: goldenACLs}); result.err != nil {
		t.Fatal(result.err)
	}
	state := f.state()
	checkGolden(t, "snapshot-v1-acls.bin", snapshotOf(t, state))
	restored, err := readSnapshot(bytes.NewReader(readGolden(t, "snapshot-v1-acls.bin")))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, state)
	if got := restored.ACLs(); len(got) != len(goldenACLs) {
		t.Fatalf("restored %d bindings, want %d", len(got), len(goldenACLs))
	}

	// A record that repeats a binding, or holds an invalid one, is corrupt.
	var e encoder
	encodeACLBinding(&e, goldenACLs[0])
	repeated := rewriteTail(t, snapshotOf(t, state), func(data []byte) ([]byte, uint64) {
		return appendRecord(data, recordACL, e.buffer), 1
	})
	if _, err := readSnapshot(bytes.NewReader(repeated)); !IsCorrupt(err) {
		t.Fatalf("repeated binding: %v, want ErrCorrupt", err)
	}
	bad := goldenACLs[0]
	bad.Entry.Permission = authz.PermissionAny
	var e2 encoder
	encodeACLBinding(&e2, bad)
	invalid := rewriteTail(t, snapshotOf(t, emptyState()), func(data []byte) ([]byte, uint64) {
		return appendRecord(data, recordACL, e2.buffer), 1
	})
	if _, err := readSnapshot(bytes.NewReader(invalid)); !IsCorrupt(err) {
		t.Fatalf("invalid binding: %v, want ErrCorrupt", err)
	}
	if !reflect.DeepEqual(emptyState().ACLs(), []authz.Binding{}) {
		t.Fatal("empty state has ACLs")
	}
}
