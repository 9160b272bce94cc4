package node

import "testing"

// TestObjectStoreNodeLocal: which --object-store a broker treats as its
// own (tiered topics refused once the cluster has another node).
func TestObjectStoreNodeLocal(t *testing.T) {
	for _, c := range []struct {
		store  string
		shared bool
		local  bool
	}{
		{"", false, true}, // file://<data dir>/bucket
		{"mem://", false, true},
		{"file:///mnt/bucket", false, true},
		{"file:///mnt/bucket", true, false},
		{"s3://bucket?endpoint=http://127.0.0.1:7070&region=us-east-1", false, false},
	} {
		if got := objectStoreNodeLocal(Config{ObjectStore: c.store, ObjectStoreShared: c.shared}); got != c.local {
			t.Errorf("--object-store %q shared=%v: node-local %v, want %v", c.store, c.shared, got, c.local)
		}
	}
}
