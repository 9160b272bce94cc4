package tiering

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowestNice is the lowest CPU priority a Linux thread can have.
const lowestNice = 19

// goLowPriority runs run in a new goroutine locked for good to an OS
// thread of its own that is not the process's main thread, at the lowest
// CPU priority (nice 19: on Linux a nice value belongs to a thread,
// setpriority(PRIO_PROCESS, tid)), so that what it does, system calls
// included, yields the cores to the process's other threads when they
// are busy, as RocksDB's low-priority background pools do. run gets the
// thread's id and setpriority's error. When run returns the runtime ends
// the thread (it is still locked), so no other goroutine ever runs at
// that priority. The main thread is left alone: its nice value is what
// tools show as the process's.
func goLowPriority(run func(tid int, err error)) {
	go func() {
		runtime.LockOSThread()
		if tid := unix.Gettid(); tid != unix.Getpid() {
			run(tid, unix.Setpriority(unix.PRIO_PROCESS, tid, lowestNice))
			return
		}
		// The main thread: hold it until a goroutine started now has
		// locked another thread (a locked thread runs no other
		// goroutine), then give it back.
		moved := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			tid := unix.Gettid()
			close(moved)
			run(tid, unix.Setpriority(unix.PRIO_PROCESS, tid, lowestNice))
		}()
		<-moved
		runtime.UnlockOSThread()
	}()
}
