package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var errInjected = errors.New("injected")

// leftovers lists the directory's names other than want.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, entry := range entries {
		found := false
		for _, name := range want {
			found = found || entry.Name() == name
		}
		if !found {
			extra = append(extra, entry.Name())
		}
	}
	return extra
}

func TestWriteFileReplacesContent(t *testing.T) {
	tests := []struct {
		name     string
		existing *string // nil: no file before the write
		leftover bool    // a <path>.tmp from an interrupted write exists
		data     string
	}{
		{name: "new file", data: "first"},
		{name: "replace longer", existing: ptr("a much longer old content"), data: "new"},
		{name: "replace shorter", existing: ptr("old"), data: "a longer new content"},
		{name: "empty content", existing: ptr("old"), data: ""},
		{name: "over a leftover temporary file", existing: ptr("old"), leftover: true, data: "new"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "checkpoint")
			if test.existing != nil {
				if err := os.WriteFile(path, []byte(*test.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if test.leftover {
				if err := os.WriteFile(path+TempSuffix, []byte("torn garbage from a crash, longer than the new content"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(path, []byte(test.data), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != test.data {
				t.Fatalf("content %q, %v; want %q", got, err, test.data)
			}
			if extra := leftovers(t, dir, "checkpoint"); len(extra) > 0 {
				t.Errorf("left behind: %v", extra)
			}
		})
	}
}

func TestWriteFilePermission(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
}

func TestWriteStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	err := Write(path, 0o644, func(w io.Writer) error {
		for _, part := range []string{"one ", "two ", "three"} {
			if _, err := io.WriteString(w, part); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "one two three" {
		t.Fatalf("content %q, %v", got, err)
	}
}

// TestWriteFailures checks that a failure before the rename leaves the old
// content and no temporary file, and that a failure of the directory fsync
// (after the rename) is returned, not ignored.
func TestWriteFailures(t *testing.T) {
	tests := []struct {
		name string
		fill func(io.Writer) error
		// sync fails for the file (directory false) or the directory.
		syncFails   bool
		directory   bool
		wantContent string // what path holds afterwards
	}{
		{name: "writer fails", fill: func(w io.Writer) error {
			io.WriteString(w, "half of the new")
			return errInjected
		}, wantContent: "old"},
		{name: "file fsync fails", syncFails: true, wantContent: "old"},
		{name: "directory fsync fails", syncFails: true, directory: true, wantContent: "new"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "checkpoint")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			fill := test.fill
			if fill == nil {
				fill = func(w io.Writer) error {
					_, err := io.WriteString(w, "new")
					return err
				}
			}
			sync := func(f *os.File) error {
				isDirectory := f.Name() == dir
				if test.syncFails && isDirectory == test.directory {
					return errInjected
				}
				return f.Sync()
			}
			err := write(path, 0o644, fill, sync)
			if !errors.Is(err, errInjected) {
				t.Fatalf("error %v, want the injected one", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if test.directory && !strings.Contains(err.Error(), "fsync directory "+dir) {
				t.Errorf("error %q does not name the directory fsync", err)
			}
			got, readErr := os.ReadFile(path)
			if readErr != nil || string(got) != test.wantContent {
				t.Errorf("content %q, %v; want %q", got, readErr, test.wantContent)
			}
			if extra := leftovers(t, dir, "checkpoint"); len(extra) > 0 {
				t.Errorf("left behind: %v", extra)
			}
		})
	}
}

func TestWriteFileCannotCreate(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing", "file")
		err := WriteFile(path, []byte("x"), 0o644)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %v, want not-exist naming %s", err, path)
		}
	})
	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes into read-only directories")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "file")
		if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		if err := WriteFile(path, []byte("new"), 0o644); !errors.Is(err, os.ErrPermission) {
			t.Fatalf("error %v, want permission denied", err)
		}
		if got, _ := os.ReadFile(path); string(got) != "old" {
			t.Errorf("content %q, want the old one", got)
		}
	})
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if err := SyncDir(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error %v, want not-exist naming %s", err, missing)
	}
}

func ptr(s string) *string { return &s }
