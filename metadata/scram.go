package metadata

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// SCRAM credentials (KIP-554): what the brokers keep of each SCRAM user's
// password, replicated in the quorum so every broker authenticates every
// user. Only the salt, the iteration count and the derived keys are kept,
// never a password (RFC 5802 section 3).

// The SCRAM mechanisms, Kafka's numbers (DescribeUserScramCredentials'
// Mechanism field).
const (
	ScramSHA256 int8 = 1
	ScramSHA512 int8 = 2
)

// Bounds of a credential's iterations: Kafka's.
const (
	MinScramIterations = 4096
	MaxScramIterations = 16384
)

// ErrInvalidScramCredential rejects a malformed credential or the deletion
// of one that does not exist.
var ErrInvalidScramCredential = errors.New("metadata: invalid SCRAM credential")

// ScramCredential is one user's credential for one mechanism.
type ScramCredential struct {
	User       string
	Mechanism  int8 // ScramSHA256 or ScramSHA512
	Salt       []byte
	Iterations int32
	StoredKey  []byte
	ServerKey  []byte
}

// ScramDeletion names a credential to delete.
type ScramDeletion struct {
	User      string
	Mechanism int8
}

func scramKey(user string, mechanism int8) []byte {
	return append([]byte(user+"\x00"), byte(mechanism))
}

// ScramCredential returns user's credential for mechanism.
func (s *State) ScramCredential(user string, mechanism int8) (ScramCredential, bool) {
	c, ok := s.scram.Get(scramKey(user, mechanism))
	if !ok {
		return ScramCredential{}, false
	}
	return *c, true
}

// ScramCredentials returns every credential, by user then mechanism.
func (s *State) ScramCredentials() []ScramCredential {
	var out []ScramCredential
	it := s.scram.Root().Iterator()
	for _, c, ok := it.Next(); ok; _, c, ok = it.Next() {
		out = append(out, *c)
	}
	return out
}

// AlterScramCredentials upserts and deletes credentials in one command: all
// or none apply.
func (s *Store) AlterScramCredentials(ctx context.Context, upserts []ScramCredential, deletions []ScramDeletion) error {
	_, err := s.propose(ctx, &alterScramCredentialsCommand{upserts: upserts, deletions: deletions})
	return err
}

// alterScramCredentialsCommand (type 48, version 1). Payload:
//
//	uvarint upsert count, then per upsert:
//	  string user, uint8 mechanism, string salt (raw bytes),
//	  int32 iterations, string stored key, string server key
//	uvarint deletion count, then per deletion: string user, uint8 mechanism
//
// (string: uvarint length and bytes, as everywhere in this package.)
type alterScramCredentialsCommand struct {
	upserts   []ScramCredential
	deletions []ScramDeletion
}

func (c *alterScramCredentialsCommand) commandType() commandType {
	return commandAlterScramCredentials
}

func (c *alterScramCredentialsCommand) encode(e *encoder) {
	e.uvarint(uint64(len(c.upserts)))
	for _, u := range c.upserts {
		encodeScramCredential(e, &u)
	}
	e.uvarint(uint64(len(c.deletions)))
	for _, d := range c.deletions {
		e.string(d.User)
		e.uint8(uint8(d.Mechanism))
	}
}

func encodeScramCredential(e *encoder, c *ScramCredential) {
	e.string(c.User)
	e.uint8(uint8(c.Mechanism))
	e.string(string(c.Salt))
	e.int32(c.Iterations)
	e.string(string(c.StoredKey))
	e.string(string(c.ServerKey))
}

func decodeScramCredential(d *decoder) *ScramCredential {
	return &ScramCredential{User: d.string(), Mechanism: int8(d.uint8()), Salt: []byte(d.string()),
		Iterations: d.int32(), StoredKey: []byte(d.string()), ServerKey: []byte(d.string())}
}

func decodeAlterScramCredentials(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	c := &alterScramCredentialsCommand{}
	n := d.length(1 + 1 + 1 + 4 + 1 + 1)
	for range n {
		c.upserts = append(c.upserts, *decodeScramCredential(d))
	}
	n = d.length(1 + 1)
	for range n {
		c.deletions = append(c.deletions, ScramDeletion{User: d.string(), Mechanism: int8(d.uint8())})
	}
	return c, true
}

// validate checks one credential.
func (c *ScramCredential) validate() error {
	keySize := 0
	switch c.Mechanism {
	case ScramSHA256:
		keySize = 32
	case ScramSHA512:
		keySize = 64
	default:
		return fmt.Errorf("%w: user %q: unknown mechanism %d", ErrInvalidScramCredential, c.User, c.Mechanism)
	}
	switch {
	case c.User == "" || strings.ContainsRune(c.User, 0):
		return fmt.Errorf("%w: empty user name, or one with a NUL", ErrInvalidScramCredential)
	case c.Iterations < MinScramIterations || c.Iterations > MaxScramIterations:
		return fmt.Errorf("%w: user %q: %d iterations, want %d to %d", ErrInvalidScramCredential, c.User, c.Iterations, MinScramIterations, MaxScramIterations)
	case len(c.Salt) == 0 || len(c.Salt) > 1024:
		return fmt.Errorf("%w: user %q: salt of %d bytes", ErrInvalidScramCredential, c.User, len(c.Salt))
	case len(c.StoredKey) != keySize || len(c.ServerKey) != keySize:
		return fmt.Errorf("%w: user %q: keys of %d and %d bytes, want %d", ErrInvalidScramCredential, c.User, len(c.StoredKey), len(c.ServerKey), keySize)
	}
	return nil
}

func (c *alterScramCredentialsCommand) apply(b *stateBuilder) (any, error) {
	seen := map[string]bool{}
	for _, d := range c.deletions {
		key := string(scramKey(d.User, d.Mechanism))
		if seen[key] {
			return nil, fmt.Errorf("%w: user %q mechanism %d named twice", ErrInvalidScramCredential, d.User, d.Mechanism)
		}
		seen[key] = true
		if _, ok := b.scram.Get([]byte(key)); !ok {
			return nil, fmt.Errorf("%w: user %q has no credential of mechanism %d", ErrInvalidScramCredential, d.User, d.Mechanism)
		}
		b.scram.Delete([]byte(key))
	}
	for i := range c.upserts {
		u := c.upserts[i]
		if err := u.validate(); err != nil {
			return nil, err
		}
		key := string(scramKey(u.User, u.Mechanism))
		if seen[key] {
			return nil, fmt.Errorf("%w: user %q mechanism %d named twice", ErrInvalidScramCredential, u.User, u.Mechanism)
		}
		seen[key] = true
		b.scram.Insert([]byte(key), &u)
	}
	return nil, nil
}
