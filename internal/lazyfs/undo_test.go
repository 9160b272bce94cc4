package lazyfs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUndoModel drives the file operations of FS directly on a backing
// file (no mount: it runs where FUSE is missing too) with random writes,
// truncates, hole punches and fsyncs, and checks after each drop that the
// file holds exactly its content at the last fsync. Fixed seeds.
func TestUndoModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			random := rand.New(rand.NewPCG(seed, 15))
			backing := t.TempDir()
			lfs, err := New(Config{Backing: backing})
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			fd, errno := lfs.create(backing, "f", unix.O_RDWR, 0o644, &st)
			if errno != 0 {
				t.Fatal(errno)
			}
			defer unix.Close(fd)
			lfs.syncDir(dirIno(t, backing))
			var current, synced []byte
			for step := range 300 {
				switch op := random.IntN(10); {
				case op < 5:
					offset := random.IntN(len(current) + 64)
					data := make([]byte, 1+random.IntN(64))
					for i := range data {
						data[i] = byte(random.IntN(256))
					}
					if _, errno := lfs.write(fd, data, int64(offset)); errno != 0 {
						t.Fatalf("step %d: write: %v", step, errno)
					}
					if grown := offset + len(data); grown > len(current) {
						current = append(current, make([]byte, grown-len(current))...)
					}
					copy(current[offset:], data)
				case op < 7:
					size := random.IntN(len(current) + 32)
					if errno := lfs.truncate(fd, int64(size)); errno != 0 {
						t.Fatalf("step %d: truncate: %v", step, errno)
					}
					if size > len(current) {
						current = append(current, make([]byte, size-len(current))...)
					}
					current = current[:size]
				case op < 8 && len(current) > 0:
					offset, length := random.IntN(len(current)), 1+random.IntN(64)
					mode := uint32(unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE)
					if errno := lfs.allocate(fd, int64(offset), int64(length), mode); errno != 0 {
						t.Fatalf("step %d: punch: %v", step, errno)
					}
					clear(current[offset:min(offset+length, len(current))])
				case op < 9:
					if errno := lfs.syncFile(fd); errno != 0 {
						t.Fatalf("step %d: fsync: %v", step, errno)
					}
					synced = bytes.Clone(current)
				default:
					if err := lfs.Drop(); err != nil {
						t.Fatalf("step %d: drop: %v", step, err)
					}
					current = bytes.Clone(synced)
				}
				got, err := os.ReadFile(filepath.Join(backing, "f"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, current) {
					t.Fatalf("step %d: file holds %d bytes, model %d, or they differ", step, len(got), len(current))
				}
				if stats := lfs.Stats(); stats.DropErrors != 0 || stats.UndoBytes > int64(len(synced)) {
					t.Fatalf("step %d: %s (synced length %d)", step, stats, len(synced))
				}
			}
		})
	}
}

func dirIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
