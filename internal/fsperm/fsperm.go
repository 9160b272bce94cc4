// Package fsperm holds the permissions of everything Strata creates under
// its data dir (and of a file:// object store it creates): owner-only,
// because the data dir holds every topic's records, the metadata quorum's
// log and, in the bucket, the tiered segments. Another local user reading
// them reads every message; the admin API, not file sharing, is the way to
// look inside a node.
//
// One place for the two modes, so every package that creates files uses
// the same ones. The serve command also sets the process umask to 077
// (see cmd/internal/cli), which covers files that libraries create with
// their own modes (hashicorp/raft's snapshot store, gocloud's fileblob);
// the directories created with Dir protect those files on their own too.
//
// The package imports nothing of Strata's: broker, tiering and metadata all
// use it.
package fsperm

import "os"

const (
	// File is the mode of every file: read and write for the owner only.
	File os.FileMode = 0o600
	// Dir is the mode of every directory: the owner only.
	Dir os.FileMode = 0o700
	// GroupOther are the permission bits nothing Strata creates carries.
	GroupOther os.FileMode = 0o077
)
