package metadata

import (
	"context"
	"fmt"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"github.com/strata-log/strata/authz"
)

// MaxACLsPerCommand bounds the bindings of one CreateAcls command and the
// filters of one DeleteAcls command.
const MaxACLsPerCommand = 1000

// MaxACLs bounds the ACL bindings the cluster holds.
const MaxACLs = 100000

// Encodings (part of the command and snapshot formats; the enum values are
// Kafka's):
//
//	acl binding  resource type uint8, pattern type uint8, resource name
//	             string, principal string, host string, operation uint8,
//	             permission uint8
//	acl filter   resource type uint8, name present bool, [name string],
//	             pattern type uint8, principal present bool, [principal
//	             string], host present bool, [host string], operation
//	             uint8, permission uint8
func encodeACLBinding(e *encoder, b authz.Binding) {
	e.uint8(uint8(b.Pattern.Type))
	e.uint8(uint8(b.Pattern.PatternType))
	e.string(b.Pattern.Name)
	e.string(b.Entry.Principal)
	e.string(b.Entry.Host)
	e.uint8(uint8(b.Entry.Operation))
	e.uint8(uint8(b.Entry.Permission))
}

func decodeACLBinding(d *decoder) authz.Binding {
	var b authz.Binding
	b.Pattern.Type = authz.ResourceType(d.uint8())
	b.Pattern.PatternType = authz.PatternType(d.uint8())
	b.Pattern.Name = d.string()
	b.Entry.Principal = d.string()
	b.Entry.Host = d.string()
	b.Entry.Operation = authz.Operation(d.uint8())
	b.Entry.Permission = authz.Permission(d.uint8())
	return b
}

func encodeOptionalString(e *encoder, s *string) {
	e.bool(s != nil)
	if s != nil {
		e.string(*s)
	}
}

func decodeOptionalString(d *decoder) *string {
	if !d.bool() {
		return nil
	}
	s := d.string()
	return &s
}

func encodeACLFilter(e *encoder, f authz.Filter) {
	e.uint8(uint8(f.ResourceType))
	encodeOptionalString(e, f.Name)
	e.uint8(uint8(f.PatternType))
	encodeOptionalString(e, f.Principal)
	encodeOptionalString(e, f.Host)
	e.uint8(uint8(f.Operation))
	e.uint8(uint8(f.Permission))
}

func decodeACLFilter(d *decoder) authz.Filter {
	var f authz.Filter
	f.ResourceType = authz.ResourceType(d.uint8())
	f.Name = decodeOptionalString(d)
	f.PatternType = authz.PatternType(d.uint8())
	f.Principal = decodeOptionalString(d)
	f.Host = decodeOptionalString(d)
	f.Operation = authz.Operation(d.uint8())
	f.Permission = authz.Permission(d.uint8())
	return f
}

// minimumACLBindingSize is the fewest bytes an encoded binding takes: its
// four enums and three empty strings. An invalid binding may be that short:
// its CreateAcls entry must decode, so that apply refuses it (a decode
// failure halts every node at the entry).
const minimumACLBindingSize = 4 + 3*1

// aclKey is a binding's key in State.acls: its encoding, so that equal
// bindings share a key and iteration order is deterministic.
func aclKey(b authz.Binding) []byte {
	var e encoder
	encodeACLBinding(&e, b)
	return e.buffer
}

// createACLsCommand adds ACL bindings. Every binding must be valid
// (authz.Binding.Validate, else ErrInvalidACL and nothing is added); a
// binding already present is left as is.
type createACLsCommand struct {
	bindings []authz.Binding
}

func (c *createACLsCommand) commandType() commandType { return commandCreateACLs }
func (c *createACLsCommand) encode(e *encoder) {
	e.uvarint(uint64(len(c.bindings)))
	for _, b := range c.bindings {
		encodeACLBinding(e, b)
	}
}

func decodeCreateACLs(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	c := &createACLsCommand{}
	n := d.length(minimumACLBindingSize)
	for range n {
		c.bindings = append(c.bindings, decodeACLBinding(d))
	}
	return c, true
}

