package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-log/strata/cmd/internal/node"
)

const clusterUsage = `Usage: strata cluster <command> [flags]

Commands (each talks to one node's admin listener, --admin):
  status                                   cluster id, controller, voters and brokers
  add-voter --node-id N --address H:P      add a metadata voter (its data dir formatted for this cluster)
  remove-voter --node-id N                 take a voter's vote away (it keeps following as a non-voter)

Flags:
`

// runCluster runs the cluster subcommands against a node's admin listener.
func runCluster(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, clusterUsage+"  --admin HOST:PORT   admin listener of any node (default 127.0.0.1:9080)\n")
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			return pflag.ErrHelp
		}
		return usageErrorf("missing subcommand (status, add-voter, remove-voter)")
	}
	sub, args := args[0], args[1:]
	fs := pflag.NewFlagSet("cluster "+sub, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "127.0.0.1:9080", "admin listener of any node of the cluster")
	output := fs.String("output", "table", "table or json")
	nodeID := fs.Int32("node-id", -1, "the voter's node id (add-voter, remove-voter)")
	address := fs.String("address", "", "the new voter's controller address HOST:PORT (add-voter)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	fs.Usage = func() { fmt.Fprintf(stderr, "%s%s", clusterUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	client := &http.Client{Timeout: *timeout}
	base := "http://" + *admin
	switch sub {
	case "status":
		if *output != "table" && *output != "json" {
			return usageErrorf("--output %q: table or json", *output)
		}
		resp, err := client.Get(base + "/v1/cluster")
		if err != nil {
			return fmt.Errorf("cannot reach the admin listener at %s (set --admin): %w", *admin, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", *admin, resp.Status, bytes.TrimSpace(body))
		}
		if *output == "json" {
			_, err := stdout.Write(body)
			return err
		}
		var status node.ClusterStatus
		if err := json.Unmarshal(body, &status); err != nil {
			return fmt.Errorf("%s: unexpected answer: %w", *admin, err)
		}
		fmt.Fprintf(stdout, "cluster %s, controller %d (asked node %d)\n\n", status.ClusterID, status.Controller, status.NodeID)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VOTER\tADDRESS\tVOTING")
		for _, v := range status.Voters {
			fmt.Fprintf(tw, "%d\t%s\t%t\n", v.NodeID, v.Address, v.Voting)
		}
		fmt.Fprintln(tw, "\t\t")
		fmt.Fprintln(tw, "BROKER\tENDPOINTS\tRACK\tSTATE\tEPOCH")
		for _, b := range status.Brokers {
			state := "alive"
			if b.Fenced {
				state = "fenced"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\n", b.ID, strings.Join(b.Endpoints, ","), b.Rack, state, b.Epoch)
		}
		return tw.Flush()
	case "add-voter", "remove-voter":
		if *nodeID < 0 {
			return usageErrorf("--node-id is required")
		}
		var req *http.Request
		if sub == "add-voter" {
			if *address == "" {
				return usageErrorf("--address HOST:PORT (the new voter's --controller-advertise) is required")
			}
			payload, _ := json.Marshal(node.VoterStatus{NodeID: *nodeID, Address: *address})
			req, _ = http.NewRequest(http.MethodPost, base+"/v1/voters", bytes.NewReader(payload))
		} else {
			req, _ = http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/v1/voters/%d", base, *nodeID), nil)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("cannot reach the admin listener at %s (set --admin): %w", *admin, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s refused: %s", sub, bytes.TrimSpace(body))
		}
		fmt.Fprintf(stdout, "%s %d: done\n", sub, *nodeID)
		return nil
	default:
		return usageErrorf("unknown subcommand %q (status, add-voter, remove-voter)", sub)
	}
}
