package partition

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-log/strata/internal/atomicfile"
	"github.com/strata-log/strata/internal/fsperm"
)

// highWatermarkCheckpoint is the partition directory's high-watermark
// checkpoint. Kafka keeps one replication-offset-checkpoint per data dir;
// here each partition directory has its own, in the same text format with
// one entry, so a partition's files stay in its directory. Part of the
// format, do not change:
//
//	0                        version
//	1                        entry count
//	<topic> <partition> <high watermark>
//
// Written atomically and durably (temp file, fsync, rename, directory
// fsync) every few seconds when the high watermark moved
// (Maintenance.CheckpointHighWatermark), at Close, and at once when a
// truncation or a restart of the log lowers it or a log start moving past
// it raises it. Open starts the high
// watermark there, within the recovered log; a missing, unreadable or
// foreign checkpoint starts it at the log start (nothing known to be
// committed).
const highWatermarkCheckpoint = "replication-offset-checkpoint"

// encodeHighWatermarkCheckpoint is the checkpoint's content.
func encodeHighWatermarkCheckpoint(topic string, index int32, highWatermark int64) []byte {
	return fmt.Appendf(nil, "0\n1\n%s %d %d\n", topic, index, highWatermark)
}

// readHighWatermarkCheckpoint reads the checkpoint in dir; ok is false when
// it is missing, does not parse or names another partition.
func readHighWatermarkCheckpoint(dir, topic string, index int32) (highWatermark int64, ok bool) {
	f, err := os.Open(filepath.Join(dir, highWatermarkCheckpoint))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	var lines []string
	for scanner.Scan() {
		lines = append(lines, strings.TrimSpace(scanner.Text()))
	}
	if scanner.Err() != nil || len(lines) != 3 || lines[0] != "0" || lines[1] != "1" {
		return 0, false
	}
	fields := strings.Fields(lines[2])
	if len(fields) != 3 || fields[0] != topic || fields[1] != strconv.Itoa(int(index)) {
		return 0, false
	}
	highWatermark, err = strconv.ParseInt(fields[2], 10, 64)
	if err != nil || highWatermark < 0 {
		return 0, false
	}
	return highWatermark, true
}

// checkpointHighWatermark writes the high watermark to the checkpoint when
// it differs from the one last written.
func (p *Partition) checkpointHighWatermark() error {
	p.checkpointMu.Lock()
	defer p.checkpointMu.Unlock()
	highWatermark := p.highWatermark.Load()
	if highWatermark == p.checkpointed || p.removed.Load() {
		return nil
	}
	if err := atomicfile.WriteFile(filepath.Join(p.dir, highWatermarkCheckpoint), encodeHighWatermarkCheckpoint(p.topic, p.index, highWatermark), fsperm.File); err != nil {
		return fmt.Errorf("high watermark checkpoint: %w", err)
	}
	p.checkpointed = highWatermark
	return nil
}

// lowerHighWatermarkLocked sets the high watermark to at most offset (a
// truncation or a restart of the log) and checkpoints a lowered one at
// once, so a crash does not bring back a high watermark above data this
// replica no longer has. Called with appendMu held.
func (p *Partition) lowerHighWatermarkLocked(offset int64) {
	if p.highWatermark.Load() <= offset {
		return
	}
	p.highWatermark.Store(offset)
	if err := p.checkpointHighWatermark(); err != nil {
		p.log.Warn("writing the high watermark checkpoint failed", "err", err)
	}
}

// raiseHighWatermarkLocked raises the high watermark to logStart, a log
// start moving above it (raiseLogStartLocked, restartAtLocked; at most the
// log end), and checkpoints it at once: the checkpoint is never left below
// the log start the log persists. Called with appendMu held.
func (p *Partition) raiseHighWatermarkLocked(logStart int64) {
	if p.highWatermark.Load() >= logStart {
		return
	}
	p.highWatermark.Store(logStart)
	if err := p.checkpointHighWatermark(); err != nil {
		p.log.Warn("writing the high watermark checkpoint failed", "err", err)
	}
}

// OffsetsAvailable reports whether this leader's high watermark has reached
// the log end it had when its leadership began (KIP-207): before that, a
// new leader's high watermark may be below the one its predecessor
// exposed, so ListOffsets answers OFFSET_NOT_AVAILABLE rather than an
// offset that goes backwards.
func (p *Partition) OffsetsAvailable() bool {
	return p.HighWatermark() >= p.leaderStart.Load()
}
