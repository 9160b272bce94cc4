// Package atomicfile replaces a file's content so that a crash — of the
// process or of the machine — leaves either the old content or the complete
// new one, never a mix and never an empty file.
//
// The sequence, as etcd and Pebble do it: write a temporary file next to
// the target (same directory, so the rename stays in one file system),
// fsync it, close it, rename it over the target, fsync the directory so
// that the rename itself survives a power loss. Every step's error is
// returned with the path it concerns; the temporary file is removed when a
// step before the rename fails.
//
// The temporary file is <path>.tmp (TempSuffix). Callers that recover a
// directory at start may delete such leftovers by that name. Two writers of
// one path at the same time share that name, so the caller serializes the
// writes of each path (every caller in Strata writes a path under the lock
// of its owner).
//
// The package imports nothing of Strata's: broker, tiering and metadata all
// use it.
package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TempSuffix ends the name of the temporary file a write goes through:
// <path>.tmp. Packages delete leftovers by this name on recovery (see
// broker/segment's doc); part of their on-disk conventions, do not change.
const TempSuffix = ".tmp"

// WriteFile replaces the content of path with data, durably and atomically
// (see the package doc). perm is used when the temporary file is created.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return write(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	}, (*os.File).Sync)
}

// Write is WriteFile for content produced by a writer function: fill is
// called once with the temporary file, and its error, if any, aborts the
// write and leaves path as it was. fill must not keep w.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	return write(path, perm, fill, (*os.File).Sync)
}

// SyncDir fsyncs the directory dir, making the creation, rename or removal
// of the names in it durable.
func SyncDir(dir string) error {
	return syncDir(dir, (*os.File).Sync)
}

// write is Write with the fsync as a parameter, so that tests can make the
// file's or the directory's fsync fail. Every error starts with
// "write <path>: "; the os errors under it name the step and the file.
func write(path string, perm os.FileMode, fill func(io.Writer) error, sync func(*os.File) error) error {
	temporary := path + TempSuffix
	file, err := os.OpenFile(temporary, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = fill(file)
	if err == nil {
		err = sync(file)
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(temporary, path)
	}
	if err != nil {
		os.Remove(temporary)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path), sync); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string, sync func(*os.File) error) error {
	directory, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	err = sync(directory)
	if closeErr := directory.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
