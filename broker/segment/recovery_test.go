package segment

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-log/strata/broker/segment/index"
)

// buildLog writes a multi-segment log and returns it with its model.
func buildLog(t *testing.T, dir string, cfg Config, clock *testClock) (*Log, *model) {
	t.Helper()
	l := openTestLog(t, dir, 0, cfg)
	m := &model{}
	fill(t, l, m, clock, 30)
	m.append(t, l, makeBatch(3, clock.Millis()+5000, 80, 200)) // a known last batch
	if len(l.Segments()) < 3 {
		t.Fatalf("want several segments, got %d", len(l.Segments()))
	}
	return l, m
}

func modifyFile(t *testing.T, path string, modify func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, modify(bytes.Clone(data)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverTornTail(t *testing.T) {
	// Each case damages the last segment's .log; lastPosition is where the
	// last batch starts.
	tests := []struct {
		name          string
		clean         bool // shut down cleanly before the damage
		damage        func(data []byte, lastPosition int) []byte
		dropLastBatch bool
	}{
		{name: "cut mid-batch", damage: func(d []byte, _ int) []byte { return d[:len(d)-10] }, dropLastBatch: true},
		{name: "cut inside the header", damage: func(d []byte, p int) []byte { return d[:p+30] }, dropLastBatch: true},
		{name: "cut after the length field", damage: func(d []byte, p int) []byte { return d[:p+12] }, dropLastBatch: true},
		{name: "garbage appended", damage: func(d []byte, _ int) []byte { return append(d, []byte("not a record batch, just noise")...) }},
		{name: "zeros appended", damage: func(d []byte, _ int) []byte { return append(d, make([]byte, 4096)...) }},
		{name: "payload byte flipped", damage: func(d []byte, _ int) []byte { d[len(d)-5] ^= 0x40; return d }, dropLastBatch: true},
		{name: "crc byte flipped", damage: func(d []byte, p int) []byte { d[p+batchCRCPosition] ^= 1; return d }, dropLastBatch: true},
		{name: "base offset byte flipped (outside the crc)", damage: func(d []byte, p int) []byte { d[p+7] ^= 2; return d }, dropLastBatch: true},
		{name: "length enlarged", damage: func(d []byte, p int) []byte {
			binary.BigEndian.PutUint32(d[p+batchLengthPosition:], binary.BigEndian.Uint32(d[p+batchLengthPosition:])+100)
			return d
		}, dropLastBatch: true},
		{name: "cut mid-batch after a clean close", clean: true, damage: func(d []byte, _ int) []byte { return d[:len(d)-10] }, dropLastBatch: true},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			logger, logs := newTestLogger(t)
			cfg.Logger = logger
			dir := t.TempDir()
			l, m := buildLog(t, dir, cfg, clock)
			segments := l.Segments()
			lastSegment := segments[len(segments)-1]
			last := m.batches[len(m.batches)-1]
			lastPosition := int(lastSegment.Size) - len(last.bytes)
			if test.clean {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				crash(l)
			}
			modifyFile(t, lastSegment.LogPath, func(d []byte) []byte { return test.damage(d, lastPosition) })

			l = openTestLog(t, dir, 0, cfg)
			if test.dropLastBatch {
				m.truncate(last.baseOffset)
			}
			m.verifyAll(t, l)
			if stat, err := os.Stat(lastSegment.LogPath); err != nil || stat.Size() != l.Segments()[len(segments)-1].Size {
				t.Fatalf("file size after recovery: %v, %v", stat, err)
			}
			output := logs.String()
			if !strings.Contains(output, "truncating log at a bad batch") || !strings.Contains(output, filepath.Base(lastSegment.LogPath)) {
				t.Fatalf("recovery not logged with the file name:\n%s", output)
			}
			// Appends continue right after the last good batch, and survive
			// another crash.
			m.append(t, l, makeBatch(2, clock.Millis(), 40, 99))
			m.verifyAll(t, l)
			crash(l)
			l = openTestLog(t, dir, 0, cfg)
			m.verifyAll(t, l)
		})
	}
}

