package metadata

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetaPropertiesGolden(t *testing.T) {
	want := metaProperties{clusterID: "MkU3OEVBNTcwNTJENDM2Qk", nodeID: 3, directoryID: goldenDirectory}
	checkGolden(t, "meta.properties", encodeMetaProperties(want))
	got, err := decodeMetaProperties(readGolden(t, "meta.properties"))
	if err != nil || got != want {
		t.Fatalf("decode golden: %+v, %v; want %+v", got, err, want)
	}
	// A file written before directory ids keeps decoding, with none.
	old, err := decodeMetaProperties(readGolden(t, "meta-no-directory-id.properties"))
	if want.directoryID = [16]byte{}; err != nil || old != want {
		t.Fatalf("decode golden without a directory id: %+v, %v; want %+v", old, err, want)
	}
}

func TestDecodeMetaProperties(t *testing.T) {
	tests := []struct {
		name          string
		text          string
		wantClusterID string
		wantNodeID    int32
		wantCorrupt   bool
	}{
		{name: "kafka style with comments and extra keys", text: "#\n#Tue Jan 02 10:00:00 UTC 2024\n! other comment\n\nnode.id=7\ndirectory.id=8PHhwtLDtKVGh5iJemtcTQ\nversion=1\nlog.dirs=/x\ncluster.id = my-cluster \n", wantClusterID: "my-cluster", wantNodeID: 7},
		{name: "bad directory id", text: "version=1\ncluster.id=c\nnode.id=1\ndirectory.id=abc\n", wantCorrupt: true},
		{name: "zero directory id", text: "version=1\ncluster.id=c\nnode.id=1\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAA\n", wantCorrupt: true},
		{name: "missing version", text: "cluster.id=c\nnode.id=1\n", wantCorrupt: true},
		{name: "version 0", text: "version=0\ncluster.id=c\nnode.id=1\n", wantCorrupt: true},
		{name: "missing cluster id", text: "version=1\nnode.id=1\n", wantCorrupt: true},
		{name: "bad cluster id", text: "version=1\ncluster.id=a b\nnode.id=1\n", wantCorrupt: true},
		{name: "missing node id", text: "version=1\ncluster.id=c\n", wantCorrupt: true},
		{name: "negative node id", text: "version=1\ncluster.id=c\nnode.id=-1\n", wantCorrupt: true},
		{name: "node id out of range", text: "version=1\ncluster.id=c\nnode.id=4294967296\n", wantCorrupt: true},
		{name: "line without equals", text: "version=1\ncluster.id=c\nnode.id=1\ngarbage\n", wantCorrupt: true},
		{name: "duplicate key", text: "version=1\ncluster.id=c\ncluster.id=d\nnode.id=1\n", wantCorrupt: true},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			properties, err := decodeMetaProperties([]byte(test.text))
			clusterID, nodeID := properties.clusterID, properties.nodeID
			if test.wantCorrupt {
				if !IsCorrupt(err) {
					t.Fatalf("error %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil || clusterID != test.wantClusterID || nodeID != test.wantNodeID {
				t.Fatalf("got %q, %d, %v; want %q, %d", clusterID, nodeID, err, test.wantClusterID, test.wantNodeID)
			}
		})
	}
}

func TestNewClusterID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewClusterID()
		if len(id) != 22 || strings.HasPrefix(id, "-") {
			t.Fatalf("cluster id %q: want 22 characters not starting with '-'", id)
		}
		if decoded, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(decoded) != 16 {
			t.Fatalf("cluster id %q is not URL-safe base64 of 16 bytes: %v", id, err)
		}
		if err := ValidateClusterID(id); err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("cluster id %q generated twice", id)
		}
		seen[id] = true
	}
}

