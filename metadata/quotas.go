package metadata

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
)

// Client quotas (Kafka's KIP-13, KIP-55, KIP-546): byte rates configured
// per user, per client id, or per (user, client id), each possibly the
// default of its kind, replicated in the quorum so that every broker
// enforces the same limits. The brokers resolve which entity applies to a
// connection (broker/quota); this file stores and validates them.

// The quota keys Strata stores and enforces: Kafka's names, in bytes per
// second. Kafka's request_percentage and controller_mutation_rate are
// refused (ErrInvalidClientQuota): Strata does not enforce them, and a
// quota that is stored but not enforced would mislead.
const (
	ProducerByteRate = "producer_byte_rate"
	ConsumerByteRate = "consumer_byte_rate"
)

// Bounds of client quotas.
const (
	// MaxClientQuotaEntities bounds the entities with quotas.
	MaxClientQuotaEntities = 100000
	// MaxQuotaAlterationsPerCommand bounds the entities one
	// AlterClientQuotas command changes.
	MaxQuotaAlterationsPerCommand = 1000
	// MaxQuotaEntityNameBytes bounds a user name or client id.
	MaxQuotaEntityNameBytes = 1024
	// MaxByteRate bounds a byte rate: 2^53, so every value is an exact
	// float64 (Kafka's wire type for quota values).
	MaxByteRate = 1 << 53
)

// ErrInvalidClientQuota rejects a malformed quota entity, an unknown or
// unsupported key, or a value that is not a positive whole byte rate.
var ErrInvalidClientQuota = errors.New("metadata: invalid client quota")

// QuotaName is one part (user or client id) of a QuotaEntity.
type QuotaName struct {
	// Present: the entity has this part.
	Present bool
	// Default: the part is the default user or client id (Kafka's
	// "<default>", a null name on the wire); else Name.
	Default bool
	Name    string
}

// NamedQuota is a part naming a user or client id.
func NamedQuota(name string) QuotaName { return QuotaName{Present: true, Name: name} }

// DefaultQuota is the part naming the default user or client id.
var DefaultQuota = QuotaName{Present: true, Default: true}

func (n QuotaName) String() string {
	switch {
	case !n.Present:
		return ""
	case n.Default:
		return "<default>"
	}
	return n.Name
}

// QuotaEntity is whom client quotas apply to (Kafka's quota entity): a
// user, a client id, or both.
type QuotaEntity struct {
	User     QuotaName
	ClientID QuotaName
}

func (e QuotaEntity) String() string {
	var parts []string
	if e.User.Present {
		parts = append(parts, "user="+e.User.String())
	}
	if e.ClientID.Present {
		parts = append(parts, "client-id="+e.ClientID.String())
	}
	return strings.Join(parts, ",")
}

// Validate checks an entity by Kafka's rules: a user, a client id or both,
// each the default or a non-empty name (valid UTF-8, at most
// MaxQuotaEntityNameBytes).
func (e QuotaEntity) Validate() error {
	if !e.User.Present && !e.ClientID.Present {
		return fmt.Errorf("%w: an entity names a user, a client id or both", ErrInvalidClientQuota)
	}
	for _, part := range []struct {
		kind string
		name QuotaName
	}{{"user", e.User}, {"client-id", e.ClientID}} {
		switch name := part.name; {
		case !name.Present || name.Default:
			if name.Name != "" {
				return fmt.Errorf("%w: a default or absent %s has no name", ErrInvalidClientQuota, part.kind)
			}
		case name.Name == "":
			return fmt.Errorf("%w: empty %s (name the default instead)", ErrInvalidClientQuota, part.kind)
		case len(name.Name) > MaxQuotaEntityNameBytes || !utf8.ValidString(name.Name):
			return fmt.Errorf("%w: %s name is not UTF-8 of at most %d bytes", ErrInvalidClientQuota, part.kind, MaxQuotaEntityNameBytes)
		}
	}
	return nil
}

// QuotaOp sets (Remove false) or removes one quota key of an entity.
type QuotaOp struct {
	Key    string
	Value  float64 // bytes per second; ignored when Remove
	Remove bool
}

// QuotaAlteration is the changes to one entity's quotas.
type QuotaAlteration struct {
	Entity QuotaEntity
	Ops    []QuotaOp
}

