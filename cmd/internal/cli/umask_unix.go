//go:build unix

package cli

import "syscall"

// restrictUmask makes every file and directory this process creates
// owner-only, including those that libraries create with their own modes
// (hashicorp/raft's snapshot store: 0755 directories, 0666 files; gocloud's
// fileblob: 0666 files). Strata's own code asks for owner-only modes
// already (internal/fsperm); this covers the rest, as PostgreSQL does
// for its data directory.
func restrictUmask() { syscall.Umask(0o077) }
