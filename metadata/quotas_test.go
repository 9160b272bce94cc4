package metadata

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// goldenQuotaAlterations set, replace and remove quotas of every entity
// kind: named and default users and client ids, alone and together.
var goldenQuotaAlterations = []QuotaAlteration{
	{Entity: QuotaEntity{User: NamedQuota("alice")}, Ops: []QuotaOp{{Key: ProducerByteRate, Value: 1048576}, {Key: ConsumerByteRate, Value: 2097152}}},
	{Entity: QuotaEntity{User: DefaultQuota}, Ops: []QuotaOp{{Key: ProducerByteRate, Value: 65536}}},
	{Entity: QuotaEntity{ClientID: NamedQuota("reporting")}, Ops: []QuotaOp{{Key: ConsumerByteRate, Value: 4096}}},
	{Entity: QuotaEntity{User: NamedQuota("bob"), ClientID: DefaultQuota}, Ops: []QuotaOp{{Key: ProducerByteRate, Remove: true}, {Key: ConsumerByteRate, Value: 1000}}},
	{Entity: QuotaEntity{User: DefaultQuota, ClientID: NamedQuota("etl")}, Ops: []QuotaOp{{Key: ProducerByteRate, Value: 123456789}}},
}

// quotaCommand is a random AlterClientQuotas: mostly valid sets and
// removals, sometimes an invalid value.
func (g *commandGenerator) quotaCommand() command {
	names := []QuotaName{{}, DefaultQuota, NamedQuota("u1"), NamedQuota("u2")}
	entity := QuotaEntity{User: names[g.random.IntN(len(names))], ClientID: names[g.random.IntN(len(names))]}
	key := []string{ProducerByteRate, ConsumerByteRate}[g.random.IntN(2)]
	op := QuotaOp{Key: key, Value: float64(1 + g.random.IntN(1<<20))}
	switch {
	case g.chance(30):
		op = QuotaOp{Key: key, Remove: true}
	case g.chance(10):
		op.Value = 0.5 // not whole
	}
	return &alterClientQuotasCommand{alterations: []QuotaAlteration{{Entity: entity, Ops: []QuotaOp{op}}}}
}

