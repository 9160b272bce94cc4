package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-log/strata/internal/fsperm"
)

// boltLogStore is the Raft log and stable store in one bbolt database
// (<metadata>/raft/raft.db), in the shape of hashicorp/raft-boltdb with our
// own entry encoding:
//
//	bucket "logs":  key   uint64 big-endian log index
//	                value entry (below)
//	bucket "conf":  key   stable-store key bytes (CurrentTerm, LastVoteTerm,
//	                      LastVoteCand)
//	                value bytes as given (SetUint64: uint64 big-endian)
//
//	entry:  +---------+---------+---------+------+-----------+------------+--------------+
//	        | version | index   | term    | type | data      | extensions | appended at  |
//	        | 1 byte  | uint64  | uint64  | 1 B  | uvarint n | uvarint n  | int64 Unix   |
//	        | = 1     |         |         |      | + n bytes | + n bytes  | nanoseconds  |
//	        +---------+---------+---------+------+-----------+------------+--------------+
//
// Every write is one bbolt transaction, fsynced at commit, so a crash
// leaves either the old or the new state. All methods are safe for
// concurrent use (bbolt serializes writers).
type boltLogStore struct {
	db *bolt.DB
}

// Part of the format: do not change.
var (
	logsBucket = []byte("logs")
	confBucket = []byte("conf")
)

const logEntryVersion = 1

var (
	_ raft.LogStore    = (*boltLogStore)(nil)
	_ raft.StableStore = (*boltLogStore)(nil)
)

func openBoltLogStore(path string) (*boltLogStore, error) {
	db, err := bolt.Open(path, fsperm.File, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{logsBucket, confBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltLogStore{db: db}, nil
}

func (s *boltLogStore) Close() error { return s.db.Close() }

func indexKey(index uint64) []byte { return binary.BigEndian.AppendUint64(nil, index) }

func (s *boltLogStore) FirstIndex() (uint64, error) {
	var index uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(logsBucket).Cursor().First(); k != nil {
			index = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return index, err
}

func (s *boltLogStore) LastIndex() (uint64, error) {
	var index uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(logsBucket).Cursor().Last(); k != nil {
			index = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return index, err
}

func (s *boltLogStore) GetLog(index uint64, log *raft.Log) error {
	return s.db.View(func(tx *bolt.Tx) error {
		value := tx.Bucket(logsBucket).Get(indexKey(index))
		if value == nil {
			return raft.ErrLogNotFound
		}
		return decodeLogEntry(value, log)
	})
}

func (s *boltLogStore) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

func (s *boltLogStore) StoreLogs(logs []*raft.Log) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bucket := tx.Bucket(logsBucket)
		for _, log := range logs {
			if err := bucket.Put(indexKey(log.Index), encodeLogEntry(log)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltLogStore) DeleteRange(min, max uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		cursor := tx.Bucket(logsBucket).Cursor()
		for k, _ := cursor.Seek(indexKey(min)); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = cursor.Next() {
			if err := cursor.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltLogStore) Set(key, value []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(confBucket).Put(key, value) })
}

// Get returns the value of key, or an empty value when it is not set (as
// raft-boltdb does, hashicorp/raft treats "not found" errors by text).
func (s *boltLogStore) Get(key []byte) ([]byte, error) {
	var value []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(confBucket).Get(key); v != nil {
			value = append([]byte{}, v...)
		}
		return nil
	})
	if err == nil && value == nil {
		return nil, errors.New("not found")
	}
	return value, err
}

func (s *boltLogStore) SetUint64(key []byte, value uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, value))
}

func (s *boltLogStore) GetUint64(key []byte) (uint64, error) {
	value, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(value) != 8 {
		return 0, corruptf("stable store key %q holds %d bytes, want 8", key, len(value))
	}
	return binary.BigEndian.Uint64(value), nil
}

func encodeLogEntry(log *raft.Log) []byte {
	e := encoder{}
	e.uint8(logEntryVersion)
	e.uint64(log.Index)
	e.uint64(log.Term)
	e.uint8(uint8(log.Type))
	e.uvarint(uint64(len(log.Data)))
	e.buffer = append(e.buffer, log.Data...)
	e.uvarint(uint64(len(log.Extensions)))
	e.buffer = append(e.buffer, log.Extensions...)
	appended := int64(0)
	if !log.AppendedAt.IsZero() {
		appended = log.AppendedAt.UnixNano()
	}
	e.int64(appended)
	return e.buffer
}

func decodeLogEntry(value []byte, log *raft.Log) error {
	d := decoder{data: value}
	if version := d.uint8(); version != logEntryVersion && d.err() == nil {
		return corruptf("raft log entry version %d", version)
	}
	log.Index, log.Term = d.uint64(), d.uint64()
	log.Type = raft.LogType(d.uint8())
	log.Data = append([]byte(nil), d.take(d.length(1))...)
	log.Extensions = append([]byte(nil), d.take(d.length(1))...)
	if appended := d.int64(); appended != 0 {
		log.AppendedAt = time.Unix(0, appended)
	} else {
		log.AppendedAt = time.Time{}
	}
	if err := d.finish(); err != nil {
		return fmt.Errorf("raft log entry: %w", err)
	}
	return nil
}
