package metadata

import (
	"errors"
	"testing"

	"github.com/strata-log/strata/authz"
)

// TestCreateACLsOfShortInvalidBindingsIsRejectedNotHalting: a CreateAcls
// entry is refused by the state machine (ErrInvalidACL) when a binding is
// invalid, however short its encoding. An encoded binding takes 7 bytes
// at the least (four enums and three empty strings); the decoder once
// required 9 per binding, so an entry of short invalid bindings (which
// Store.CreateACLs proposes as given on the leader) did not decode, and
// every node halted at it (UnappliableEntryError) instead of refusing it.
func TestCreateACLsOfShortInvalidBindingsIsRejectedNotHalting(t *testing.T) {
	for name, bindings := range map[string][]authz.Binding{
		"empty binding":                  {{}},
		"name only":                      {{Pattern: authz.Pattern{Type: authz.ResourceTopic, Name: "t", PatternType: authz.PatternLiteral}}},
		"a valid one and two empty ones": {goldenACLs[0], {}, {}},
	} {
		t.Run(name, func(t *testing.T) {
			data := encodeCommand(&createACLsCommand{bindings: bindings})
			if _, err := decodeCommand(data); err != nil {
				t.Errorf("CreateAcls entry of %d bytes does not decode: %v", len(data), err)
			}
			f := newFSM(discardLogger())
			result := applyCommand(f, 1, &createACLsCommand{bindings: bindings})
			if !errors.Is(result.err, ErrInvalidACL) {
				t.Fatalf("apply: %v, want ErrInvalidACL", result.err)
			}
			if halted := f.halted.Load(); halted != nil {
				t.Fatalf("the state machine halted: %v", halted)
			}
			if f.state().ACLCount() != 0 || f.state().AppliedIndex() != 1 {
				t.Fatalf("state after the refusal: %d bindings at index %d", f.state().ACLCount(), f.state().AppliedIndex())
			}
		})
	}
}
