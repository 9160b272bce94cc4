//go:build unix

package metadata

import "syscall"

// peekNothing reports whether the socket fd has nothing to read right now
// (and is not at its end or in error): a peek of one byte that does not
// wait.
func peekNothing(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
}
