package metadata

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// update rewrites golden files: go test ./metadata -run Golden -update
var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// checkGolden compares got with testdata/name, or writes it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s changed: the format changed by accident, or bump its version and run -update\ngot:\n%s\nwant:\n%s",
			path, hex.Dump(got), hex.Dump(want))
	}
}

// readGolden returns testdata/name.
func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// memorySink is a raft.SnapshotSink over a buffer.
type memorySink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memorySink) ID() string    { return "memory" }
func (s *memorySink) Close() error  { s.closed = true; return nil }
func (s *memorySink) Cancel() error { s.cancelled = true; return nil }

var _ raft.SnapshotSink = (*memorySink)(nil)

// requireStatesEqual fails unless a and b hold the same metadata.
func requireStatesEqual(t *testing.T, got, want *State) {
	t.Helper()
	if got.AppliedIndex() != want.AppliedIndex() {
		t.Errorf("applied index %d, want %d", got.AppliedIndex(), want.AppliedIndex())
	}
	if got.ClusterID() != want.ClusterID() {
		t.Errorf("cluster id %q, want %q", got.ClusterID(), want.ClusterID())
	}
	if got.NextProducerID() != want.NextProducerID() {
		t.Errorf("next producer id %d, want %d", got.NextProducerID(), want.NextProducerID())
	}
	gotTopics, wantTopics := got.Topics(), want.Topics()
	if !reflect.DeepEqual(gotTopics, wantTopics) {
		t.Fatalf("topics differ\ngot:  %+v\nwant: %+v", gotTopics, wantTopics)
	}
	if got.topicNames.Len() != want.topicNames.Len() {
		t.Errorf("topic id index has %d entries, want %d", got.topicNames.Len(), want.topicNames.Len())
	}
	if gotBrokers, wantBrokers := got.Brokers(), want.Brokers(); !reflect.DeepEqual(gotBrokers, wantBrokers) {
		t.Fatalf("brokers differ\ngot:  %+v\nwant: %+v", gotBrokers, wantBrokers)
	}
	if gotACLs, wantACLs := got.ACLs(), want.ACLs(); !reflect.DeepEqual(gotACLs, wantACLs) {
		t.Fatalf("ACL bindings differ\ngot:  %+v\nwant: %+v", gotACLs, wantACLs)
	}
	if gotStarts, wantStarts := allLogStarts(got), allLogStarts(want); !reflect.DeepEqual(gotStarts, wantStarts) {
		t.Fatalf("log start offsets differ\ngot:  %v\nwant: %v", gotStarts, wantStarts)
	}
	if got.SegmentCount() != want.SegmentCount() {
		t.Errorf("%d tiered segments, want %d", got.SegmentCount(), want.SegmentCount())
	}
	if gotSegments, wantSegments := allSegments(got), allSegments(want); !reflect.DeepEqual(gotSegments, wantSegments) {
		t.Fatalf("tiered segments differ\ngot:  %+v\nwant: %+v", gotSegments, wantSegments)
	}
	if gotConfigs, wantConfigs := allBrokerConfigs(got), allBrokerConfigs(want); !reflect.DeepEqual(gotConfigs, wantConfigs) {
		t.Fatalf("dynamic broker configs differ\ngot:  %+v\nwant: %+v", gotConfigs, wantConfigs)
	}
	if gotScram, wantScram := got.ScramCredentials(), want.ScramCredentials(); !reflect.DeepEqual(gotScram, wantScram) {
		t.Fatalf("SCRAM credentials differ\ngot:  %+v\nwant: %+v", gotScram, wantScram)
	}
	if gotQuotas, wantQuotas := got.ClientQuotas(), want.ClientQuotas(); !reflect.DeepEqual(gotQuotas, wantQuotas) {
		t.Fatalf("client quotas differ\ngot:  %+v\nwant: %+v", gotQuotas, wantQuotas)
	}
	for _, topic := range wantTopics {
		byID, ok := got.TopicByID(topic.ID)
		if !ok || byID.Name != topic.Name {
			t.Errorf("TopicByID(%s) = %q, %t; want %q", formatTopicID(topic.ID), byID.Name, ok, topic.Name)
		}
	}
}

// applyCommand applies c to f as the Raft entry at index and returns the
// result.
func applyCommand(f *fsm, index uint64, c command) applyResult {
	return f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: encodeCommand(c)}).(applyResult)
}

// persist writes a snapshot of f's current state.
func persist(t *testing.T, f *fsm) []byte {
	t.Helper()
	snapshot, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snapshot.Release()
	var sink memorySink
	if err := snapshot.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed %t cancelled %t after Persist", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// restore builds a fresh FSM from a snapshot.
func restore(t *testing.T, data []byte) *fsm {
	t.Helper()
	f := newFSM(discardLogger())
	if err := f.Restore(readCloser{bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	return f
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testRegistration is a valid registration of broker id.
func testRegistration(id int32) BrokerRegistration {
	return BrokerRegistration{
		ID:            id,
		IncarnationID: [16]byte{0x1b, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)},
		Endpoints:     []BrokerEndpoint{{Listener: "CLIENT", Host: fmt.Sprintf("broker-%d.example", id), Port: 9092, SecurityProtocol: "PLAINTEXT"}},
	}
}

// registerBrokers returns steps that register brokers ids, one step each in
// order, so that later steps may place replicas on them (CreateTopic and
// CreatePartitions refuse replicas that are not registered brokers). A
// broker's epoch is its step's log index: applySteps applies step i as
// index i+1.
func registerBrokers(ids ...int32) []fsmStep {
	steps := make([]fsmStep, len(ids))
	for i, id := range ids {
		steps[i] = fsmStep{command: &registerBrokerCommand{registration: testRegistration(id)}}
	}
	return steps
}

// registerOnDirectory registers broker id, on the data directory whose id
// starts with directory, through store (any node of a cluster), and
// returns the registration and its broker epoch.
func registerOnDirectory(t *testing.T, ctx context.Context, store *Store, id int32, directory byte) (BrokerRegistration, int64) {
	t.Helper()
	registration := testRegistration(id)
	registration.DirectoryID = [16]byte{directory}
	epoch, err := store.RegisterBroker(ctx, registration)
	if err != nil {
		t.Fatalf("register broker %d: %v", id, err)
	}
	return registration, epoch
}

// registerTestBrokers registers brokers ids through store (any node of a
// cluster) and unfences them, so that topics may be placed on them and they
// keep leading what they are given. They never heartbeat: a controller
// fences them once their session ends (Config.BrokerSessionTimeout after it
// took over) and then moves their leaderships.
func registerTestBrokers(t *testing.T, ctx context.Context, store *Store, ids ...int32) {
	t.Helper()
	for _, id := range ids {
		epoch, err := store.RegisterBroker(ctx, testRegistration(id))
		if err != nil {
			t.Fatalf("register broker %d: %v", id, err)
		}
		if err := store.SetBrokerFenced(ctx, id, epoch, false); err != nil {
			t.Fatalf("unfence broker %d: %v", id, err)
		}
	}
}
