//go:build !linux

package tiering

import "errors"

// goLowPriority runs run in a new goroutine at the process's priority:
// lowering one thread's is Linux only (lowprio_linux.go).
func goLowPriority(run func(tid int, err error)) {
	go run(0, errors.ErrUnsupported)
}