// Validate checks an alteration as the state machine will: a valid
// entity, at least one op, each key named once, known and supported, and
// set to a whole number of bytes per second from 1 to MaxByteRate.
func (a QuotaAlteration) Validate() error {
	if err := a.Entity.Validate(); err != nil {
		return err
	}
	if len(a.Ops) == 0 {
		return fmt.Errorf("%w: %s: no quota to change", ErrInvalidClientQuota, a.Entity)
	}
	seen := map[string]bool{}
	for _, op := range a.Ops {
		if seen[op.Key] {
			return fmt.Errorf("%w: %s: quota %q named twice", ErrInvalidClientQuota, a.Entity, op.Key)
		}
		seen[op.Key] = true
		if err := validateQuotaKey(op.Key); err != nil {
			return err
		}
		if op.Remove {
			continue
		}
		if !(op.Value > 0) {
			return fmt.Errorf("%w: quota %s must be greater than 0", ErrInvalidClientQuota, op.Key)
		}
		if op.Value != math.Trunc(op.Value) || op.Value > MaxByteRate {
			return fmt.Errorf("%w: quota %s must be a whole number of bytes per second up to %d", ErrInvalidClientQuota, op.Key, int64(MaxByteRate))
		}
	}
	return nil
}

func validateQuotaKey(key string) error {
	switch key {
	case ProducerByteRate, ConsumerByteRate:
		return nil
	case "request_percentage", "controller_mutation_rate":
		return fmt.Errorf("%w: quota %s is not supported by Strata (only %s and %s are enforced)", ErrInvalidClientQuota, key, ProducerByteRate, ConsumerByteRate)
	}
	return fmt.Errorf("%w: invalid quota key %q (supported: %s, %s)", ErrInvalidClientQuota, key, ProducerByteRate, ConsumerByteRate)
}

// ClientQuota is one entity's quotas: key -> bytes per second.
type ClientQuota struct {
	Entity QuotaEntity
	Values map[string]float64
}

// Encodings (part of the command and snapshot formats):
//
//	quota name    kind uint8 (0 absent, 1 named, 2 default), then for
//	              named: name string
//	quota entity  user quota name, client id quota name
//	quota value   key string, value float64 (IEEE 754 bits, uint64)
const (
	quotaNameAbsent  = 0
	quotaNameNamed   = 1
	quotaNameDefault = 2
)

func encodeQuotaName(e *encoder, n QuotaName) {
	switch {
	case !n.Present:
		e.uint8(quotaNameAbsent)
	case n.Default:
		e.uint8(quotaNameDefault)
	default:
		e.uint8(quotaNameNamed)
		e.string(n.Name)
	}
}

func decodeQuotaName(d *decoder) QuotaName {
	switch kind := d.uint8(); kind {
	case quotaNameAbsent:
		return QuotaName{}
	case quotaNameDefault:
		return DefaultQuota
	case quotaNameNamed:
		return NamedQuota(d.string())
	default:
		d.fail(fmt.Errorf("%w: quota name kind %d", ErrCorrupt, kind))
		return QuotaName{}
	}
}

func encodeQuotaEntity(e *encoder, entity QuotaEntity) {
	encodeQuotaName(e, entity.User)
	encodeQuotaName(e, entity.ClientID)
}

func decodeQuotaEntity(d *decoder) QuotaEntity {
	return QuotaEntity{User: decodeQuotaName(d), ClientID: decodeQuotaName(d)}
}

func encodeFloat64(e *encoder, v float64) { e.uint64(math.Float64bits(v)) }
func decodeFloat64(d *decoder) float64    { return math.Float64frombits(d.uint64()) }

// quotaKey is an entity's key in State.quotas: its encoding.
func quotaKey(entity QuotaEntity) []byte {
	var e encoder
	encodeQuotaEntity(&e, entity)
	return e.buffer
}

// alterClientQuotasCommand (type 51, version 1). Payload:
//
//	uvarint alteration count, then per alteration: quota entity,
//	uvarint op count, then per op: key string, remove bool,
//	value float64
//
// Applied whole or not at all: every alteration must be valid
// (QuotaAlteration.Validate) and name a distinct entity. A set replaces
// the key's value, a remove of a key not set does nothing, and an entity
// left without keys is dropped.
type alterClientQuotasCommand struct {
	alterations []QuotaAlteration
}

func (c *alterClientQuotasCommand) commandType() commandType { return commandAlterClientQuotas }

func (c *alterClientQuotasCommand) encode(e *encoder) {
	e.uvarint(uint64(len(c.alterations)))
	for _, a := range c.alterations {
		encodeQuotaEntity(e, a.Entity)
		e.uvarint(uint64(len(a.Ops)))
		for _, op := range a.Ops {
			e.string(op.Key)
			e.bool(op.Remove)
			encodeFloat64(e, op.Value)
		}
	}
}

