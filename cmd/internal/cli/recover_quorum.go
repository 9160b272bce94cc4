package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/strata-log/strata/metadata"
)

const recoverQuorumUsage = `Usage: strata cluster recover-quorum --data-dir DIR --voters id@host:port,... [--node-id N]

For when a majority of the metadata voters is lost for good, so the quorum
can never elect a leader again (the nodes log "still waiting for the metadata
quorum" and /readyz answers 503). Offline: stop the node first.

Rewrites this data dir's Raft voter set to --voters, the surviving voters, each
at its --controller-advertise address (non-voters are kept). Run it with the
same --voters on every surviving voter, all stopped, then start them: they
elect a leader among themselves and keep the metadata this node had, including
entries it had not seen committed. The lost nodes must never come back with
their old data dirs (with them they could elect a second leader): wipe them,
start them fresh and add them back with strata cluster add-voter.

Flags:
`

// runRecoverQuorum rewrites a stopped node's voter set
// (metadata.RecoverQuorum) and says what it did.
func runRecoverQuorum(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("cluster recover-quorum", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	dataDir := fs.String("data-dir", "./data", "the stopped node's data directory")
	votersFlag := fs.String("voters", "", "the surviving voters id@host:port,... (their controller addresses), this node among them")
	nodeID := fs.Int32("node-id", -1, "this node's id (default: read from the data dir's meta.properties)")
	fs.Usage = func() { fmt.Fprintf(stderr, "%s%s", recoverQuorumUsage, fs.FlagUsages()) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	voters, err := parseVoters("--voters", *votersFlag)
	if err != nil {
		return err
	}
	if len(voters) == 0 {
		return usageErrorf("--voters is required: the surviving voters id@host:port,...")
	}
	clusterID, formattedID, err := metadata.ReadMetaProperties(*dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %w", *dataDir, err)
	}
	if *nodeID < 0 {
		*nodeID = formattedID
	}
	if _, ok := voters[*nodeID]; !ok {
		return usageErrorf("--voters %q does not list this node (%d): run the recovery only on the nodes that keep a vote", *votersFlag, *nodeID)
	}
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	result, err := metadata.RecoverQuorum(*dataDir, *nodeID, voters, quiet)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node %d of cluster %s (%s): metadata quorum rewritten\n", *nodeID, clusterID, *dataDir)
	fmt.Fprintf(stdout, "  members before: %s\n", formatMembers(result.Before))
	fmt.Fprintf(stdout, "  members now:    %s\n", formatMembers(result.After))
	fmt.Fprintf(stdout, "  the metadata log up to index %d is kept in a new snapshot\n", result.LastIndex)
	fmt.Fprintf(stdout, "Run this with the same --voters on every other surviving voter, then start them all.\n")
	return nil
}

// formatMembers renders Raft members as id@address, non-voters marked.
func formatMembers(members []metadata.Voter) string {
	var parts []string
	for _, m := range members {
		part := fmt.Sprintf("%d@%s", m.NodeID, m.Address)
		if !m.Voting {
			part += " (non-voter)"
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, ", ")
}
