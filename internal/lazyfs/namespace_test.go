package lazyfs

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// modelObject is a file or directory of the namespace model: what it holds
// now, and what a power loss would leave.
type modelObject struct {
	dir               bool
	content, synced   []byte                  // files
	children, durable map[string]*modelObject // directories: now, and at the last fsync
}

func newModelDir() *modelObject {
	return &modelObject{dir: true, children: map[string]*modelObject{}, durable: map[string]*modelObject{}}
}

type modelEntry struct {
	parent *modelObject
	name   string
	object *modelObject
	path   string // relative to the root
}

// entries lists the model's tree below dir, directories before their content.
func (o *modelObject) entries(prefix string) []modelEntry {
	var out []modelEntry
	for _, name := range slices.Sorted(maps.Keys(o.children)) {
		child := o.children[name]
		path := filepath.Join(prefix, name)
		out = append(out, modelEntry{parent: o, name: name, object: child, path: path})
		if child.dir {
			out = append(out, child.entries(path)...)
		}
	}
	return out
}

// powerLoss turns the model into what a drop leaves: every directory
// reachable through durable names holds its durable listing, every file
// its synced content.
func (o *modelObject) powerLoss() {
	o.children = maps.Clone(o.durable)
	for _, child := range o.children {
		if child.dir {
			child.powerLoss()
		} else {
			child.content = bytes.Clone(child.synced)
		}
	}
}

// describe is a tree listing: one "path kind content" line per entry.
func (o *modelObject) describe() string {
	var lines []string
	for _, entry := range o.entries("") {
		if entry.object.dir {
			lines = append(lines, entry.path+" dir")
		} else {
			lines = append(lines, fmt.Sprintf("%s file %x", entry.path, entry.object.content))
		}
	}
	return strings.Join(lines, "\n")
}