func TestFormat(t *testing.T) {
	voters := map[int32]string{1: "127.0.0.1:9093"}
	t.Run("writes meta.properties and raft state", func(t *testing.T) {
		dir := t.TempDir()
		if err := Format(dir, "cluster-a", 1, voters); err != nil {
			t.Fatal(err)
		}
		clusterID, nodeID, err := ReadMetaProperties(dir)
		if err != nil || clusterID != "cluster-a" || nodeID != 1 {
			t.Fatalf("ReadMetaProperties: %q, %d, %v", clusterID, nodeID, err)
		}
		for _, path := range []string{"metadata/raft", "metadata/snapshots"} {
			if _, err := os.Stat(filepath.Join(dir, path)); err != nil {
				t.Error(err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, metaPropertiesFile+temporarySuffix)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary file left behind: %v", err)
		}
	})
	t.Run("twice", func(t *testing.T) {
		dir := t.TempDir()
		if err := Format(dir, "cluster-a", 1, voters); err != nil {
			t.Fatal(err)
		}
		if err := Format(dir, "cluster-a", 1, voters); !errors.Is(err, ErrAlreadyFormatted) {
			t.Fatalf("second Format: %v, want ErrAlreadyFormatted", err)
		}
	})
	t.Run("after an interrupted format", func(t *testing.T) {
		dir := t.TempDir()
		if err := Format(dir, "cluster-a", 1, voters); err != nil {
			t.Fatal(err)
		}
		// A crash before meta.properties was written leaves raft state only.
		if err := os.Remove(filepath.Join(dir, metaPropertiesFile)); err != nil {
			t.Fatal(err)
		}
		if err := Format(dir, "cluster-b", 1, voters); err != nil {
			t.Fatalf("Format over leftovers: %v", err)
		}
	})
	t.Run("unformatted", func(t *testing.T) {
		if _, _, err := ReadMetaProperties(t.TempDir()); !errors.Is(err, ErrNotFormatted) {
			t.Fatalf("ReadMetaProperties: %v, want ErrNotFormatted", err)
		}
	})

	invalid := []struct {
		name      string
		clusterID string
		nodeID    int32
		voters    map[int32]string
		wantErr   error
	}{
		{name: "empty cluster id", clusterID: "", nodeID: 1, voters: voters, wantErr: ErrInvalidClusterID},
		{name: "cluster id with a space", clusterID: "a b", nodeID: 1, voters: voters, wantErr: ErrInvalidClusterID},
		{name: "cluster id too long", clusterID: strings.Repeat("a", 256), nodeID: 1, voters: voters, wantErr: ErrInvalidClusterID},
		{name: "negative node id", clusterID: "c", nodeID: -1, voters: map[int32]string{-1: "h:1"}},
		{name: "no voters", clusterID: "c", nodeID: 1, voters: nil},
		{name: "voter without port", clusterID: "c", nodeID: 1, voters: map[int32]string{1: "localhost"}},
		{name: "voter on unspecified address", clusterID: "c", nodeID: 1, voters: map[int32]string{1: "0.0.0.0:9093"}},
		{name: "voter with port 0", clusterID: "c", nodeID: 1, voters: map[int32]string{1: "localhost:0"}},
	}
	for _, test := range invalid {
		t.Run(test.name, func(t *testing.T) {
			dir := t.TempDir()
			err := Format(dir, test.clusterID, test.nodeID, test.voters)
			if err == nil || (test.wantErr != nil && !errors.Is(err, test.wantErr)) {
				t.Fatalf("Format: %v, want an error (%v)", err, test.wantErr)
			}
			if _, _, err := ReadMetaProperties(dir); !errors.Is(err, ErrNotFormatted) {
				t.Fatalf("a failed Format left the directory formatted: %v", err)
			}
		})
	}
}

// TestFormatNonvoter: a node outside the voters is formatted without a
// Raft configuration, so it can only join the quorum's log, and opening it
// without the voters is refused.
func TestFormatNonvoter(t *testing.T) {
	dir := t.TempDir()
	address := freeAddress(t)
	if err := Format(dir, "c", 4, map[int32]string{1: address}); err != nil {
		t.Fatal(err)
	}
	if _, node, err := ReadMetaProperties(dir); err != nil || node != 4 {
		t.Fatalf("meta.properties: node %d, %v", node, err)
	}
	config := testConfig(dir, freeAddress(t))
	config.NodeID = 4
	if _, err := Open(config); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open without voters: %v, want ErrCorrupt", err)
	}
}

func TestFormatAcceptsHostnames(t *testing.T) {
	voters := map[int32]string{1: "controller-1:9093", 2: "controller-2.strata.svc:9093", 3: "[::1]:9093"}
	if err := Format(t.TempDir(), "c", 2, voters); err != nil {
		t.Fatal(err)
	}
}
