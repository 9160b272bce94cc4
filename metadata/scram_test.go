package metadata

import (
	"bytes"
	"reflect"
	"testing"
)

func goldenScram(user string, mechanism int8) ScramCredential {
	size := 32
	if mechanism == ScramSHA512 {
		size = 64
	}
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, size) }
	return ScramCredential{User: user, Mechanism: mechanism, Salt: []byte("0123456789abcdef"), Iterations: 8192,
		StoredKey: key(0xa1), ServerKey: key(0xb2)}
}

// scramCommand is a random AlterScramCredentials: mostly valid upserts
// and deletions of existing credentials, sometimes not.
func (g *commandGenerator) scramCommand() command {
	user := []string{"u1", "u2", "u3"}[g.random.IntN(3)]
	mechanism := int8(1 + g.random.IntN(2))
	if g.chance(40) {
		return &alterScramCredentialsCommand{deletions: []ScramDeletion{{User: user, Mechanism: mechanism}}}
	}
	c := goldenScram(user, mechanism)
	c.Salt = []byte{byte(g.random.IntN(256))}
	if g.chance(15) {
		c.Iterations = 100 // too few
	}
	return &alterScramCredentialsCommand{upserts: []ScramCredential{c}}
}

func TestApplyScramCredentials(t *testing.T) {
	short := goldenScram("short", ScramSHA256)
	short.StoredKey = short.StoredKey[:16]
	weak := goldenScram("weak", ScramSHA512)
	weak.Iterations = 1000
	unknown := goldenScram("x", ScramSHA256)
	unknown.Mechanism = 3
	nameless := goldenScram("", ScramSHA256)
	nul := goldenScram("a\x00b", ScramSHA256)
	noSalt := goldenScram("nosalt", ScramSHA256)
	noSalt.Salt = nil
	admin := goldenScram("admin", ScramSHA512)
	steps := []fsmStep{
		{command: &alterScramCredentialsCommand{upserts: []ScramCredential{admin}}},
		{command: &alterScramCredentialsCommand{deletions: []ScramDeletion{{User: "nobody", Mechanism: ScramSHA512}}}, wantErr: ErrInvalidScramCredential},
		{command: &alterScramCredentialsCommand{upserts: []ScramCredential{admin, admin}}, wantErr: ErrInvalidScramCredential},
	}
	for _, bad := range []ScramCredential{short, weak, unknown, nameless, nul, noSalt} {
		// A bad upsert refuses the whole command: the good deletion with it
		// does not apply.
		steps = append(steps, fsmStep{command: &alterScramCredentialsCommand{upserts: []ScramCredential{bad},
			deletions: []ScramDeletion{{User: "admin", Mechanism: ScramSHA512}}}, wantErr: ErrInvalidScramCredential})
	}
	f := applySteps(t, steps)
	got, ok := f.state().ScramCredential("admin", ScramSHA512)
	if !ok || !reflect.DeepEqual(got, admin) {
		t.Fatalf("admin's credential %+v (%v), want %+v", got, ok, admin)
	}
	if _, ok := f.state().ScramCredential("admin", ScramSHA256); ok {
		t.Fatal("a SCRAM-SHA-256 credential appeared")
	}
}

// TestSnapshotScramGolden pins the SCRAM credential record (0x06) in a
// snapshot of its own (snapshot-v1-full.bin stays as it was).
func TestSnapshotScramGolden(t *testing.T) {
	f := newFSM(discardLogger())
	if err := f.Restore(readCloser{bytes.NewReader(snapshotOf(t, goldenFullState(t)))}); err != nil {
		t.Fatal(err)
	}
	index := f.state().AppliedIndex() + 1
	c := &alterScramCredentialsCommand{upserts: []ScramCredential{goldenScram("admin", ScramSHA512), goldenScram("admin", ScramSHA256), goldenScram("alice", ScramSHA256)}}
	if result := applyCommand(f, index, c); result.err != nil {
		t.Fatal(result.err)
	}
	state := f.state()
	checkGolden(t, "snapshot-v1-scram.bin", snapshotOf(t, state))
	restored, err := readSnapshot(bytes.NewReader(readGolden(t, "snapshot-v1-scram.bin")))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, state)
	if got, want := restored.ScramCredentials(), state.ScramCredentials(); len(got) != 3 || !reflect.DeepEqual(got, want) {
		t.Fatalf("restored credentials %+v, want %+v", got, want)
	}
}