// describeTree is describe for a directory tree, without the graveyard.
func describeTree(t *testing.T, backing string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(backing, func(path string, entry os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		relative, _ := filepath.Rel(backing, path)
		switch {
		case relative == ".":
			return nil
		case relative == GraveyardName:
			return filepath.SkipDir
		case entry.IsDir():
			lines = append(lines, relative+" dir")
		default:
			content, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s file %x", relative, content))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// namespaceDriver applies the model's operations (paths relative to the
// root) to a file system, and drops.
type namespaceDriver interface {
	create(path string) error
	mkdir(path string) error
	write(path string, data []byte, offset int64) error
	fsync(path string) error
	fsyncDir(path string) error
	remove(path string, isDir bool) error
	rename(from, to string) error
	drop() error
	root() string // the directory whose tree must match the model
	stats() Stats
}

// directDriver calls FS's operations on the backing directory, no mount.
type directDriver struct {
	lfs *FS
}

func (d directDriver) abs(path string) string { return filepath.Join(d.lfs.backing, path) }

func errnoError(errno syscall.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

func (d directDriver) create(path string) error {
	var st unix.Stat_t
	fd, errno := d.lfs.create(filepath.Dir(d.abs(path)), filepath.Base(path), unix.O_RDWR, 0o644, &st)
	if errno == 0 {
		unix.Close(fd)
	}
	return errnoError(errno)
}

func (d directDriver) mkdir(path string) error {
	var st unix.Stat_t
	return errnoError(d.lfs.mkdir(filepath.Dir(d.abs(path)), filepath.Base(path), 0o755, &st))
}

func (d directDriver) withFile(path string, fn func(fd int) syscall.Errno) error {
	fd, err := unix.Open(d.abs(path), unix.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return errnoError(fn(fd))
}

func (d directDriver) write(path string, data []byte, offset int64) error {
	return d.withFile(path, func(fd int) syscall.Errno {
		_, errno := d.lfs.write(fd, data, offset)
		return errno
	})
}

func (d directDriver) fsync(path string) error { return d.withFile(path, d.lfs.syncFile) }

func (d directDriver) fsyncDir(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(d.abs(path), &st); err != nil {
		return err
	}
	d.lfs.syncDir(st.Ino)
	return nil
}

func (d directDriver) remove(path string, isDir bool) error {
	return errnoError(d.lfs.remove(filepath.Dir(d.abs(path)), filepath.Base(path), isDir))
}

func (d directDriver) rename(from, to string) error {
	return errnoError(d.lfs.rename(filepath.Dir(d.abs(from)), filepath.Base(from), filepath.Dir(d.abs(to)), filepath.Base(to), 0))
}

func (d directDriver) drop() error  { return d.lfs.Drop() }
func (d directDriver) root() string { return d.lfs.backing }
func (d directDriver) stats() Stats { return d.lfs.Stats() }

// mountDriver makes the system calls on the mount, so the kernel and its
// caches are part of the test.
type mountDriver struct {
	dir   string
	mount *Mount
}

func (d mountDriver) abs(path string) string { return filepath.Join(d.dir, path) }

func (d mountDriver) create(path string) error {
	f, err := os.OpenFile(d.abs(path), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		err = f.Close()
	}
	return err
}

func (d mountDriver) mkdir(path string) error { return os.Mkdir(d.abs(path), 0o755) }

func (d mountDriver) write(path string, data []byte, offset int64) error {
	f, err := os.OpenFile(d.abs(path), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(data, offset)
	return err
}

func (d mountDriver) fsync(path string) error {
	f, err := os.OpenFile(d.abs(path), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (d mountDriver) fsyncDir(path string) error {
	f, err := os.Open(d.abs(path))
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (d mountDriver) remove(path string, isDir bool) error { return os.Remove(d.abs(path)) }

// rename is rename(2): os.Rename refuses to replace a directory.
func (d mountDriver) rename(from, to string) error { return unix.Rename(d.abs(from), d.abs(to)) }
func (d mountDriver) drop() error                  { return d.mount.Drop() }
func (d mountDriver) root() string                 { return d.dir }
func (d mountDriver) stats() Stats                 { return d.mount.FS().Stats() }

// TestNamespaceModel applies random creates, mkdirs, writes, fsyncs of
// files and directories, unlinks, rmdirs, renames and drops, and compares
// the tree with a model of strict POSIX durability after every step (fixed
// seeds): once calling FS directly on a backing directory (runs where FUSE
// is missing), once through a real mount (the kernel's caches included).
func TestNamespaceModel(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		runNamespaceModel(t, 40, func(t *testing.T) namespaceDriver {
			lfs, err := New(Config{Backing: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			return directDriver{lfs: lfs}
		})
	})
	t.Run("mount", func(t *testing.T) {
		runNamespaceModel(t, 10, func(t *testing.T) namespaceDriver {
			dir, m := mountTest(t)
			return mountDriver{dir: dir, mount: m}
		})
	})
}

func runNamespaceModel(t *testing.T, seeds uint64, newDriver func(t *testing.T) namespaceDriver) {
	names := []string{"a", "b", "c"}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			random := rand.New(rand.NewPCG(seed, 15))
			driver := newDriver(t)
			root := newModelDir()
			var history []string
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("operations:\n  %s", strings.Join(history, "\n  "))
				}
			})
			pick := func(entries []modelEntry, dirs bool) (modelEntry, bool) {
				var matching []modelEntry
				for _, entry := range entries {
					if entry.object.dir == dirs {
						matching = append(matching, entry)
					}
				}
				if len(matching) == 0 {
					return modelEntry{}, false
				}
				return matching[random.IntN(len(matching))], true
			}
			for step := range 200 {
				entries := root.entries("")
				dirs := []modelEntry{{object: root}}
				for _, entry := range entries {
					if entry.object.dir {
						dirs = append(dirs, entry)
					}
				}
				dir := dirs[random.IntN(len(dirs))]
				name := names[random.IntN(len(names))]
				path := filepath.Join(dir.path, name)
				var op string
				var err error
				switch random.IntN(11) {
				case 0, 1:
					if dir.object.children[name] != nil {
						continue
					}
					op = "create " + path
					err = driver.create(path)
					dir.object.children[name] = &modelObject{}
				case 2:
					if dir.object.children[name] != nil {
						continue
					}
					op = "mkdir " + path
					err = driver.mkdir(path)
					dir.object.children[name] = newModelDir()
				case 3:
					file, ok := pick(entries, false)
					if !ok {
						continue
					}
					data := []byte(fmt.Sprint(step))
					offset := random.IntN(len(file.object.content) + 1)
					op = fmt.Sprintf("write %s at %d", file.path, offset)
					err = driver.write(file.path, data, int64(offset))
					content := file.object.content
					if grown := offset + len(data); grown > len(content) {
						content = append(content, make([]byte, grown-len(content))...)
					}
					copy(content[offset:], data)
					file.object.content = content
				case 4:
					file, ok := pick(entries, false)
					if !ok {
						continue
					}
					op = "fsync " + file.path
					err = driver.fsync(file.path)
					file.object.synced = bytes.Clone(file.object.content)
				case 5, 6:
					op = "fsync dir " + dir.path
					err = driver.fsyncDir(dir.path)
					dir.object.durable = maps.Clone(dir.object.children)
				case 7:
					victim := dir.object.children[name]
					if victim == nil || (victim.dir && len(victim.children) > 0) {
						continue
					}
					op = "remove " + path
					err = driver.remove(path, victim.dir)
					delete(dir.object.children, name)
				case 8, 9:
					if len(entries) == 0 {
						continue
					}
					source := entries[random.IntN(len(entries))]
					targetDir := dir
					if source.object.dir {
						// Directories move within their parent only: one moved
						// between two directories of which only one was fsynced
						// has no single durable place.
						targetDir = modelEntry{object: source.parent, path: filepath.Dir(source.path)}
						if targetDir.path == "." {
							targetDir.path = ""
						}
					}
					target := targetDir.object.children[name]
					if target == source.object || (target != nil && (target.dir != source.object.dir || (target.dir && len(target.children) > 0))) {
						continue
					}
					op = fmt.Sprintf("rename %s -> %s", source.path, filepath.Join(targetDir.path, name))
					err = driver.rename(source.path, filepath.Join(targetDir.path, name))
					delete(source.parent.children, source.name)
					targetDir.object.children[name] = source.object
				case 10:
					op = "drop"
					err = driver.drop()
					root.powerLoss()
				}
				history = append(history, op)
				if err != nil {
					t.Fatalf("after:\n  %s\nfailed: %v", strings.Join(history, "\n  "), err)
				}
				if got, want := describeTree(t, driver.root()), root.describe(); got != want {
					t.Fatalf("after:\n  %s\ntree:\n%s\nmodel:\n%s", strings.Join(history, "\n  "), got, want)
				}
				if stats := driver.stats(); stats.DropErrors != 0 {
					t.Fatalf("after:\n  %s\n%s", strings.Join(history, "\n  "), stats)
				}
			}
		})
	}
}