func TestRecoverDamagedSealedSegment(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	dir := t.TempDir()
	l, m := buildLog(t, dir, cfg, clock)
	segments := l.Segments()
	damaged := segments[1]
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Flip a byte in the second batch of segment 1 and lose its index: the
	// segment is verified, cut before that batch, and the later segments go
	// so that offsets stay dense.
	var second modelBatch
	position := 0
	for i, batch := range m.batches {
		if batch.baseOffset == damaged.BaseOffset {
			position = len(batch.bytes)
			second = m.batches[i+1]
			break
		}
	}
	modifyFile(t, damaged.LogPath, func(d []byte) []byte { d[position+BatchHeaderSize+3] ^= 0xff; return d })
	if err := os.Remove(damaged.OffsetIndexPath); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, 0, cfg)
	m.truncate(second.baseOffset)
	m.verifyAll(t, l)
	if got := len(l.Segments()); got != 2 {
		t.Fatalf("%d segments, want 2", got)
	}
	for _, later := range segments[2:] {
		if _, err := os.Stat(later.LogPath); !os.IsNotExist(err) {
			t.Fatalf("%s still exists: %v", later.LogPath, err)
		}
	}
	m.append(t, l, makeBatch(1, clock.Millis(), 10, 1))
	m.verifyAll(t, l)
}

