//go:build !unix

package metadata

// lockDirectory does nothing where flock is unavailable.
func lockDirectory(path string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}
