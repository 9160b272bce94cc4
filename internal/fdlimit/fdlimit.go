// Package fdlimit reads how many file descriptors this process may open
// and how many it has open, so that a server can refuse work (a partition,
// a connection) before the kernel refuses it with EMFILE in the middle of
// something else.
//
// The package imports nothing of Strata's.
package fdlimit

import "os"

// Limit returns the soft RLIMIT_NOFILE, the most descriptors this process
// may have open (the Go runtime raises the soft limit to the hard one at
// start), and false where it cannot be read.
func Limit() (uint64, bool) { return limit() }

// Open counts the descriptors this process has open, and false where they
// cannot be counted. It lists /proc/self/fd (Linux) or /dev/fd; the
// descriptor it uses to list them is not counted.
func Open() (int, bool) {
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		f, err := os.Open(dir)
		if err != nil {
			continue
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			continue
		}
		return max(len(names)-1, 0), true
	}
	return 0, false
}
