package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
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
  confirm-clock                            after a forward jump of the node's wall clock (its log says so, and
                                           strata_clock_jump_paused is 1), confirm that the time is now right:
                                           remote retention and committed-offset expiry resume on that node

Offline (the node is stopped; run "strata cluster recover-quorum --help"):
  recover-quorum --voters id@H:P,...       when a majority of voters is lost for good: rewrite
                                           this data dir's voter set to the surviving voters

Flags:
`

// adminCommand is what every admin subcommand shares: the node's admin
// listener, the output format, an HTTP client and the file of the admin
// token ("" = none).
type adminCommand struct {
	admin, output, base string
	tokenFile           string
	client              *http.Client
}

// parseAdminCommand parses "<group> <sub> [flags]" for the subcommands that
// talk to a node's admin listener: --admin, --output, --timeout, and the
// flags extra adds.
func parseAdminCommand(group, usage, subs string, timeout time.Duration, args []string, stderr io.Writer, extra func(*pflag.FlagSet)) (string, adminCommand, error) {
	var admin, tokenFile *string
	var clientFlags adminClientFlags
	sub, common, err := parseSubcommand(group, usage, subs, "--admin HOST:PORT   admin listener of a node (default 127.0.0.1:9080)", timeout, args, stderr, func(fs *pflag.FlagSet) {
		admin = fs.String("admin", "127.0.0.1:9080", "admin listener of a node of the cluster")
		tokenFile = fs.String("admin-token-file", os.Getenv(adminTokenFileEnv), "file holding the admin token (the node's --admin-token-file; its first line is sent), needed when the node has one (default $"+adminTokenFileEnv+")")
		addAdminClientFlags(fs, &clientFlags)
		if extra != nil {
			extra(fs)
		}
	})
	if err != nil {
		return "", adminCommand{}, err
	}
	scheme, client, err := clientFlags.client(common.timeout)
	if err != nil {
		return "", adminCommand{}, err
	}
	return sub, adminCommand{admin: *admin, output: common.output, base: scheme + "://" + *admin, tokenFile: *tokenFile, client: client}, nil
}

// adminTokenFileEnv names the admin token file for the cluster and tiering
// commands when --admin-token-file is not given (the same variable sets
// strata serve's --admin-token-file).
const adminTokenFileEnv = "STRATA_ADMIN_TOKEN_FILE"

// request builds a request to the admin listener: JSON, with the admin
// token when there is one.
func (a adminCommand) request(method, path string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(method, a.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.tokenFile != "" {
		tokens, err := node.ReadAdminTokens(a.tokenFile)
		if err != nil {
			return nil, usageErrorf("--admin-token-file: %v", err)
		}
		req.Header.Set("Authorization", "Bearer "+tokens[0])
	}
	return req, nil
}

// do sends a request built by request.
func (a adminCommand) do(method, path string, body []byte) (*http.Response, error) {
	req, err := a.request(method, path, body)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin listener at %s (set --admin): %w", a.admin, err)
	}
	return resp, nil
}

// getJSON GETs path from the admin listener and decodes the answer into v;
// it returns the raw body too (for --output json).
func (a adminCommand) getJSON(path string, v any) ([]byte, error) {
	return a.callJSON(http.MethodGet, path, v)
}

// callJSON is getJSON for any method (an operation without a body that
// answers JSON, such as POST /v1/tiering/scrub).
func (a adminCommand) callJSON(method, path string, v any) ([]byte, error) {
	resp, err := a.do(method, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s %s", a.admin, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("%s: unexpected answer: %w", a.admin, err)
	}
	return body, nil
}

// commonFlags are the flags of every subcommand: --output and --timeout.
type commonFlags struct {
	output  string
	timeout time.Duration
}

// parseSubcommand parses "<group> <sub> [flags]": the subcommand, then
// --output (table or json), --timeout and the flags extra adds.
func parseSubcommand(group, usage, subs, connectionHelp string, timeout time.Duration, args []string, stderr io.Writer, extra func(*pflag.FlagSet)) (string, commonFlags, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, usage+"  "+connectionHelp+"\n")
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			return "", commonFlags{}, pflag.ErrHelp
		}
		return "", commonFlags{}, usageErrorf("missing subcommand (%s)", subs)
	}
	sub, args := args[0], args[1:]
	fs := pflag.NewFlagSet(group+" "+sub, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("output", "table", "table or json")
	wait := fs.Duration("timeout", timeout, "give up after this long")
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() { fmt.Fprintf(stderr, "%s%s", usage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return "", commonFlags{}, err
		}
		return "", commonFlags{}, usageError{err}
	}
	if *output != "table" && *output != "json" {
		return "", commonFlags{}, usageErrorf("--output %q: table or json", *output)
	}
	return sub, commonFlags{output: *output, timeout: *wait}, nil
}

// runCluster runs the cluster subcommands against a node's admin listener.
func runCluster(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "recover-quorum" {
		return runRecoverQuorum(args[1:], stdout, stderr)
	}
	var nodeID *int32
	var address *string
	sub, a, err := parseAdminCommand("cluster", clusterUsage, "status, add-voter, remove-voter, confirm-clock", 30*time.Second, args, stderr, func(fs *pflag.FlagSet) {
		nodeID = fs.Int32("node-id", -1, "the voter's node id (add-voter, remove-voter)")
		address = fs.String("address", "", "the new voter's controller address HOST:PORT (add-voter)")
	})
	if err != nil {
		return err
	}
	output := &a.output
	switch sub {
	case "status":
		var status node.ClusterStatus
		body, err := a.getJSON("/v1/cluster", &status)
		if err != nil {
			return err
		}
		if *output == "json" {
			_, err := stdout.Write(body)
			return err
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
		var resp *http.Response
		if sub == "add-voter" {
			if *address == "" {
				return usageErrorf("--address HOST:PORT (the new voter's --controller-advertise) is required")
			}
			payload, _ := json.Marshal(node.VoterStatus{NodeID: *nodeID, Address: *address})
			resp, err = a.do(http.MethodPost, "/v1/voters", payload)
		} else {
			resp, err = a.do(http.MethodDelete, fmt.Sprintf("/v1/voters/%d", *nodeID), nil)
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s refused: %s", sub, bytes.TrimSpace(body))
		}
		fmt.Fprintf(stdout, "%s %d: done\n", sub, *nodeID)
		return nil
	case "confirm-clock":
		resp, err := a.do(http.MethodPost, "/v1/clock/confirm", nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var answer node.ClockConfirmation
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &answer) != nil {
			return fmt.Errorf("confirm-clock refused: %s", bytes.TrimSpace(body))
		}
		if *output == "json" {
			_, err := stdout.Write(body)
			return err
		}
		if answer.WasPaused {
			fmt.Fprintln(stdout, "confirm-clock: the clock is confirmed; remote retention and committed-offset expiry resume")
		} else {
			fmt.Fprintln(stdout, "confirm-clock: nothing was paused (no clock jump seen)")
		}
		return nil
	default:
		return usageErrorf("unknown subcommand %q (status, add-voter, remove-voter, confirm-clock)", sub)
	}
}
