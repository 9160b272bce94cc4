package authn

import (
	"fmt"
	"os"
	"sync"
)

// reloadingFile is a file parsed into a T and parsed again when it
// changes (its modification time or size, the stamp TLS uses for its
// files): SASL/PLAIN's users and OAUTHBEARER's key set. Each Current
// costs one stat. A change that fails to parse keeps the previous value
// (reported to onError once per change), so a half-written file never
// locks everyone out.
type reloadingFile[T any] struct {
	path    string
	what    string // names the file in errors, e.g. "SASL/PLAIN users file"
	parse   func(data []byte) (T, error)
	onError func(error)

	mu    sync.Mutex // guards below
	stamp fileStamp
	value T
}

// newReloadingFile loads path; an error names the file.
func newReloadingFile[T any](path, what string, parse func([]byte) (T, error), onError func(error)) (*reloadingFile[T], error) {
	f := &reloadingFile[T]{path: path, what: what, parse: parse, onError: onError}
	if err := f.loadLocked(stampOf(path)); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *reloadingFile[T]) loadLocked(stamp fileStamp) error {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("%s: %w", f.what, err)
	}
	value, err := f.parse(data)
	if err != nil {
		return fmt.Errorf("%s %s: %w", f.what, f.path, err)
	}
	f.stamp, f.value = stamp, value
	return nil
}

// Current is the file's value as of now.
func (f *reloadingFile[T]) Current() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	if stamp := stampOf(f.path); stamp != f.stamp {
		if err := f.loadLocked(stamp); err != nil {
			f.stamp = stamp // retried when the file changes again
			if f.onError != nil {
				f.onError(err)
			}
		}
	}
	return f.value
}
