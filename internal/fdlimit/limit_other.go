//go:build !unix

package fdlimit

func limit() (uint64, bool) { return 0, false }