// TestApplyClientQuotas: AlterClientQuotas applied to the state machine:
// sets, replaces, removes (dropping an entity left empty); an invalid
// alteration, from whichever proposer, refuses the whole command.
func TestApplyClientQuotas(t *testing.T) {
	f := newFSM(discardLogger())
	index := uint64(1)
	apply := func(alterations ...QuotaAlteration) error {
		index++
		return applyCommand(f, index, &alterClientQuotasCommand{alterations: alterations}).err
	}
	alice := QuotaEntity{User: NamedQuota("alice")}
	set := func(entity QuotaEntity, key string, value float64) QuotaAlteration {
		return QuotaAlteration{Entity: entity, Ops: []QuotaOp{{Key: key, Value: value}}}
	}
	if err := apply(set(alice, ProducerByteRate, 1000), set(QuotaEntity{ClientID: DefaultQuota}, ConsumerByteRate, 50)); err != nil {
		t.Fatal(err)
	}
	invalid := map[string]QuotaAlteration{
		"no entity":                {Ops: []QuotaOp{{Key: ProducerByteRate, Value: 1}}},
		"empty user":               set(QuotaEntity{User: NamedQuota("")}, ProducerByteRate, 1),
		"not UTF-8":                set(QuotaEntity{ClientID: NamedQuota("\xff")}, ProducerByteRate, 1),
		"unknown key":              set(alice, "producer_bytes", 1),
		"request_percentage":       set(alice, "request_percentage", 50),
		"controller_mutation_rate": set(alice, "controller_mutation_rate", 5),
		"zero":                     set(alice, ProducerByteRate, 0),
		"negative":                 set(alice, ProducerByteRate, -5),
		"fraction":                 set(alice, ProducerByteRate, 1.5),
		"too big":                  set(alice, ProducerByteRate, 1<<60),
		"no ops":                   {Entity: alice},
		"key twice":                {Entity: alice, Ops: []QuotaOp{{Key: ProducerByteRate, Value: 1}, {Key: ProducerByteRate, Remove: true}}},
	}
	for name, bad := range invalid {
		// The valid removal in the same command does not apply either.
		removal := QuotaAlteration{Entity: QuotaEntity{ClientID: DefaultQuota}, Ops: []QuotaOp{{Key: ConsumerByteRate, Remove: true}}}
		if err := apply(removal, bad); !errors.Is(err, ErrInvalidClientQuota) {
			t.Fatalf("%s: %v, want ErrInvalidClientQuota", name, err)
		}
	}
	// Names the encoding cannot carry, refused before they are proposed.
	for _, entity := range []QuotaEntity{{User: QuotaName{Present: true, Default: true, Name: "x"}}, {User: QuotaName{Name: "x"}, ClientID: DefaultQuota}} {
		if err := entity.Validate(); !errors.Is(err, ErrInvalidClientQuota) {
			t.Fatalf("%+v: %v, want ErrInvalidClientQuota", entity, err)
		}
	}
	if err := apply(set(alice, ProducerByteRate, 1), set(alice, ConsumerByteRate, 1)); !errors.Is(err, ErrInvalidClientQuota) {
		t.Fatalf("entity twice: %v", err)
	}
	if err := apply(); !errors.Is(err, ErrInvalidClientQuota) {
		t.Fatalf("empty command: %v", err)
	}
	if n := f.state().ClientQuotaCount(); n != 2 {
		t.Fatalf("%d entities after refused commands, want 2", n)
	}

	if err := apply(QuotaAlteration{Entity: alice, Ops: []QuotaOp{{Key: ProducerByteRate, Value: 2000}, {Key: ConsumerByteRate, Value: 3000}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.state().ClientQuota(alice); !reflect.DeepEqual(got, map[string]float64{ProducerByteRate: 2000, ConsumerByteRate: 3000}) {
		t.Fatalf("alice's quotas %v", got)
	}
	// Removing a key that is not set does nothing; removing the last one
	// drops the entity.
	if err := apply(QuotaAlteration{Entity: QuotaEntity{ClientID: DefaultQuota}, Ops: []QuotaOp{{Key: ProducerByteRate, Remove: true}, {Key: ConsumerByteRate, Remove: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.state().ClientQuota(QuotaEntity{ClientID: DefaultQuota}); ok || f.state().ClientQuotaCount() != 1 {
		t.Fatalf("the default client id's entity stayed: %v", f.state().ClientQuotas())
	}
}

// TestSnapshotGoldenClientQuotas pins the client quota record (0x08) of
// the snapshot format, and refuses records that could not have been
// applied.
func TestSnapshotGoldenClientQuotas(t *testing.T) {
	f := newFSM(discardLogger())
	if err := f.Restore(readCloser{bytes.NewReader(snapshotOf(t, goldenFullState(t)))}); err != nil {
		t.Fatal(err)
	}
	if result := applyCommand(f, f.state().AppliedIndex()+1, &alterClientQuotasCommand{alterations: goldenQuotaAlterations}); result.err != nil {
		t.Fatal(result.err)
	}
	state := f.state()
	if n := state.ClientQuotaCount(); n != len(goldenQuotaAlterations) {
		t.Fatalf("%d entities, want %d", n, len(goldenQuotaAlterations))
	}
	checkGolden(t, "snapshot-v1-quotas.bin", snapshotOf(t, state))
	restored, err := readSnapshot(bytes.NewReader(readGolden(t, "snapshot-v1-quotas.bin")))
	if err != nil {
		t.Fatal(err)
	}
	requireStatesEqual(t, restored, state)

	record := func(q ClientQuota) []byte {
		var e encoder
		encodeClientQuotaRecord(&e, &q)
		return e.buffer
	}
	corrupt := map[string][]byte{
		"repeated entity": record(state.ClientQuotas()[0]),
	}
	for name, q := range map[string]ClientQuota{
		"no values":   {Entity: QuotaEntity{User: NamedQuota("zed")}, Values: map[string]float64{}},
		"unknown key": {Entity: QuotaEntity{User: NamedQuota("zed")}, Values: map[string]float64{"request_percentage": 5}},
		"zero rate":   {Entity: QuotaEntity{User: NamedQuota("zed")}, Values: map[string]float64{ProducerByteRate: 0}},
		"no entity":   {Values: map[string]float64{ProducerByteRate: 5}},
	} {
		corrupt[name] = record(q)
	}
	for name, payload := range corrupt {
		data := rewriteTail(t, snapshotOf(t, state), func(data []byte) ([]byte, uint64) {
			return appendRecord(data, recordClientQuota, payload), 1
		})
		if _, err := readSnapshot(bytes.NewReader(data)); !IsCorrupt(err) {
			t.Fatalf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