func decodeAlterClientQuotas(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	c := &alterClientQuotasCommand{}
	n := d.length(2 + 1)
	for range n {
		a := QuotaAlteration{Entity: decodeQuotaEntity(d)}
		ops := d.length(1 + 1 + 8)
		for range ops {
			a.Ops = append(a.Ops, QuotaOp{Key: d.string(), Remove: d.bool(), Value: decodeFloat64(d)})
		}
		c.alterations = append(c.alterations, a)
	}
	return c, true
}

func (c *alterClientQuotasCommand) apply(b *stateBuilder) (any, error) {
	if len(c.alterations) == 0 || len(c.alterations) > MaxQuotaAlterationsPerCommand {
		return nil, fmt.Errorf("%w: %d entities in one command (1..%d)", ErrInvalidClientQuota, len(c.alterations), MaxQuotaAlterationsPerCommand)
	}
	seen := map[string]bool{}
	count := b.base.quotas.Len()
	for _, a := range c.alterations {
		if err := a.Validate(); err != nil {
			return nil, err
		}
		key := quotaKey(a.Entity)
		if seen[string(key)] {
			return nil, fmt.Errorf("%w: entity %s altered twice in one command", ErrInvalidClientQuota, a.Entity)
		}
		seen[string(key)] = true
		values := map[string]float64{}
		if current, ok := b.quotas.Get(key); ok {
			for k, v := range current.Values {
				values[k] = v
			}
		}
		for _, op := range a.Ops {
			if op.Remove {
				delete(values, op.Key)
			} else {
				values[op.Key] = op.Value
			}
		}
		if len(values) == 0 {
			if _, existed := b.quotas.Delete(key); existed {
				count--
			}
			continue
		}
		if _, existed := b.quotas.Insert(key, &ClientQuota{Entity: a.Entity, Values: values}); !existed {
			count++
		}
	}
	if count > MaxClientQuotaEntities {
		return nil, fmt.Errorf("%w: more than %d entities with quotas; delete some first", ErrInvalidClientQuota, MaxClientQuotaEntities)
	}
	return nil, nil
}

// AlterClientQuotas applies the alterations (Kafka's AlterClientQuotas)
// in one command: all or none. Invalid ones are refused
// (ErrInvalidClientQuota).
func (s *Store) AlterClientQuotas(ctx context.Context, alterations []QuotaAlteration) error {
	_, err := s.propose(ctx, &alterClientQuotasCommand{alterations: alterations})
	return err
}

// ClientQuota returns the quotas set on exactly entity (no resolution of
// defaults: that is the broker's).
func (s *State) ClientQuota(entity QuotaEntity) (map[string]float64, bool) {
	q, ok := s.quotas.Get(quotaKey(entity))
	if !ok {
		return nil, false
	}
	return q.Values, true
}

// ClientQuotaCount returns the number of entities with quotas.
func (s *State) ClientQuotaCount() int { return s.quotas.Len() }

// ClientQuotas returns every entity's quotas, in the order of their
// encodings. The maps are shared: read only.
func (s *State) ClientQuotas() []ClientQuota {
	out := make([]ClientQuota, 0, s.quotas.Len())
	iterator := s.quotas.Root().Iterator()
	for _, q, ok := iterator.Next(); ok; _, q, ok = iterator.Next() {
		out = append(out, *q)
	}
	return out
}

// encodeClientQuotaRecord is the snapshot record 0x08: quota entity,
// uvarint value count (1 or more), then quota values in key order.
func encodeClientQuotaRecord(e *encoder, q *ClientQuota) {
	encodeQuotaEntity(e, q.Entity)
	keys := make([]string, 0, len(q.Values))
	for k := range q.Values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.string(k)
		encodeFloat64(e, q.Values[k])
	}
}

// restoreClientQuota adds a snapshot's client quota record to quotas,
// validating it as AlterClientQuotas would have.
func restoreClientQuota(quotas *iradix.Txn[*ClientQuota], d *decoder) error {
	q := &ClientQuota{Entity: decodeQuotaEntity(d), Values: map[string]float64{}}
	n := d.length(1 + 8)
	a := QuotaAlteration{Entity: q.Entity}
	previous := ""
	for i := range n {
		key, value := d.string(), decodeFloat64(d)
		if d.err() == nil && i > 0 && key <= previous {
			return corruptf("client quota keys out of order")
		}
		previous = key
		q.Values[key] = value
		a.Ops = append(a.Ops, QuotaOp{Key: key, Value: value})
	}
	if err := d.finish(); err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return corruptf("%v", err)
	}
	key := quotaKey(q.Entity)
	if _, exists := quotas.Get(key); exists {
		return corruptf("client quota entity %s appears twice", q.Entity)
	}
	quotas.Insert(key, q)
	return nil
}