func TestRebuildIndexes(t *testing.T) {
	tests := []struct {
		name   string
		file   string // offsetIndexFileSuffix or timeIndexFileSuffix
		damage func(data []byte) []byte
		// rebuilt: the damage is detected and the file rewritten with the
		// original bytes; otherwise lookups must still be right.
		rebuilt bool
	}{
		{name: "index deleted", file: offsetIndexFileSuffix, rebuilt: true},
		{name: "time index deleted", file: timeIndexFileSuffix, rebuilt: true},
		{name: "index cut to an odd size", file: offsetIndexFileSuffix, damage: func(d []byte) []byte { return d[:len(d)-3] }, rebuilt: true},
		{name: "index garbage", file: offsetIndexFileSuffix, damage: func(d []byte) []byte {
			for i := range d {
				d[i] = byte(i*151 + 7)
			}
			return d
		}, rebuilt: true},
		{name: "index emptied", file: offsetIndexFileSuffix, damage: func([]byte) []byte { return nil }, rebuilt: true},
		{name: "last index entry position changed", file: offsetIndexFileSuffix, damage: func(d []byte) []byte { d[len(d)-1] ^= 0x01; return d }, rebuilt: true},
		{name: "middle index entry position off by one", file: offsetIndexFileSuffix, damage: func(d []byte) []byte {
			middle := (len(d)/index.OffsetEntrySize/2)*index.OffsetEntrySize + 4
			binary.BigEndian.PutUint32(d[middle:], binary.BigEndian.Uint32(d[middle:])+1)
			return d
		}},
		{name: "time index garbage", file: timeIndexFileSuffix, damage: func(d []byte) []byte {
			for i := range d {
				d[i] = byte(i*13 + 1)
			}
			return d
		}, rebuilt: true},
		{name: "time index emptied", file: timeIndexFileSuffix, damage: func([]byte) []byte { return nil }, rebuilt: true},
		{name: "last time index timestamp changed", file: timeIndexFileSuffix, damage: func(d []byte) []byte { d[len(d)-5] ^= 0x10; return d }, rebuilt: true},
	}
	for _, test := range tests {
		for _, which := range []string{"sealed", "active"} {
			t.Run(test.name+"/"+which, func(t *testing.T) {
				clock := newTestClock()
				cfg := smallConfig(t, clock)
				cfg.IndexIntervalBytes = 100
				dir := t.TempDir()
				l, m := buildLog(t, dir, cfg, clock)
				segments := l.Segments()
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				target := segments[0]
				if which == "active" {
					target = segments[len(segments)-1]
				}
				path := strings.TrimSuffix(target.LogPath, logFileSuffix) + test.file
				original, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if len(original) < 2*index.TimeEntrySize {
					t.Fatalf("%s has %d bytes; the test needs a few entries", path, len(original))
				}
				if test.damage == nil {
					err = os.Remove(path)
				} else {
					err = os.WriteFile(path, test.damage(bytes.Clone(original)), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
				l = openTestLog(t, dir, 0, cfg)
				m.verifyAll(t, l)
				if test.rebuilt {
					rebuilt, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(rebuilt, original) {
						t.Fatalf("rebuilt %s differs from the original:\n got %x\nwant %x", path, rebuilt, original)
					}
				}
				fill(t, l, m, clock, 5)
				m.verifyAll(t, l)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = openTestLog(t, dir, 0, cfg)
				m.verifyAll(t, l)
			})
		}
	}
}

func TestCleanShutdownMarker(t *testing.T) {
	tests := []struct {
		name         string
		marker       func(dir string, end int64) error
		wantRecovery bool
	}{
		{name: "marker from close", marker: func(string, int64) error { return nil }},
		{name: "no marker", marker: func(dir string, _ int64) error { return os.Remove(filepath.Join(dir, cleanShutdownFileName)) }, wantRecovery: true},
		{name: "corrupt marker", marker: func(dir string, _ int64) error {
			return os.WriteFile(filepath.Join(dir, cleanShutdownFileName), []byte("version: 0\nlog_end_offset: 7\ncrc32c: 00000000\n"), 0o644)
		}, wantRecovery: true},
		{name: "marker with another end offset", marker: func(dir string, end int64) error {
			return writeOffsetCheckpoint(dir, cleanShutdownFileName, logEndOffsetKey, end+1)
		}, wantRecovery: true},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			clock := newTestClock()
			cfg := smallConfig(t, clock)
			logger, logs := newTestLogger(t)
			cfg.Logger = logger
			dir := t.TempDir()
			l, m := buildLog(t, dir, cfg, clock)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			end, exists, err := readOffsetCheckpoint(dir, cleanShutdownFileName, logEndOffsetKey)
			if err != nil || !exists || end != l.EndOffset() {
				t.Fatalf("marker after close: end %d exists %v err %v, want end %d", end, exists, err, l.EndOffset())
			}
			if err := test.marker(dir, end); err != nil {
				t.Fatal(err)
			}
			before := len(logs.String())
			l = openTestLog(t, dir, 0, cfg)
			recovered := strings.Contains(logs.String()[before:], "recovering segment")
			if recovered != test.wantRecovery {
				t.Fatalf("recovered = %v, want %v:\n%s", recovered, test.wantRecovery, logs.String()[before:])
			}
			if _, err := os.Stat(filepath.Join(dir, cleanShutdownFileName)); !os.IsNotExist(err) {
				t.Fatalf("marker not removed by open: %v", err)
			}
			m.verifyAll(t, l)
		})
	}
}

func TestOpenIgnoresForeignFilesAndRemovesOrphans(t *testing.T) {
	clock := newTestClock()
	cfg := smallConfig(t, clock)
	dir := t.TempDir()
	l, m := buildLog(t, dir, cfg, clock)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	foreign := []string{"leader-epoch-checkpoint", "00000000000000000012.snapshot", partitionMetadataFileName}
	for _, name := range foreign {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	orphans := []string{segmentFileName(999999, offsetIndexFileSuffix), segmentFileName(999999, timeIndexFileSuffix), startOffsetFileName + temporaryFileSuffix}
	for _, name := range orphans {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l = openTestLog(t, dir, 0, cfg)
	m.verifyAll(t, l)
	for _, name := range foreign {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("foreign file %s: %v", name, err)
		}
	}
	for _, name := range orphans {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("orphan %s not removed: %v", name, err)
		}
	}
}
