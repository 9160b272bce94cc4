//go:build !unix

package metadata

// peekNothing cannot peek here: the connection is taken as open and the
// exchange finds out.
func peekNothing(uintptr) bool { return true }
