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

func describeBacking(t *testing.T, backing string) string {
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

// TestNamespaceModel drives FS's namespace operations directly on a
// backing directory (no mount) with random creates, mkdirs, writes,
// fsyncs of files and directories, unlinks, rmdirs, renames and drops,
// and compares the backing tree with a model of strict POSIX durability
// after every step. Fixed seeds.
func TestNamespaceModel(t *testing.T) {
	names := []string{"a", "b", "c"}
	for seed := range uint64(40) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			random := rand.New(rand.NewPCG(seed, 15))
			backing := t.TempDir()
			lfs, err := New(Config{Backing: backing})
			if err != nil {
				t.Fatal(err)
			}
			root := newModelDir()
			var history []string
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
				dirs := append([]modelEntry{{object: root}}, func() []modelEntry {
					var out []modelEntry
					for _, entry := range entries {
						if entry.object.dir {
							out = append(out, entry)
						}
					}
					return out
				}()...)
				dir := dirs[random.IntN(len(dirs))]
				dirPath := filepath.Join(backing, dir.path)
				name := names[random.IntN(len(names))]
				var op string
				switch random.IntN(11) {
				case 0, 1:
					if dir.object.children[name] != nil {
						continue
					}
					op = "create " + filepath.Join(dir.path, name)
					var st unix.Stat_t
					fd, errno := lfs.create(dirPath, name, unix.O_RDWR, 0o644, &st)
					if errno != 0 {
						t.Fatalf("%s: %v", op, errno)
					}
					unix.Close(fd)
					dir.object.children[name] = &modelObject{}
				case 2:
					if dir.object.children[name] != nil {
						continue
					}
					op = "mkdir " + filepath.Join(dir.path, name)
					var st unix.Stat_t
					if errno := lfs.mkdir(dirPath, name, 0o755, &st); errno != 0 {
						t.Fatalf("%s: %v", op, errno)
					}
					dir.object.children[name] = newModelDir()
				case 3:
					file, ok := pick(entries, false)
					if !ok {
						continue
					}
					data := []byte(fmt.Sprint(step))
					offset := random.IntN(len(file.object.content) + 1)
					op = fmt.Sprintf("write %s at %d", file.path, offset)
					fd, err := unix.Open(filepath.Join(backing, file.path), unix.O_RDWR, 0)
					if err != nil {
						t.Fatalf("%s: %v", op, err)
					}
					_, errno := lfs.write(fd, data, int64(offset))
					unix.Close(fd)
					if errno != 0 {
						t.Fatalf("%s: %v", op, errno)
					}
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
					fd, err := unix.Open(filepath.Join(backing, file.path), unix.O_RDWR, 0)
					if err != nil {
						t.Fatalf("%s: %v", op, err)
					}
					errno := lfs.syncFile(fd)
					unix.Close(fd)
					if errno != 0 {
						t.Fatalf("%s: %v", op, errno)
					}
					file.object.synced = bytes.Clone(file.object.content)
				case 5, 6:
					op = "fsync dir " + dir.path
					lfs.syncDir(dirIno(t, dirPath))
					dir.object.durable = maps.Clone(dir.object.children)
				case 7:
					victim := dir.object.children[name]
					if victim == nil || (victim.dir && len(victim.children) > 0) {
						continue
					}
					op = "remove " + filepath.Join(dir.path, name)
					if errno := lfs.remove(dirPath, name, victim.dir); errno != 0 {
						t.Fatalf("%s: %v", op, errno)
					}
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
					if errno := lfs.rename(filepath.Join(backing, filepath.Dir(source.path)), source.name, filepath.Join(backing, targetDir.path), name, 0); errno != 0 {
						t.Fatalf("%s: %v", op, errno)
					}
					delete(source.parent.children, source.name)
					targetDir.object.children[name] = source.object
				case 10:
					op = "drop"
					if err := lfs.Drop(); err != nil {
						t.Fatalf("drop: %v", err)
					}
					root.powerLoss()
				}
				history = append(history, op)
				if got, want := describeBacking(t, backing), root.describe(); got != want {
					t.Fatalf("after:\n  %s\nbacking:\n%s\nmodel:\n%s", strings.Join(history, "\n  "), got, want)
				}
				if stats := lfs.Stats(); stats.DropErrors != 0 {
					t.Fatalf("after:\n  %s\n%s", strings.Join(history, "\n  "), stats)
				}
			}
		})
	}
}
