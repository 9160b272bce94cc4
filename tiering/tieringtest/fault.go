package tieringtest

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/strata-log/strata/tiering"
)

// Op names a Bucket operation for fault injection.
type Op string

// Operations of a Bucket.
const (
	OpGet    Op = "get"
	OpSize   Op = "size"
	OpIter   Op = "iter"
	OpUpload Op = "upload"
	OpDelete Op = "delete"
)

// FaultBucket wraps a Bucket and fails operations on demand, the way an
// unreachable or flaky store fails them: with errors wrapping
// tiering.ErrUnavailable. Safe for concurrent use.
type FaultBucket struct {
	bucket tiering.Bucket

	mu          sync.Mutex // guards failNext, unreachable, injected, beforeUpload
	failNext    map[Op]int
	unreachable bool
	injected    int
	// beforeUpload runs before each upload, outside mu: a test holds a
	// writer there (a paused uploader) to force an interleaving.
	beforeUpload func(key string)
}

var _ tiering.Bucket = (*FaultBucket)(nil)

// NewFaultBucket wraps bucket with no faults armed.
func NewFaultBucket(bucket tiering.Bucket) *FaultBucket {
	return &FaultBucket{bucket: bucket, failNext: make(map[Op]int)}
}

// FailNext makes the next n operations of kind op fail.
func (f *FaultBucket) FailNext(op Op, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext[op] += n
}

// SetUnreachable makes every operation fail (true) or go through (false).
func (f *FaultBucket) SetUnreachable(unreachable bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unreachable = unreachable
}

// BeforeUpload sets a function called with the key before each upload
// (nil: none); it may block to pause the uploader.
func (f *FaultBucket) BeforeUpload(hook func(key string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforeUpload = hook
}

// Injected returns how many failures were injected.
func (f *FaultBucket) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

func (f *FaultBucket) fault(op Op, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.unreachable:
	case f.failNext[op] > 0:
		f.failNext[op]--
	default:
		return nil
	}
	f.injected++
	return fmt.Errorf("%s %s: injected fault: %w", op, key, tiering.ErrUnavailable)
}

// Get implements tiering.BucketReader.
func (f *FaultBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := f.fault(OpGet, key); err != nil {
		return nil, err
	}
	return f.bucket.Get(ctx, key, offset, length)
}

// Size implements tiering.BucketReader.
func (f *FaultBucket) Size(ctx context.Context, key string) (int64, error) {
	if err := f.fault(OpSize, key); err != nil {
		return 0, err
	}
	return f.bucket.Size(ctx, key)
}

// Iter implements tiering.BucketReader.
func (f *FaultBucket) Iter(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	if err := f.fault(OpIter, prefix); err != nil {
		return err
	}
	return f.bucket.Iter(ctx, prefix, fn)
}

// Upload implements tiering.Bucket. A failing upload consumes part of r
// first, as a connection dropped mid-upload would.
func (f *FaultBucket) Upload(ctx context.Context, key string, r io.Reader, partSize int) error {
	f.mu.Lock()
	hook := f.beforeUpload
	f.mu.Unlock()
	if hook != nil {
		hook(key)
	}
	if err := f.fault(OpUpload, key); err != nil {
		io.CopyN(io.Discard, r, 100)
		return err
	}
	return f.bucket.Upload(ctx, key, r, partSize)
}

// Delete implements tiering.Bucket.
func (f *FaultBucket) Delete(ctx context.Context, key string) error {
	if err := f.fault(OpDelete, key); err != nil {
		return err
	}
	return f.bucket.Delete(ctx, key)
}
