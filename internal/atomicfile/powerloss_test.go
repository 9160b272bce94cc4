package atomicfile_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/lazyfs/lazyfstest"
)

// TestWriteSurvivesPowerLoss runs WriteFile and Write on a lost-page-cache
// file system (internal/lazyfs): once they return, a power loss keeps the
// new content, whether the file is new or replaced, and leaves no
// temporary file. This covers every file Strata replaces through this
// package — meta.properties, cluster.secret, partition.metadata,
// leader-epoch-checkpoint, replication-offset-checkpoint,
// log-start-offset-checkpoint, producer snapshots — given that the
// directory holding the file is itself durable (its creator fsyncs its
// parent).
func TestWriteSurvivesPowerLoss(t *testing.T) {
	mount := lazyfstest.Mount(t)
	for _, tc := range []struct {
		name     string
		existing string // durable content before the write; "" for none
		write    func(path, data string) error
	}{
		{name: "WriteFile new file", write: func(path, data string) error {
			return atomicfile.WriteFile(path, []byte(data), 0o600)
		}},
		{name: "WriteFile replaces", existing: "old content, longer than the new one", write: func(path, data string) error {
			return atomicfile.WriteFile(path, []byte(data), 0o600)
		}},
		{name: "Write new file", write: func(path, data string) error {
			return atomicfile.Write(path, 0o600, func(w io.Writer) error {
				_, err := io.WriteString(w, data)
				return err
			})
		}},
		{name: "Write replaces", existing: "old", write: func(path, data string) error {
			return atomicfile.Write(path, 0o600, func(w io.Writer) error {
				_, err := io.WriteString(w, data)
				return err
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp(mount.Dir, "case-")
			if err != nil {
				t.Fatal(err)
			}
			if err := atomicfile.SyncDir(mount.Dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "checkpoint")
			if tc.existing != "" {
				if err := atomicfile.WriteFile(path, []byte(tc.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.write(path, "new"); err != nil {
				t.Fatal(err)
			}
			mount.Drop(t)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("after a power loss: %v", err)
			}
			if string(got) != "new" {
				t.Fatalf("after a power loss the file holds %q, want %q", got, "new")
			}
			if _, err := os.Stat(path + atomicfile.TempSuffix); !os.IsNotExist(err) {
				t.Fatalf("temporary file after a power loss: stat says %v, want it gone", err)
			}
		})
	}
}