func (c *createACLsCommand) apply(b *stateBuilder) (any, error) {
	if len(c.bindings) == 0 || len(c.bindings) > MaxACLsPerCommand {
		return nil, fmt.Errorf("%w: %d bindings in one command (1..%d)", ErrInvalidACL, len(c.bindings), MaxACLsPerCommand)
	}
	count := b.base.acls.Len()
	for _, binding := range c.bindings {
		if err := binding.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidACL, err)
		}
		if _, existed := b.acls.Insert(aclKey(binding), binding); !existed {
			count++
		}
	}
	if count > MaxACLs {
		return nil, fmt.Errorf("%w: more than %d ACL bindings; delete some first", ErrInvalidACL, MaxACLs)
	}
	return nil, nil
}

// deleteACLsCommand removes the bindings each filter matches. The result
// is, per filter, the bindings it removed ([][]authz.Binding); a binding
// matched by several filters is reported by the first. Filters with
// unknown values are refused (ErrInvalidACL).
type deleteACLsCommand struct {
	filters []authz.Filter
}

func (c *deleteACLsCommand) commandType() commandType { return commandDeleteACLs }
func (c *deleteACLsCommand) encode(e *encoder) {
	e.uvarint(uint64(len(c.filters)))
	for _, f := range c.filters {
		encodeACLFilter(e, f)
	}
}

func decodeDeleteACLs(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	c := &deleteACLsCommand{}
	n := d.length(7)
	for range n {
		c.filters = append(c.filters, decodeACLFilter(d))
	}
	return c, true
}

func (c *deleteACLsCommand) apply(b *stateBuilder) (any, error) {
	if len(c.filters) == 0 || len(c.filters) > MaxACLsPerCommand {
		return nil, fmt.Errorf("%w: %d filters in one command (1..%d)", ErrInvalidACL, len(c.filters), MaxACLsPerCommand)
	}
	for _, f := range c.filters {
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidACL, err)
		}
	}
	deleted := make([][]authz.Binding, len(c.filters))
	for i, f := range c.filters {
		iterator := b.acls.Root().Iterator()
		var keys [][]byte
		for key, binding, ok := iterator.Next(); ok; key, binding, ok = iterator.Next() {
			if f.Matches(binding) {
				keys = append(keys, key)
				deleted[i] = append(deleted[i], binding)
			}
		}
		for _, key := range keys {
			b.acls.Delete(key)
		}
	}
	return deleted, nil
}

// ACLs returns every ACL binding, in the order of their encoding.
func (s *State) ACLs() []authz.Binding {
	out := make([]authz.Binding, 0, s.acls.Len())
	iterator := s.acls.Root().Iterator()
	for _, binding, ok := iterator.Next(); ok; _, binding, ok = iterator.Next() {
		out = append(out, binding)
	}
	return out
}

// ACLCount returns the number of ACL bindings.
func (s *State) ACLCount() int { return s.acls.Len() }

// CreateACLs adds bindings (Kafka's CreateAcls). Invalid bindings are
// refused (ErrInvalidACL) and none is added.
func (s *Store) CreateACLs(ctx context.Context, bindings []authz.Binding) error {
	_, err := s.propose(ctx, &createACLsCommand{bindings: bindings})
	return err
}

// DeleteACLs removes the bindings the filters match (Kafka's DeleteAcls)
// and returns, per filter, the bindings it removed.
func (s *Store) DeleteACLs(ctx context.Context, filters []authz.Filter) ([][]authz.Binding, error) {
	result, err := s.propose(ctx, &deleteACLsCommand{filters: filters})
	if err != nil {
		return nil, err
	}
	return result.([][]authz.Binding), nil
}

// restoreACL adds a snapshot's ACL binding record to acls.
func restoreACL(acls *iradix.Txn[authz.Binding], d *decoder) error {
	binding := decodeACLBinding(d)
	if err := d.finish(); err != nil {
		return err
	}
	if err := binding.Validate(); err != nil {
		return corruptf("%v", err)
	}
	key := aclKey(binding)
	if _, exists := acls.Get(key); exists {
		return corruptf("ACL binding %s appears twice", binding)
	}
	acls.Insert(key, binding)
	return nil
}
