package metadata

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestBoltLogStore: entries round-trip field for field, head and tail
// truncation (a follower dropping a conflicting suffix) leave the rest, and
// everything survives a reopen; the stable store answers "not found" as
// hashicorp/raft expects.
func TestBoltLogStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), raftLogFile)
	store, err := openBoltLogStore(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1 + i/5, Type: raft.LogCommand, Data: []byte{byte(i)}, Extensions: []byte("x"), AppendedAt: time.Unix(0, int64(i)*1000)})
	}
	if err := store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteRange(8, 10); err != nil { // tail
		t.Fatal(err)
	}
	if err := store.DeleteRange(1, 2); err != nil { // head
		t.Fatal(err)
	}
	if _, err := store.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get of an unset key: %v", err)
	}
	if err := store.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	store.Close()

	store, err = openBoltLogStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	if first != 3 || last != 7 {
		t.Fatalf("first %d last %d, want 3 and 7", first, last)
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := store.GetLog(i, &got); err != nil {
			t.Fatal(err)
		}
		want := *logs[i-1]
		if !reflect.DeepEqual(got.Data, want.Data) || got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!reflect.DeepEqual(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("entry %d: %+v, want %+v", i, got, want)
		}
	}
	var missing raft.Log
	if err := store.GetLog(9, &missing); err != raft.ErrLogNotFound {
		t.Fatalf("deleted entry: %v", err)
	}
	if term, err := store.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("CurrentTerm %d, %v", term, err)
	}
}
