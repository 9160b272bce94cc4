package lazyfs

import (
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// savedRange is the content a range of a file had at its last fsync.
type savedRange struct {
	offset int64
	data   []byte
}

func (r savedRange) end() int64 { return r.offset + int64(len(r.data)) }

// fileState is the undo information of one regular file (one backing
// inode) written, truncated or created since its last fsync.
//
// Invariant: every byte of [0, syncedSize) either is covered by saved
// (which holds its synced value) or still has its synced value in the
// backing file. Bytes at or past syncedSize are simply cut off by a drop.
// So the memory a file costs is the synced bytes it overwrote, truncated
// away or punched since its last fsync: what a drop must put back.
type fileState struct {
	mu         sync.Mutex   // guards the fields below; taken after FS.mu, never before
	dead       bool         // the state was discarded (drop, or the inode died): look it up again
	syncedSize int64        // length at the last fsync (0 for a file created since)
	saved      []savedRange // sorted by offset, non-overlapping
}

// savedBytes is the undo memory the file holds.
func (s *fileState) savedBytes() int64 {
	var total int64
	for _, r := range s.saved {
		total += int64(len(r.data))
	}
	return total
}

// saveLocked records the synced content of [offset, end) ∩ [0, syncedSize)
// that is not recorded yet, reading it from fd, before the caller changes
// those bytes. currentSize is the file's length now: bytes of the synced
// prefix past it were cut by an earlier truncate and are recorded already.
func (s *fileState) saveLocked(fd int, offset, end, currentSize int64) error {
	end = min(end, s.syncedSize, currentSize)
	if offset >= end {
		return nil
	}
	var gaps []savedRange
	cursor := offset
	for _, r := range s.saved {
		if r.end() <= cursor {
			continue
		}
		if r.offset >= end {
			break
		}
		if r.offset > cursor {
			gaps = append(gaps, savedRange{offset: cursor, data: make([]byte, r.offset-cursor)})
		}
		cursor = max(cursor, r.end())
		if cursor >= end {
			break
		}
	}
	if cursor < end {
		gaps = append(gaps, savedRange{offset: cursor, data: make([]byte, end-cursor)})
	}
	for _, gap := range gaps {
		if err := preadFull(fd, gap.data, gap.offset); err != nil {
			return fmt.Errorf("save synced bytes [%d, %d): %w", gap.offset, gap.end(), err)
		}
	}
	s.saved = append(s.saved, gaps...)
	sort.Slice(s.saved, func(i, j int) bool { return s.saved[i].offset < s.saved[j].offset })
	return nil
}

// restoreLocked puts the synced content back into fd and cuts the file to
// its synced length.
func (s *fileState) restoreLocked(fd int) error {
	for _, r := range s.saved {
		if _, err := unix.Pwrite(fd, r.data, r.offset); err != nil {
			return fmt.Errorf("restore bytes [%d, %d): %w", r.offset, r.end(), err)
		}
	}
	if err := unix.Ftruncate(fd, s.syncedSize); err != nil {
		return fmt.Errorf("truncate to synced length %d: %w", s.syncedSize, err)
	}
	return nil
}

func preadFull(fd int, buf []byte, offset int64) error {
	for len(buf) > 0 {
		n, err := unix.Pread(fd, buf, offset)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("short read at %d: %w", offset, unix.EIO)
		}
		buf = buf[n:]
		offset += int64(n)
	}
	return nil
}
