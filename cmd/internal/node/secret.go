package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/strata-log/strata/internal/fsperm"
	"github.com/strata-log/strata/metadata"
)

// loadClusterSecret returns the secret this node proves on the controller
// port: the --cluster-secret-file when given; else the one this node keeps
// in its data dir; else, for a node that is its quorum's only voter, a new
// one generated there (the first node of a one-node cluster). A node of a
// larger quorum never makes up its own: it would be alone with it.
func loadClusterSecret(cfg Config, log *slog.Logger) (metadata.ClusterSecret, error) {
	path := cfg.ClusterSecretFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, metadata.ClusterSecretFileName)
		if _, _, err := metadata.ReadClusterSecretFile(path); errors.Is(err, fs.ErrNotExist) {
			if !aloneInQuorum(cfg) {
				return metadata.ClusterSecret{}, fmt.Errorf("%w: a node whose --controller-quorum names other voters (or that joins one) needs the cluster's secret: run `strata format --generate-cluster-secret FILE` once, copy FILE to every node (readable by the strata user only) and start each with --cluster-secret-file FILE", metadata.ErrNoClusterSecret)
			}
			if err := os.MkdirAll(cfg.DataDir, fsperm.Dir); err != nil {
				return metadata.ClusterSecret{}, fmt.Errorf("create data dir: %w", err)
			}
			if _, err := metadata.GenerateClusterSecretFile(path); err != nil {
				return metadata.ClusterSecret{}, err
			}
			log.Info("generated this cluster's secret: nodes that join this cluster need a copy (--cluster-secret-file)", "path", path)
		}
	}
	secret, looseMode, err := metadata.ReadClusterSecretFile(path)
	if err != nil {
		return metadata.ClusterSecret{}, err
	}
	if looseMode {
		log.Warn("the cluster secret file can be read by other users: chmod 600 it", "path", path)
	}
	return secret, nil
}

// aloneInQuorum reports whether this node is the only voter it was
// configured with.
func aloneInQuorum(cfg Config) bool {
	if len(cfg.ControllerQuorum) == 0 {
		return true
	}
	_, self := cfg.ControllerQuorum[cfg.NodeID]
	return self && len(cfg.ControllerQuorum) == 1
}
